import numpy as np
import pytest

from mmkgrec.data import build_dataset, load_dataset, split_dataset
from mmkgrec.data.dataset import kcore_mask
from mmkgrec.data.readers import read_atomic
from mmkgrec.data.export import export_recbole
from mmkgrec.data.split import ratio_counts
from mmkgrec.errors import MMKGRecError


def test_kcore_iterates_to_fixpoint():
    # user 0: items 0,1,2; user 1: items 0,1; user 2: item 2 only.
    # item_min=2 removes nothing at first (item 2 has two users); user_min=2 removes user 2,
    # which leaves item 2 with one user -> removed -> user 0 keeps 2 items -> fixpoint.
    users = np.array([0, 0, 0, 1, 1, 2])
    items = np.array([0, 1, 2, 0, 1, 2])
    keep = kcore_mask(users, items, 2, 2)
    assert keep.tolist() == [True, True, False, True, True, False]


def test_dedup_threshold_and_ids():
    ds = build_dataset("t", ["10", "10", "2", "2", "2"], ["a", "a", "b", "c", "a"],
                       rating=np.array([5, 4, 1, 5, 5.0]), timestamp=np.array([3, 1, 1, 2, 3.0]),
                       rating_threshold=2, dedup="first")
    # threshold drops (2,b); dedup keeps the earliest (10,a) at t=1 (rating 4)
    assert ds.stats == {"raw_interactions": 5, "removed_by_rating_threshold": 1, "removed_duplicates": 1}
    assert ds.user_ids.tolist() == ["2", "10"]  # numeric tokens sort numerically
    pairs = sorted(zip(ds.user_ids[ds.inter.user], ds.item_ids[ds.inter.item], ds.inter.rating))
    assert pairs == [("10", "a", 4.0), ("2", "a", 5.0), ("2", "c", 5.0)]


def test_ratio_counts_recbole_rule():
    # n=10 -> floor(1.0)=1 each; n=3 -> floor(0.3)=0 -> moved from train: [1,1,1]; n=2 -> [1,1,0]
    # then test cannot take from a train part of 1; n=25 -> [21, 2, 2]
    cnt = ratio_counts(np.array([10, 3, 2, 25]), [0.8, 0.1, 0.1])
    assert cnt.tolist() == [[8, 1, 1], [1, 1, 1], [1, 1, 0], [21, 2, 2]]


def _synthetic():
    return load_dataset("synthetic", {"data_format": "synthetic"})


def test_random_ratio_split_is_deterministic_and_per_user():
    ds = _synthetic()
    a = split_dataset(ds, "random_ratio", seed=1)
    b = split_dataset(ds, "random_ratio", seed=1)
    c = split_dataset(ds, "random_ratio", seed=2)
    assert np.array_equal(a.test.item, b.test.item) and not np.array_equal(a.test.item, c.test.item)
    counts = np.bincount(ds.inter.user)
    expect = ratio_counts(counts, [0.8, 0.1, 0.1])
    assert np.array_equal(np.bincount(a.test.user, minlength=ds.n_users), expect[:, 2])
    assert np.array_equal(np.bincount(a.valid.user, minlength=ds.n_users), expect[:, 1])
    keys = [set(p.keys(ds.n_items)) for p in (a.train, a.valid, a.test)]
    assert not (keys[0] & keys[1]) and not (keys[0] & keys[2]) and not (keys[1] & keys[2])
    assert sum(map(len, keys)) == len(ds.inter)


def test_time_ratio_and_leave_one_out_take_the_latest():
    ds = _synthetic()
    for method in ("time_ratio", "leave_one_out"):
        s = split_dataset(ds, method)
        last_train = np.full(ds.n_users, -np.inf)
        np.maximum.at(last_train, s.train.user, s.train.timestamp)
        first_valid = np.full(ds.n_users, np.inf)
        np.minimum.at(first_valid, s.valid.user, s.valid.timestamp)
        last_valid = np.full(ds.n_users, -np.inf)
        np.maximum.at(last_valid, s.valid.user, s.valid.timestamp)
        first_test = np.full(ds.n_users, np.inf)
        np.minimum.at(first_test, s.test.user, s.test.timestamp)
        assert np.all(last_train <= first_valid) and np.all(last_valid <= first_test)
    loo = split_dataset(ds, "leave_one_out")
    assert np.all(np.bincount(loo.test.user) == 1)


def test_equal_timestamps_keep_file_order():
    ds = build_dataset("t", ["u"] * 4, ["a", "b", "c", "d"], timestamp=np.zeros(4))
    s = split_dataset(ds, "leave_one_out")
    assert ds.item_ids[s.test.item].tolist() == ["d"] and ds.item_ids[s.valid.item].tolist() == ["c"]


def test_users_too_short_are_dropped_and_counted():
    ds = build_dataset("t", ["a", "a", "a", "b", "b"], ["1", "2", "3", "1", "2"])
    s = split_dataset(ds, "random_ratio")
    assert s.stats["dropped_users"] == 1 and s.stats["dropped_interactions"] == 2
    assert set(s.train.user) | set(s.valid.user) | set(s.test.user) == {ds.user_index("a")}


def test_given_split_carves_validation_from_train(tmp_path):
    d = tmp_path / "kg"
    d.mkdir()
    (d / "train.txt").write_text("0 " + " ".join(map(str, range(20))) + "\n1 0 1\n2 5\n")
    (d / "test.txt").write_text("0 20\n1 2\n2 6\n")
    ds = load_dataset(str(d))
    s = split_dataset(ds, "given", valid_ratio=0.1, seed=3)
    per_user_valid = np.bincount(s.valid.user, minlength=3)
    assert per_user_valid.tolist() == [2, 1, 0]  # floor(0.1*20)=2; a 2-item user gives 1; 1 item: 0
    assert len(s.test) == 3 and len(s.train) + len(s.valid) == 23


def test_export_recbole_roundtrip(tmp_path):
    ds = _synthetic()
    s = split_dataset(ds, "random_ratio")
    out = export_recbole(s, tmp_path, "syn")
    t = read_atomic(out / "syn.test.inter")
    assert t.columns["user_id"].tolist() == ds.user_ids[s.test.user].tolist()
    assert t.columns["item_id"].tolist() == ds.item_ids[s.test.item].tolist()
    assert np.allclose(t.columns["timestamp"], s.test.timestamp)
    assert (out / "syn.kg").is_file() and (out / "syn.link").is_file()
    assert not list(out.glob("*.tmp*"))


def test_unknown_split_and_missing_timestamps():
    ds = build_dataset("t", ["a"] * 3, ["1", "2", "3"])
    with pytest.raises(MMKGRecError, match="needs timestamps"):
        split_dataset(ds, "time_ratio")
    with pytest.raises(MMKGRecError, match="unknown split"):
        split_dataset(ds, "by_magic")
