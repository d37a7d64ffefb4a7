import numpy as np
import pytest

from mmkgrec.data import load_dataset
from mmkgrec.data.readers import read_atomic, read_int_triples, read_kgat_interactions
from mmkgrec.errors import DataFormatError, MMKGRecError

INTER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n" \
        "u1\ti1\t5\t10\nu1\ti2\t3\t11\nu2\ti1\t4\t12\n"


def test_atomic_typed_columns(atomic_dir):
    d = atomic_dir({"inter": INTER, "item": "item_id:token\ttitle:token_seq\tscore:float_seq\n"
                    "i1\tToy Story\t1 2.5\ni2\t\t\n"})
    t = read_atomic(d / "tiny.item")
    assert t.types == {"item_id": "token", "title": "token_seq", "score": "float_seq"}
    assert t.columns["title"] == [["Toy", "Story"], []]
    assert t.columns["score"][0].tolist() == [1.0, 2.5]
    inter = read_atomic(d / "tiny.inter")
    assert inter.columns["rating"].dtype == np.float64
    assert inter.columns["user_id"].tolist() == ["u1", "u1", "u2"]


@pytest.mark.parametrize("text,line,fragment", [
    ("user_id\titem_id:token\nu\ti\n", 1, "expected name:type"),
    ("user_id:token\titem_id:tokn\nu\ti\n", 1, "unknown type 'tokn'"),
    ("user_id:token\titem_id:token\nu\ti\nu2\n", 3, "expected 2 tab-separated fields, found 1"),
    ("user_id:token\titem_id:token\trating:float\nu\ti\t4\nu\tj\tfive\n", 3, "non-numeric value 'five'"),
    ("", 1, "empty file"),
])
def test_atomic_errors_name_file_and_line(atomic_dir, text, line, fragment):
    d = atomic_dir({"inter": text})
    with pytest.raises(DataFormatError) as e:
        read_atomic(d / "tiny.inter")
    assert f"tiny.inter, line {line}" in str(e.value)
    assert fragment in str(e.value)


def test_missing_required_column(atomic_dir):
    d = atomic_dir({"inter": "user_id:token\trating:float\nu\t3\n"})
    with pytest.raises(DataFormatError, match=r"missing required column\(s\) \['item_id'\]"):
        load_dataset(str(d))


def test_empty_after_filtering(atomic_dir):
    d = atomic_dir({"inter": INTER})
    with pytest.raises(MMKGRecError, match="empty after filtering"):
        load_dataset(str(d), {"user_min_inter": 5})


def test_link_rows_for_unknown_items_are_counted(atomic_dir, caplog):
    d = atomic_dir({"inter": INTER,
                    "kg": "head_id:token\trelation_id:token\ttail_id:token\nm1\tr\tm2\n",
                    "link": "item_id:token\tentity_id:token\ni1\tm1\nzz\tm9\nyy\tm8\n"})
    ds = load_dataset(str(d))
    assert ds.stats["link_rows_unknown_item"] == 2
    assert ds.item_entity.tolist() == ["m1", None]  # i2 has no link: normal, kept
    assert ds.n_items == 2
    assert sum("2 item row(s)" in r.message for r in caplog.records) == 1


def test_kgat_reader(tmp_path):
    p = tmp_path / "train.txt"
    p.write_text("0 1 2 3\n1 4\n2\n")
    u, i = read_kgat_interactions(p)
    assert u.tolist() == [0, 0, 0, 1] and i.tolist() == [1, 2, 3, 4]
    p.write_text("0 1 x\n")
    with pytest.raises(DataFormatError, match=r"train.txt, line 1: expected integer ids, found 'x'"):
        read_kgat_interactions(p)


def test_kgat_dataset_given_test(tmp_path):
    d = tmp_path / "kgbook"
    d.mkdir()
    (d / "train.txt").write_text("0 0 1 2\n1 1 2\n")
    (d / "test.txt").write_text("0 3\n1 0 0 9\n7 1\n")
    ds = load_dataset(str(d))
    # the row of unknown user 7 is dropped and counted; test-only items 3 and 9 join the
    # catalogue after the training items; the repeated 1-0 collapses
    assert ds.stats["test_rows_unknown"] == 1 and ds.stats["test_only_items"] == 2
    assert ds.item_ids.tolist() == ["0", "1", "2", "3", "9"]
    pairs = sorted(zip(ds.user_ids[ds.given_test.user], ds.item_ids[ds.given_test.item]))
    assert pairs == [("0", "3"), ("1", "0"), ("1", "9")]


def test_int_triples_ragged(tmp_path):
    p = tmp_path / "kg_final.txt"
    p.write_text("1 2 3\n4 5\n")
    with pytest.raises(DataFormatError, match="line 2: expected 3 fields, found 2"):
        read_int_triples(p)


def test_kgcn_dataset(tmp_path):
    d = tmp_path / "fm"
    d.mkdir()
    (d / "ratings_final.txt").write_text("0\t0\t1\n0\t1\t0\n1\t1\t1\n1\t0\t1\n")
    (d / "kg_final.txt").write_text("0\t0\t5\n1\t1\t5\n")
    ds = load_dataset(str(d), {"rating_threshold": 1})
    assert len(ds.inter) == 3 and ds.stats["removed_by_rating_threshold"] == 1
    assert ds.kg.shape == (2, 3) and ds.item_entity.tolist() == ["0", "1"]


def test_real_ml100k_counts(data_dir):
    ds = load_dataset("ml-100k")
    assert (ds.n_users, ds.n_items, len(ds.inter)) == (943, 1682, 100000)
    assert len(ds.kg) == 91631 and sum(e is not None for e in ds.item_entity) == 1598
    assert ds.item_features["class"][0] == ["Animation", "Children's", "Comedy"]
