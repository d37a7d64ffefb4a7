import math

import numpy as np
import pytest
import torch

from helpers import FixedScores, make_split

from mmkgrec.data import build_dataset, split_dataset
from mmkgrec.data.dataset import Interactions
from mmkgrec.data.split import Split
from mmkgrec.evaluation.metric_names import metric_names
from mmkgrec.evaluation.ranking import FullRankingEvaluator, SampledEvaluator


def test_full_ranking_masks_history_and_counts_only_users_with_targets():
    # 2 users, 5 items. user 0: train {0}, valid {1}, test {2}; user 1: train {3}, no valid/test.
    split = make_split([(0, 0), (1, 3)], [(0, 1)], [(0, 2)], 2, 5)
    # user 0 scores: item0 (train, masked) 9, item1 (valid, masked at test) 8, item4 7, item2 6
    scores = [[9, 8, 6, 0, 7], [0, 0, 0, 0, 0]]
    ev = FullRankingEvaluator(split, "test", ["hit@1", "mrr@2", "ndcg@2", "recall@2"])
    m, acc, _ = ev.evaluate(FixedScores(scores))
    # ranking after masking: item4, item2 -> first hit at rank 2
    assert m["hit@1"] == 0.0 and m["mrr@2"] == 0.5 and m["recall@2"] == 1.0
    assert math.isclose(m["ndcg@2"], 1 / math.log2(3))  # DCG 1/log2(3), IDCG 1
    assert acc.user_ids.tolist() == [0]  # user 1 has no test item: not evaluated
    # validation masks only training items: item1 is ranked first
    mv, _, _ = FullRankingEvaluator(split, "valid", ["hit@1"]).evaluate(FixedScores(scores))
    assert mv["hit@1"] == 1.0


def test_full_ranking_matches_naive_loop_over_chunks():
    rng = np.random.default_rng(0)
    n_users, n_items = 37, 50
    pairs = {(u, i) for u in range(n_users) for i in rng.choice(n_items, 12, replace=False)}
    pairs = sorted(pairs)
    rng.shuffle(pairs)
    train, test = pairs[: len(pairs) * 3 // 4], pairs[len(pairs) * 3 // 4:]
    split = make_split(train, [], test, n_users, n_items)
    scores = rng.integers(0, 5, (n_users, n_items)).astype(np.float32)  # many ties
    names = metric_names(["recall", "ndcg", "mrr", "hit", "precision"], [3, 10])
    m, acc, _ = FullRankingEvaluator(split, "test", names, batch_size=8).evaluate(FixedScores(scores))
    naive = {k: [] for k in names}
    for u in range(n_users):
        rel = {i for uu, i in test if uu == u}
        if not rel:
            continue
        seen = {i for uu, i in train if uu == u}
        cand = [i for i in range(n_items) if i not in seen]
        ranked = sorted(cand, key=lambda i: (-scores[u, i], i))
        for k in (3, 10):
            top = ranked[:k]
            hits = [i in rel for i in top]
            dcg = sum(1 / math.log2(r + 2) for r, h in enumerate(hits) if h)
            idcg = sum(1 / math.log2(r + 2) for r in range(min(k, len(rel))))
            first = next((r for r, h in enumerate(hits) if h), None)
            naive[f"recall@{k}"].append(sum(hits) / len(rel))
            naive[f"ndcg@{k}"].append(dcg / idcg)
            naive[f"mrr@{k}"].append(0 if first is None else 1 / (first + 1))
            naive[f"hit@{k}"].append(float(any(hits)))
            naive[f"precision@{k}"].append(sum(hits) / k)
    for k in names:
        assert math.isclose(m[k], np.mean(naive[k]), rel_tol=1e-9), k


def test_sampled_evaluator_is_fixed_and_excludes_known_items():
    ds = build_dataset("t", np.repeat(np.arange(20), 10).astype(str),
                       np.tile(np.arange(10), 20).astype(str))
    ds.item_ids = np.asarray([str(i) for i in range(300)], dtype=object)  # 290 never-seen items
    split = split_dataset(ds, "random_ratio")
    a = SampledEvaluator(split, "test", ["hit@5", "ndcg@5"], n_negatives=20, seed=0)
    b = SampledEvaluator(split, "test", ["hit@5", "ndcg@5"], n_negatives=20, seed=0)
    assert torch.equal(a.negatives, b.negatives)
    assert bool((a.negatives >= 10).all())  # the only items any user knows are 0..9
    scores = torch.zeros(20, 300)
    scores[:, :10] = 1.0  # positives above every negative
    m, _, _ = a.evaluate(FixedScores(scores))
    assert m["hit@5"] == 1.0 and m["ndcg@5"] == 1.0


def test_evaluation_progress_only_on_a_terminal(monkeypatch):
    """A bar over an evaluation pass on a terminal (rank 0, ``show_progress``); logs and pipes
    get the bare iterable, and the metrics are the same either way."""
    import io
    import sys

    from mmkgrec.evaluation.common import progress

    steps = range(3)
    assert progress(steps, "evaluating") is steps  # pytest captures stderr: not a terminal
    tty = io.StringIO()
    tty.isatty = lambda: True
    monkeypatch.setattr(sys, "stderr", tty)
    assert progress(steps, "evaluating", enabled=False) is steps
    assert list(progress(steps, "evaluating")) == [0, 1, 2] and "evaluating" in tty.getvalue()
    rng = np.random.default_rng(3)
    split = make_split([(u, int(i)) for u in range(50) for i in rng.choice(30, 5, replace=False)],
                       [], [(u, int(rng.integers(30))) for u in range(50)], 50, 30)
    model = FixedScores(rng.normal(size=(50, 30)))
    ev = FullRankingEvaluator(split, "test", ["ndcg@5"], batch_size=64)
    shown, _, _ = ev.evaluate(model)
    tty.seek(0)
    tty.truncate()
    ev.show_progress = True  # ~20 steps of 3 users instead of one chunk of 50
    assert ev.evaluate(model)[0] == shown and "evaluating" in tty.getvalue()


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_scores_are_named(bad):
    """A NaN or +inf score anywhere stops the evaluation naming its row and item; -inf (a
    masked item) does not, nor does a row of -inf only."""
    from mmkgrec.errors import NonFiniteError
    from mmkgrec.evaluation.common import check_finite_scores

    scores = torch.randn(4, 7)
    scores[0, 2] = -torch.inf
    scores[3] = -torch.inf
    check_finite_scores(scores)
    check_finite_scores(torch.full((2, 3), -torch.inf))
    check_finite_scores(torch.empty(0, 5))
    scores[2, 5] = bad
    with pytest.raises(NonFiniteError, match="row 2, item 5"):
        check_finite_scores(scores)
