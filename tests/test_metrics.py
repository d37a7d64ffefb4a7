"""Tests for mmkgrec.evaluation.metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmkgrec.evaluation.metrics import (
    MetricAccumulator,
    canonical,
    classification_metrics,
    full_ranking_metrics,
    parse_metric,
    ranking_metrics_from_hits,
    rating_metrics,
    relevant_from_csr,
    sampled_ranking_metrics,
    topk_with_ties,
)

ALL5 = ["recall@5", "hit@5", "ndcg@5", "mrr@5", "precision@5"]
INF = float("inf")


# ----------------------------------------------------------------- names
def test_parse_metric_case_and_spaces():
    assert parse_metric("MRR@10") == ("mrr", 10)
    assert parse_metric(" NDCG @ 20 ") == ("ndcg", 20)
    assert parse_metric("RMSE") == ("rmse", None)
    assert parse_metric("F1_Macro") == ("f1_macro", None)
    assert canonical("Recall@050") == "recall@50"
    assert canonical("AUC") == "auc"


@pytest.mark.parametrize("bad", ["foo@10", "recall", "recall@0", "recall@-1", "recall@x", "rmse@5", "ndcg@1.5", ""])
def test_parse_metric_errors_name_bad_string(bad):
    with pytest.raises(ValueError) as e:
        parse_metric(bad)
    assert repr(bad) in str(e.value) and "recall@k" in str(e.value)


# ----------------------------------------------------------------- top-k ties
def test_topk_ties_lower_index_first():
    s = torch.tensor([[1.0, 3.0, 3.0, 2.0]])
    assert topk_with_ties(s, 2).tolist() == [[1, 2]]
    assert topk_with_ties(s, 3).tolist() == [[1, 2, 3]]


def test_topk_tie_straddling_boundary():
    # items 1,2,3 tie at 2.0; k=2 cuts through the tie -> the lowest index (1) wins
    s = torch.tensor([[5.0, 2.0, 2.0, 2.0, 1.0], [0.0, 1.0, 1.0, 1.0, 9.0]])
    assert topk_with_ties(s, 2).tolist() == [[0, 1], [4, 1]]
    flat = torch.zeros(2, 200)  # everything tied: must be 0..k-1 whatever topk picks
    assert topk_with_ties(flat, 3).tolist() == [[0, 1, 2], [0, 1, 2]]


def test_topk_neg_inf_and_k_ge_n():
    s = torch.tensor([[-INF, -INF, 1.0], [-INF, 0.0, -INF]])
    assert topk_with_ties(s, 3).tolist() == [[2, 0, 1], [1, 0, 2]]
    assert topk_with_ties(s, 10).tolist() == [[2, 0, 1], [1, 0, 2]]
    assert topk_with_ties(s, 2).tolist() == [[2, 0], [1, 0]]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_topk_property_matches_stable_sort(data):
    b, n = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 30))
    k = data.draw(st.integers(1, 35))
    vals = data.draw(st.lists(st.sampled_from([0.0, 1.0, 2.0, 3.0, -INF]), min_size=b * n, max_size=b * n))
    s = torch.tensor(vals).reshape(b, n)
    expected = [sorted(range(n), key=lambda i: (-row[i], i))[:k] for row in s.tolist()]
    assert topk_with_ties(s, k).tolist() == expected


# ----------------------------------------------------------------- ranking from hits
def test_ranking_literal_values():
    hits = torch.tensor([[0, 1, 0, 1, 0], [0, 0, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    nrel = torch.tensor([3, 1, 0])
    r = ranking_metrics_from_hits(hits, nrel, ALL5 + ["NDCG@2", "MRR@1"])
    # user 0: 3 relevant, hits at ranks 1 and 3
    assert r["hit@5"][0].item() == 1.0
    assert r["recall@5"][0].item() == pytest.approx(2 / 3)
    assert r["precision@5"][0].item() == pytest.approx(2 / 5)
    assert r["mrr@5"][0].item() == pytest.approx(1 / 2)
    # (1/log2 3 + 1/log2 5) / (1 + 1/log2 3 + 1/log2 4) = 1.0616063 / 2.1309298
    assert r["ndcg@5"][0].item() == pytest.approx(0.4981890, abs=1e-6)
    # ndcg@2: (1/log2 3) / (1 + 1/log2 3) = 0.6309298 / 1.6309298
    assert r["ndcg@2"][0].item() == pytest.approx(0.3868528, abs=1e-6)
    assert r["mrr@1"][0].item() == 0.0
    # user 1: no hit -> zeros
    assert all(r[m][1].item() == 0.0 for m in ALL5)
    # user 2: no relevant item -> NaN everywhere
    assert all(math.isnan(r[m][2].item()) for m in r)
    assert all(v.dtype == torch.float64 for v in r.values())
    with pytest.raises(ValueError):
        ranking_metrics_from_hits(hits, nrel, ["rmse"])


def test_ranking_short_list_pads_misses():
    # only 2 ranked items but k=5: missing ranks are misses, precision still /5
    r = ranking_metrics_from_hits(torch.tensor([[True, True]]), torch.tensor([2]), ["precision@5", "ndcg@5"])
    assert r["precision@5"].item() == pytest.approx(2 / 5)
    assert r["ndcg@5"].item() == pytest.approx(1.0)


def test_full_ranking_with_tie_at_boundary():
    # items 1 and 2 tie; lower index (1, not relevant) ranks first, so item 2 falls outside top-2
    scores = torch.tensor([[3.0, 1.0, 1.0, 0.0]])
    rel = torch.tensor([[False, False, True, False]])
    r = full_ranking_metrics(scores, rel, ["hit@2", "hit@3", "mrr@3"])
    assert r["hit@2"].item() == 0.0 and r["hit@3"].item() == 1.0
    assert r["mrr@3"].item() == pytest.approx(1 / 3)


def _naive(scores: list[float], rel: list[bool], base: str, k: int) -> float:
    n = len(scores)
    order = sorted(range(n), key=lambda i: (-scores[i], i))
    nrel = sum(rel)
    if nrel == 0:
        return float("nan")
    top = [rel[i] for i in order[:k]]
    nh = sum(top)
    if base == "hit":
        return float(nh > 0)
    if base == "recall":
        return nh / nrel
    if base == "precision":
        return nh / k
    if base == "mrr":
        return next((1 / (r + 1) for r, h in enumerate(top) if h), 0.0)
    dcg = sum(1 / math.log2(r + 2) for r, h in enumerate(top) if h)
    idcg = sum(1 / math.log2(r + 2) for r in range(min(nrel, k)))
    return dcg / idcg


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_full_ranking_property_vs_naive(data):
    b, n = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 12))
    vals = data.draw(st.lists(st.sampled_from([0.0, 1.0, 2.0, 3.0, -INF]), min_size=b * n, max_size=b * n))
    rels = data.draw(st.lists(st.booleans(), min_size=b * n, max_size=b * n))
    ks = data.draw(st.lists(st.integers(1, 15), min_size=1, max_size=3, unique=True))
    metrics = [f"{m}@{k}" for m in ("recall", "hit", "ndcg", "mrr", "precision") for k in ks]
    s, rel = torch.tensor(vals).reshape(b, n), torch.tensor(rels).reshape(b, n)
    got = full_ranking_metrics(s, rel, metrics)
    for name in metrics:
        base, k = parse_metric(name)
        exp = [_naive(s[u].tolist(), rel[u].tolist(), base, k) for u in range(b)]
        np.testing.assert_allclose(got[name].numpy(), exp, rtol=1e-12, atol=1e-12, err_msg=name)


def test_relevant_from_csr():
    indptr, indices = np.array([0, 2, 2, 5]), np.array([1, 3, 0, 2, 4])
    m = relevant_from_csr(indptr, indices, np.array([2, 1, 0]), 5)
    assert m.tolist() == [
        [True, False, True, False, True],
        [False] * 5,
        [False, True, False, True, False],
    ]
    assert relevant_from_csr(torch.tensor([0, 0]), torch.tensor([], dtype=torch.long), [0], 3).tolist() == [[False] * 3]


# ----------------------------------------------------------------- sampled
def test_sampled_literal_with_tie():
    pos = torch.tensor([3.0, 1.0, 2.0])
    neg = torch.tensor([[1.0, 2.0, 0.0], [1.0, 5.0, 0.0], [4.0, 5.0, 6.0]])
    # ranks: 0; 2 (5 is greater, the tie at 1.0 counts against the positive); 3
    r = sampled_ranking_metrics(pos, neg, ["hit@1", "hit@3", "ndcg@3", "MRR@3"])
    assert r["hit@1"].tolist() == [1.0, 0.0, 0.0]
    assert r["hit@3"].tolist() == [1.0, 1.0, 0.0]
    assert r["ndcg@3"].tolist() == pytest.approx([1.0, 0.5, 0.0])  # 1/log2(0+2), 1/log2(2+2)
    assert r["mrr@3"].tolist() == pytest.approx([1.0, 1 / 3, 0.0])
    with pytest.raises(ValueError):
        sampled_ranking_metrics(pos, neg, ["recall@3"])


# ----------------------------------------------------------------- rating / classification
def test_rating_metrics():
    r = rating_metrics(torch.tensor([1.0, 2.0, 3.0]), [1.0, 4.0, 0.0], ["MSE", "rmse", "mae"])
    # errors 0, -2, 3: mse = 13/3, mae = 5/3
    assert r == pytest.approx({"mse": 13 / 3, "rmse": math.sqrt(13 / 3), "mae": 5 / 3})
    with pytest.raises(ValueError):
        rating_metrics([1.0], [1.0], ["auc"])


def test_auc_with_ties():
    y = [0, 0, 1, 1, 0, 1]
    s = [0.1, 0.4, 0.4, 0.8, 0.8, 0.9]
    # pos vs neg pairs (negs 0.1, 0.4, 0.8): 0.4 -> 1 + 0.5 + 0; 0.8 -> 1 + 1 + 0.5; 0.9 -> 3; total 7/9
    assert classification_metrics(y, y_score=s, metrics=["auc"])["auc"] == pytest.approx(7 / 9)
    assert classification_metrics(y, y_score=[0.5] * 6)["auc"] == pytest.approx(0.5)
    with pytest.raises(ValueError):
        classification_metrics([1, 1], y_score=[0.2, 0.3], metrics=["auc"])


def test_f1_micro_vs_macro():
    yt, yp = [0, 0, 0, 0, 1, 2], [0, 0, 0, 0, 0, 1]
    r = classification_metrics(yt, yp)
    # tp=(4,0,0) fp=(1,1,0) fn=(0,1,1): micro = 8/(8+2+2); macro = (8/9 + 0 + 0)/3
    assert r["accuracy"] == pytest.approx(4 / 6)
    assert r["f1_micro"] == pytest.approx(2 / 3)
    assert r["f1_macro"] == pytest.approx(8 / 27)
    # class 1 absent from both y_true and y_pred is ignored by macro F1
    assert classification_metrics([0, 2, 2], [0, 2, 2], metrics=["f1_macro"])["f1_macro"] == 1.0


# ----------------------------------------------------------------- accumulator
def test_accumulator_excludes_nan_users():
    acc = MetricAccumulator()
    acc.update(ranking_metrics_from_hits(torch.tensor([[1, 0], [0, 1]]).bool(), torch.tensor([1, 0]), ["hit@2"]),
               torch.tensor([7, 3]))
    acc.update({"hit@2": torch.tensor([0.0])}, torch.tensor([5]))
    assert acc.compute() == {"hit@2": pytest.approx(0.5)}  # (1 + 0) / 2, user 3 excluded
    assert acc.n_excluded == 1
    assert acc.user_ids.tolist() == [7, 3, 5]
    np.testing.assert_array_equal(acc.per_user()["hit@2"], [1.0, np.nan, 0.0])
