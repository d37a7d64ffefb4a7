"""Accuracy by item popularity: the groups, the restricted full ranking, the API and the CLI."""

import json
import math

import numpy as np
import pytest

from mmkgrec import load
from mmkgrec.cli import main
from mmkgrec.config import load_config
from mmkgrec.errors import ConfigError
from mmkgrec.evaluation.ranking import FullRankingEvaluator, SampledEvaluator
from mmkgrec.evaluation.sequential import NextItemEvaluator
from mmkgrec.evaluation.popularity import evaluate_by_popularity, popularity_groups

from helpers import FixedScores, PredictPrevious, make_split, tiny


def _worked_split():
    # 3 users, 6 items. Training counts: item0 3, item1 2, item2 2, item3 1, item4 0, item5 0.
    train = [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (1, 2), (2, 2), (2, 3)]
    # test: user 0 -> {2, 4}, user 1 -> {3}, user 2 -> {5}
    test = [(0, 2), (0, 4), (1, 3), (2, 5)]
    return make_split(train, [], test, 3, 6)


def test_groups_cut_items_by_training_count_most_popular_first():
    split = _worked_split()
    # sorted by count, ties by lower index: 0 (3), 1 (2), 2 (2), 3 (1), 4 (0), 5 (0)
    assert popularity_groups(split, 3).tolist() == [0, 0, 1, 1, 2, 2]
    assert popularity_groups(split, 4).tolist() == [0, 0, 1, 1, 2, 3]  # 6 = 2 + 2 + 1 + 1
    assert popularity_groups(split, 1).tolist() == [0] * 6
    for bad in (0, 7, 1.5):
        with pytest.raises(ValueError, match="n_groups"):
            popularity_groups(split, bad)


def test_restricted_ranking_counts_only_the_groups_targets():
    split = _worked_split()
    # every item is ranked; only the targets among `items` are relevant
    scores = [[0, 0, 5, 1, 4, 3],   # user 0 (train 0, 1 masked): 2, 4, 5, 3 -> tail item 4 at rank 2
              [0, 0, 2, 1, 0, 0],   # user 1 (train 0, 1, 2 masked): 3 first
              [0, 0, 0, 0, 0, 1]]   # user 2 (train 0, 2, 3 masked): 5 first
    tail = np.array([False, False, False, False, True, True])
    m, acc, _ = FullRankingEvaluator(split, "test", ["hit@1", "recall@2", "ndcg@2"],
                                     items=tail).evaluate(FixedScores(scores))
    assert acc.user_ids.tolist() == [0, 2]  # user 1 has no test item in the tail
    pu = acc.per_user()
    assert pu["hit@1"].tolist() == [0.0, 1.0]  # user 0's rank-1 item 2 is not a tail target
    assert pu["recall@2"].tolist() == [1.0, 1.0]
    assert pu["ndcg@2"][0] == pytest.approx(1 / math.log2(3))  # one relevant item, at rank 2
    with pytest.raises(ValueError, match="bool mask"):
        FullRankingEvaluator(split, "test", ["hit@1"], items=np.ones(5, dtype=bool))


def test_by_popularity_partitions_the_targets_and_one_group_is_the_plain_evaluation():
    split = _worked_split()
    rng = np.random.default_rng(0)
    model = FixedScores(rng.normal(size=(3, 6)))
    cfg = load_config("BPR", "synthetic", overrides={"topk": [2], "metrics": ["recall", "ndcg"]})
    groups = evaluate_by_popularity(split, model, cfg, 3)
    assert [g["targets"] for g in groups] == [0, 2, 2]  # test items 2, 3 | 4, 5
    assert [g["users"] for g in groups] == [0, 2, 2]
    assert [g["train_interactions"] for g in groups] == [[2, 3], [1, 2], [0, 0]]
    assert [g["items"] for g in groups] == [2, 2, 2]
    assert len(groups[0]["per_user"]["user_ids"]) == 0 and math.isnan(groups[0]["metrics"]["recall@2"])
    (one,) = evaluate_by_popularity(split, model, cfg, 1)
    plain, _, _ = FullRankingEvaluator(split, "test", ["recall@2", "ndcg@2"]).evaluate(model)
    assert one["metrics"] == pytest.approx(plain)
    with pytest.raises(ConfigError, match="eval_protocol"):  # labelled pairs, not a ranking
        evaluate_by_popularity(split, model, cfg.updated(eval_protocol="ctr"), 2)


def test_sampled_and_next_item_protocols_take_the_item_subset():
    split = _worked_split()
    tail = np.array([False, False, False, False, True, True])
    ev = SampledEvaluator(split, "test", ["hit@1"], n_negatives=1, items=tail)
    assert ev.pos_users.tolist() == [0, 2] and ev.pos_items.tolist() == [4, 5]

    split = tiny(ratios=(0.6, 0.2, 0.2))  # test targets: user 0 -> 9, 0; user 1 -> 10
    model = PredictPrevious(split.n_items)  # hits user 1's target 10 only
    only = np.zeros(split.n_items, dtype=bool)
    only[[0, 9]] = True
    ev = NextItemEvaluator(split, "test", ["hit@1"], items=only)
    assert ev.samples.targets.tolist() == [9, 0] and ev.samples.users.tolist() == [0, 0]
    _, acc, _ = ev.evaluate(model)
    assert acc.user_ids.tolist() == [0] and acc.per_user()["hit@1"].tolist() == [0.0]
    only[:] = False
    only[10] = True
    _, acc, _ = NextItemEvaluator(split, "test", ["hit@1"], items=only).evaluate(model)
    assert acc.user_ids.tolist() == [1] and acc.per_user()["hit@1"].tolist() == [1.0]
    # a sequential model's groups use the next-item protocol through make_evaluator
    cfg = load_config("SASRec", "synthetic", overrides={"topk": [1], "metrics": ["hit"]})
    groups = evaluate_by_popularity(split, model, cfg, 2)
    assert sum(g["targets"] for g in groups) == 3
    hits = {int(u): v for g in groups for u, v in zip(g["per_user"]["user_ids"],
                                                      g["per_user"]["hit@1"])}
    assert hits[1] == 1.0


def test_cli_evaluate_by_popularity(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", "BPR", "--dataset", "synthetic", "--out", str(out),
                 "--set", "epochs=2", "--set", "show_progress=false"]) == 0
    n_test = len(load(out).split.test)
    capsys.readouterr()
    assert main(["evaluate", str(out), "--by-popularity", "3", "--set", "topk=[5]"]) == 0
    groups = json.loads(capsys.readouterr().out)
    assert [g["group"] for g in groups] == [0, 1, 2]
    assert all(set(g["metrics"]) == {"recall@5", "mrr@5", "ndcg@5", "hit@5", "precision@5"}
               for g in groups)
    assert sum(g["targets"] for g in groups) == n_test
    lo = [g["train_interactions"] for g in groups]
    assert lo[0][0] >= lo[1][1] and lo[1][0] >= lo[2][1]  # most popular group first
    assert main(["evaluate", str(out), "--by-popularity", "0"]) != 0
    assert "--by-popularity" in capsys.readouterr().err
