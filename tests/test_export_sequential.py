"""The sequential RecBole export: one row per next-item sample, exactly ours."""

import numpy as np
import pytest

from mmkgrec.cli import main
from mmkgrec.data import load_dataset, split_dataset
from mmkgrec.data.export import export_recbole
from mmkgrec.data.sequences import EvalSamples, SequenceBatches, build_sequences
from mmkgrec.errors import MMKGRecError

MAX_LEN = 4


def _split():
    return split_dataset(load_dataset("synthetic", {"data_format": "synthetic"}), "time_ratio")


def _read(path):
    lines = path.read_text().splitlines()
    assert lines[0] == "user_id:token\titem_id_list:token_seq\titem_id:token"
    rows = [line.split("\t") for line in lines[1:]]
    return [(u, h.split(" "), t) for u, h, t in rows]


def _expected(split, max_len):
    """Our samples recomputed from the split's parts directly (not through build_sequences):
    per user, each part in time order (ties in file order), train then valid then test."""
    ds = split.dataset
    per_user = {}
    for j, part in enumerate(("train", "valid", "test")):
        inter = split.part(part)
        for k in range(len(inter)):
            per_user.setdefault(int(inter.user[k]), []).append(
                (j, float(inter.timestamp[k]), k, ds.item_ids[inter.item[k]]))
    rows = {"train": [], "valid": [], "test": []}
    times = {"train": [], "valid": [], "test": []}
    for u in sorted(per_user):
        seq = sorted(per_user[u])
        items = [x[3] for x in seq]
        for p, (j, ts, _, item) in enumerate(seq):
            part = ("train", "valid", "test")[j]
            if part == "train" and p == 0:
                continue  # position 0 of the training part has no history
            rows[part].append((ds.user_ids[u], items[max(0, p - max_len):p], item))
            times[part].append(([x[1] for x in seq[max(0, p - max_len):p]], ts))
    return rows, times


def test_sequential_export_rows_are_our_samples(tmp_path):
    split = _split()
    out = export_recbole(split, tmp_path, "syn", sequential=True, max_len=MAX_LEN)
    rows = {part: _read(out / f"syn.{part}.inter") for part in ("train", "valid", "test")}
    expected, times = _expected(split, MAX_LEN)
    assert rows == expected
    # counts: the samples our trainer and evaluator use
    seqs = build_sequences(split)
    assert len(rows["train"]) == SequenceBatches(seqs, MAX_LEN, 64).n_samples
    assert len(rows["valid"]) == len(EvalSamples(seqs, "valid")) == len(split.valid)
    assert len(rows["test"]) == len(EvalSamples(seqs, "test")) == len(split.test)
    # histories: non-empty, truncated to max_len (and some reach it), in time order, and never
    # later than their target (no leakage)
    lens = [len(h) for part in rows.values() for _, h, _ in part]
    assert min(lens) >= 1 and max(lens) == MAX_LEN
    for part in times.values():
        for hist_ts, ts in part:
            assert hist_ts == sorted(hist_ts) and all(t <= ts for t in hist_ts)
    # the validation / test histories end with the user's latest items before the target
    ds = split.dataset
    last_train = {}
    for k in np.argsort(split.train.timestamp, kind="stable"):
        last_train[ds.user_ids[split.train.user[k]]] = ds.item_ids[split.train.item[k]]
    first_valid = {}
    for u, h, _ in rows["valid"]:
        first_valid.setdefault(u, h)
    assert all(h[-1] == last_train[u] for u, h in first_valid.items())
    assert not list(out.glob("*.tmp*"))


def test_sequential_export_cli_and_bad_length(tmp_path):
    assert main(["data", "export-recbole", "synthetic", "--out", str(tmp_path), "--sequential",
                 "--max-len", "3", "--set", "split=time_ratio"]) == 0
    rows = _read(tmp_path / "synthetic" / "synthetic.train.inter")
    assert rows and max(len(h) for _, h, _ in rows) == 3
    with pytest.raises(MMKGRecError, match="max_len"):
        export_recbole(_split(), tmp_path, "bad", sequential=True, max_len=0)
