"""Cold-start splits: which items and users go where (seeded, exact), bad ratios refused by key,
the cold-only metrics beside the overall ones, and the note of an ID-only model."""

import json
import logging

import numpy as np
import pytest

from mmkgrec.cli import main
from mmkgrec.config import load_config
from mmkgrec.data import build_dataset, load_dataset, split_dataset
from mmkgrec.data.split import cold_item_split, cold_user_split
from mmkgrec.data.split_factory import split_from_config, splitter
from mmkgrec.errors import ConfigError
from mmkgrec.evaluation.cold import cold_subsets, evaluate_cold
from mmkgrec.evaluation.ranking import FullRankingEvaluator, SampledEvaluator

from helpers import FixedScores, make_split


def _grid(n_users=6, n_items=10):
    """Every user interacted with every item, in time order."""
    users = [f"u{u}" for u in range(n_users) for _ in range(n_items)]
    items = [f"i{i}" for _ in range(n_users) for i in range(n_items)]
    return build_dataset("t", users, items, timestamp=np.arange(float(n_users * n_items)))


def _items(ds, inter):
    return {str(x) for x in ds.item_ids[inter.item]}


def test_cold_item_split_keeps_its_items_out_of_training_half_valid_half_test():
    ds = _grid()
    s = cold_item_split(ds, 0.4, seed=7)
    # 4 of the 10 items; the first two drawn (seed 7) are validation-only, the others test-only
    assert ds.item_ids[s.cold_items].tolist() == ["i0", "i6", "i8", "i9"]
    valid_cold, test_cold = {"i0", "i9"}, {"i6", "i8"}
    assert not (_items(ds, s.train) & (valid_cold | test_cold))
    assert valid_cold <= _items(ds, s.valid) and not (valid_cold & _items(ds, s.test))
    assert test_cold <= _items(ds, s.test) and not (test_cold & _items(ds, s.valid))
    # every user saw every cold item: all 6 x 4 cold interactions are kept
    cold = np.isin(ds.item_ids[s.valid.item], list(valid_cold))
    assert cold.sum() == 12 and np.isin(ds.item_ids[s.test.item], list(test_cold)).sum() == 12
    # the 6 warm items per user are split random_ratio 8:1:1 (RecBole's rounding: 4, 1, 1)
    assert np.bincount(s.train.user).tolist() == [4] * 6
    assert np.bincount(s.valid.user).tolist() == [1 + 2] * 6
    assert np.bincount(s.test.user).tolist() == [1 + 2] * 6
    d = s.describe()
    assert (d["cold_items"], d["cold_items_valid"], d["cold_items_test"]) == (4, 2, 2)
    assert d["dropped_users"] == 0 and len(s.train) + len(s.valid) + len(s.test) == len(ds.inter)
    # seeded: the same seed gives the same split, another seed other cold items
    again = cold_item_split(ds, 0.4, seed=7)
    assert np.array_equal(again.train.keys(10), s.train.keys(10))
    assert not np.array_equal(cold_item_split(ds, 0.4, seed=8).cold_items, s.cold_items)
    # an odd count: the extra cold item goes to test
    d = cold_item_split(ds, 0.3, seed=7).describe()
    assert (d["cold_items_valid"], d["cold_items_test"]) == (1, 2)


def test_cold_item_split_drops_a_user_left_without_training_interactions():
    # user z interacted with the cold items only: no training part, dropped with them
    base = _grid(4, 10)
    users = list(base.user_ids[base.inter.user]) + ["z", "z"]
    items = list(base.item_ids[base.inter.item]) + ["i0", "i6"]
    ds = build_dataset("t", users, items, timestamp=np.arange(float(len(users))))
    s = cold_item_split(ds, 0.4, seed=7)
    z = int(np.flatnonzero(ds.user_ids == "z")[0])
    assert z not in s.train.user and z not in s.valid.user and z not in s.test.user
    assert s.describe()["dropped_users"] == 1 and s.describe()["dropped_interactions"] == 2


def test_cold_user_split_keeps_the_earliest_training_interactions_of_its_users():
    users = [f"u{u}" for u in range(4) for _ in range(10)]
    items = [f"i{(i * 3 + u) % 10}" for u in range(4) for i in range(10)]
    times = np.array([float((i * 7) % 10) for _ in range(4) for i in range(10)])
    ds = build_dataset("t", users, items, timestamp=times)
    s = cold_user_split(ds, 0.5, 1, seed=7)
    base = split_dataset(ds, "random_ratio", seed=7)
    assert ds.user_ids[s.cold_users].tolist() == ["u0", "u2"]
    # validation and test are random_ratio's; warm users keep all their training interactions
    for part in ("valid", "test"):
        assert np.array_equal(s.part(part).keys(10), base.part(part).keys(10))
    cold = np.isin(base.train.user, s.cold_users)
    assert np.array_equal(np.sort(s.train.keys(10)[~np.isin(s.train.user, s.cold_users)]),
                          np.sort(base.train.keys(10)[~cold]))
    # a cold user keeps the one training interaction with the earliest timestamp
    for u in s.cold_users:
        mine = base.train.user == u
        first = base.train.item[mine][np.argmin(base.train.timestamp[mine])]
        assert s.train.item[s.train.user == u].tolist() == [first]
    assert s.describe()["cold_user_dropped_train"] == int(cold.sum()) - 2
    assert s.describe()["cold_users"] == 2
    # none kept: max_train 0
    s0 = cold_user_split(ds, 0.5, 0, seed=7)
    assert not np.isin(s0.train.user, s0.cold_users).any()


def test_cold_user_split_without_timestamps_uses_file_order_and_says_so(caplog):
    users = [f"u{u}" for u in range(3) for _ in range(10)]
    items = [f"i{(5 - i) % 10}" for _ in range(3) for i in range(10)]
    ds = build_dataset("t", users, items)
    with caplog.at_level(logging.INFO, logger="mmkgrec"):
        s = cold_user_split(ds, 0.34, 2, seed=1)
    assert "no timestamps" in caplog.text and "file order" in caplog.text
    base = split_dataset(ds, "random_ratio", seed=1)
    (u,) = s.cold_users
    assert s.train.item[s.train.user == u].tolist() == base.train.item[base.train.user == u][:2].tolist()


@pytest.mark.parametrize("call, key", [
    (lambda ds: cold_item_split(ds, 1.0), "cold_item_ratio"),
    (lambda ds: cold_item_split(ds, -0.1), "cold_item_ratio"),
    (lambda ds: cold_item_split(ds, "0.2"), "cold_item_ratio"),
    (lambda ds: cold_item_split(ds, 0.15), "cold_item_ratio"),  # 1 cold item: one half empty
    (lambda ds: cold_user_split(ds, 1.0, 3), "cold_user_ratio"),
    (lambda ds: cold_user_split(ds, 0.1, 3), "cold_user_ratio"),  # 0 of the 6 users
    (lambda ds: cold_user_split(ds, 0.5, -1), "cold_user_max_train"),
])
def test_bad_cold_ratios_are_refused_naming_the_key(call, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        call(_grid())


def test_a_cold_ratio_that_leaves_no_training_interactions_is_refused():
    # 2 cold items of 3; each user has a single warm interaction, too short for 8:1:1
    ds = build_dataset("t", ["a", "a", "a", "b", "b", "b"], ["x", "y", "z"] * 2)
    with pytest.raises(ConfigError, match="'cold_item_ratio'.*no training"):
        cold_item_split(ds, 0.67, seed=0)


def test_the_config_refuses_ratios_out_of_range_and_the_factory_picks_the_cold_splits():
    for key, value in (("cold_item_ratio", 1), ("cold_user_ratio", 1.5), ("cold_item_ratio", -0.2),
                       ("cold_user_max_train", -1)):
        with pytest.raises(ConfigError, match=f"'{key}'"):
            load_config("BPR", "synthetic", overrides={key: value})
    for split in ("cold_item", "cold_user"):
        cfg = load_config("BPR", "synthetic", overrides={"split": split})
        assert splitter(cfg) == split
        s = split_from_config(load_dataset("synthetic", cfg), cfg)
        assert s.method == split and cold_subsets(s)
    with pytest.raises(ConfigError, match="'split'.*random_ratio"):  # ctr splits labelled pairs
        cfg = load_config("BPR", "synthetic", overrides={"split": "cold_item",
                                                         "eval_protocol": "ctr",
                                                         "valid_metric": "auc"})
        split_from_config(load_dataset("synthetic", cfg), cfg)
    assert cold_subsets(split_dataset(_grid(), "random_ratio")) == {}


def test_cold_metrics_count_only_the_cold_targets_or_users():
    # 3 users, 6 items; the scores rank each user's candidates; hand-worked hit@1
    split = make_split([(0, 0), (1, 0), (2, 1)], [], [(0, 4), (0, 2), (1, 3), (2, 5)], 3, 6)
    scores = [[0, 0, 5, 1, 4, 3],   # user 0: item 2 first (a warm target), item 4 second
              [0, 0, 2, 9, 0, 0],   # user 1: item 3 first
              [0, 0, 1, 0, 0, 2]]   # user 2: item 5 first
    model = FixedScores(scores)
    cold = np.array([False, False, False, False, True, True])
    _, acc, _ = FullRankingEvaluator(split, "test", ["hit@1", "recall@2"], items=cold).evaluate(model)
    assert acc.user_ids.tolist() == [0, 2]
    assert acc.per_user()["hit@1"].tolist() == [0.0, 1.0]  # user 0's first item is not cold
    assert acc.per_user()["recall@2"].tolist() == [1.0, 1.0]
    users = np.array([False, True, True])
    m, acc, _ = FullRankingEvaluator(split, "test", ["hit@1"], users=users).evaluate(model)
    assert acc.user_ids.tolist() == [1, 2] and m["hit@1"] == 1.0
    ev = SampledEvaluator(split, "test", ["hit@1"], n_negatives=1, users=users, items=cold)
    assert ev.pos_users.tolist() == [2] and ev.pos_items.tolist() == [5]
    with pytest.raises(ValueError, match="users must be a bool mask"):
        FullRankingEvaluator(split, "test", ["hit@1"], users=np.ones(2, dtype=bool))

    # through the split's own record of its cold items
    split.stats["cold_items"] = [4, 5]
    cfg = load_config("BPR", "synthetic", overrides={"topk": [1], "metrics": ["hit"]})
    res = evaluate_cold(split, model, cfg)
    assert list(res) == ["cold_items"]
    assert {k: res["cold_items"][k] for k in ("items", "targets", "users_evaluated")} == {
        "items": 2, "targets": 2, "users_evaluated": 2}
    assert res["cold_items"]["metrics"] == {"hit@1": 0.5}


def test_an_id_only_model_says_it_cannot_know_the_cold_items_and_evaluate_reports_them(
        tmp_path, capsys, caplog):
    out = tmp_path / "run"
    with caplog.at_level(logging.INFO, logger="mmkgrec"):
        assert main(["train", "--model", "BPR", "--dataset", "synthetic", "--out", str(out),
                     "--set", "split=cold_item", "--set", "cold_item_ratio=0.2", "--set",
                     "epochs=2", "--set", "show_progress=false"]) == 0
    notes = [r.getMessage() for r in caplog.records if "cold items" in r.getMessage()]
    assert notes == ["BPR uses no item content or KG: it scores the 40 cold items (no training "
                     "interaction) from their untrained initial parameters"]
    capsys.readouterr()
    assert main(["evaluate", str(out)]) == 0
    shown = json.loads(capsys.readouterr().out)
    cold = shown["cold_items"]
    assert cold["items"] == 40 and cold["targets"] > 0
    assert set(cold["metrics"]) == set(shown) - {"cold_items"}
    assert main(["train", "--model", "BPR", "--dataset", "synthetic", "--out",
                 str(tmp_path / "bad"), "--set", "split=cold_user",
                 "--set", "cold_user_ratio=1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cold_user_ratio" in err[0] and not (tmp_path / "bad").exists()
