"""Sequences, next-item samples and the next-item evaluator, checked by hand on a tiny dataset."""

import numpy as np
import pytest
import torch

from mmkgrec.data.dataset import build_dataset
from mmkgrec.data.batches import SequenceBatches, SharedWindowBatches
from mmkgrec.data.sequences import EvalSamples, build_sequences
from mmkgrec.data.split import split_dataset
from mmkgrec.evaluation.sequential import NextItemEvaluator

from helpers import U1_SEQ, U1_TS, U2_SEQ, PredictPrevious, tiny

def test_csr_layout_time_order_ties_and_dropped_users():
    split = tiny()
    assert split.stats["dropped_users"] == 1  # user "3" (2 interactions) counted
    seqs = build_sequences(split)
    assert seqs.indptr.tolist() == [0, 10, 15, 15]
    assert seqs.items.tolist() == U1_SEQ + U2_SEQ  # ties (5, 7 at t=30) keep file order
    assert seqs.part_end.tolist() == [[8, 9, 10], [13, 14, 15], [15, 15, 15]]
    assert seqs.row(0, "train").tolist() == U1_SEQ[:8]
    assert seqs.row(1, "valid").tolist() == [11] and seqs.row(1, "test").tolist() == [10]
    # memory: one stored item per interaction of the split, nothing per position
    n = len(split.train) + len(split.valid) + len(split.test)
    assert seqs.items.size == n
    assert seqs.nbytes == 8 * (n + (split.n_users + 1) + 3 * split.n_users)


def test_leave_one_out_sequences():
    split = tiny("leave_one_out")
    seqs = build_sequences(split)
    assert seqs.items.tolist() == U1_SEQ + U2_SEQ
    assert seqs.targets("valid").tolist() == [8, 13] and seqs.targets("test").tolist() == [9, 14]


def _rows(seq, lengths):
    return [tuple(int(x) - 1 for x in s[:n]) for s, n in zip(seq, lengths)]


def test_training_samples_every_position_with_truncated_prefix():
    seqs = build_sequences(tiny())
    batches = SequenceBatches(seqs, max_len=3, batch_size=4)
    assert batches.n_samples == 7 + 2 and len(batches) == 3
    got = []
    for b in batches.epoch(np.random.default_rng(0)):
        assert b["seq"].shape[1] == int(b["lengths"].max())  # trimmed to the longest input
        pad = torch.arange(b["seq"].shape[1])[None, :] >= b["lengths"][:, None]
        assert torch.all(b["seq"][pad] == 0) and torch.all(b["seq"][~pad] > 0)
        got += list(zip(_rows(b["seq"], b["lengths"]), b["target"].tolist()))
    want = [((3,), 1), ((3, 1), 5), ((3, 1, 5), 7), ((1, 5, 7), 2), ((5, 7, 2), 8),
            ((7, 2, 8), 4), ((2, 8, 4), 6), ((14,), 13), ((14, 13), 12)]
    assert sorted(got) == sorted(want)
    # stored arrays are proportional to the interactions
    n = seqs.items.size
    for t in (batches.positions, batches.row_start, batches.shifted, batches.items):
        assert t.numel() <= n + 1
    # cloze windows end with the target
    cloze = SequenceBatches(seqs, max_len=3, batch_size=100, include_target=True)
    b = next(cloze.epoch(np.random.default_rng(0)))
    for row, target in zip(_rows(b["seq"], b["lengths"]), b["target"].tolist()):
        assert row[-1] == target and len(row) <= 3


@pytest.mark.parametrize("max_len", [2, 3, 20])
def test_shared_windows_give_exactly_the_per_sample_inputs(max_len):
    seqs = build_sequences(tiny())
    per_sample = SequenceBatches(seqs, max_len=max_len, batch_size=100)
    want = []
    for b in per_sample.epoch(np.random.default_rng(0)):
        want += list(zip(_rows(b["seq"], b["lengths"]), b["target"].tolist()))
    shared = SharedWindowBatches(seqs, max_len=max_len, batch_size=3)
    assert shared.n_samples == len(want) == 9
    got, n_batches = [], 0
    for b in shared.epoch(np.random.default_rng(1)):
        n_batches += 1
        rows = _rows(b["seq"], b["lengths"])
        for w, p, t in zip(b["target_window"].tolist(), b["target_pos"].tolist(),
                           b["target"].tolist()):
            got.append((rows[w][:p + 1], t))
    assert sorted(got) == sorted(want)
    assert n_batches <= len(shared)
    # windows: one per user for the first targets, then one per later target
    assert len(shared.start) == 2 + max(0, 7 - max_len) + max(0, 2 - max_len)


def test_evaluation_prefixes():
    seqs = build_sequences(tiny())
    valid, test = EvalSamples(seqs, "valid"), EvalSamples(seqs, "test")
    assert valid.users.tolist() == [0, 1] and valid.targets.tolist() == [9, 11]
    assert _rows(*valid.inputs(slice(0, 2), 3)) == [(8, 4, 6), (14, 13, 12)]
    assert _rows(*valid.inputs(slice(0, 2), 100)) == [tuple(U1_SEQ[:8]), tuple(U2_SEQ[:3])]
    assert test.targets.tolist() == [0, 10]
    assert _rows(*test.inputs(slice(0, 2), 3)) == [(4, 6, 9), (13, 12, 11)]
    rows, cols = test.history(slice(0, 2))
    assert cols[rows == 0].tolist() == U1_SEQ[:9] and cols[rows == 1].tolist() == U2_SEQ[:4]
    # several test interactions: each predicted from all before it, including earlier test ones
    seqs = build_sequences(tiny(ratios=(0.6, 0.2, 0.2)))
    test = EvalSamples(seqs, "test")
    assert test.targets.tolist()[:2] == [9, 0]
    assert _rows(*test.inputs(slice(0, 2), 100)) == [tuple(U1_SEQ[:8]), tuple(U1_SEQ[:9])]


def test_next_item_evaluator_by_hand_and_history_mask():
    split = tiny()
    model = PredictPrevious(split.n_items)
    metrics = ["mrr@10", "hit@10", "ndcg@10", "recall@1", "precision@10"]
    ev = NextItemEvaluator(split, "valid", metrics)
    m, acc, _ = ev.evaluate(model)
    # user 1: predicts 5, target 9 ranks 10th (ties by lower id: 5, 0, 1, 2, 3, 4, 6, 7, 8, 9)
    # user 2: last item 12 -> predicts 11 = target
    assert acc.user_ids.tolist() == [0, 1]
    pu = acc.per_user()
    assert pu["mrr@10"].tolist() == pytest.approx([0.1, 1.0])
    assert pu["ndcg@10"].tolist() == pytest.approx([1 / np.log2(11), 1.0])
    assert m["recall@1"] == pytest.approx(0.5) and m["precision@10"] == pytest.approx(0.1)
    masked = NextItemEvaluator(split, "valid", metrics, mask_history=True)
    pu = masked.evaluate(model)[1].per_user()
    # history 3 1 5 7 2 8 4 6 removed: ranking 0, 9, ... -> target second
    assert pu["mrr@10"].tolist() == pytest.approx([0.5, 1.0])
    # per-user value is the mean over the user's evaluation interactions
    split = tiny(ratios=(0.6, 0.2, 0.2))
    pu = NextItemEvaluator(split, "test", ["hit@1"]).evaluate(model)[1].per_user()
    # user 1's test targets 9 (last input 6 -> predicts 5) and 0 (last 9 -> 8): both miss;
    # user 2's test target 10 follows 11: hit
    assert pu["hit@1"].tolist() == [0.0, 1.0]


def test_sampled_next_item_protocol():
    split = tiny()
    ev = NextItemEvaluator(split, "test", ["hit@1", "ndcg@10", "recall@10"], sampled_negatives=3)
    assert ev.metrics == ["hit@1", "ndcg@10"] and ev.negatives.shape == (2, 3)
    seen = {0: set(U1_SEQ), 1: set(U2_SEQ)}
    for u, neg in zip(ev.samples.users.tolist(), ev.negatives.tolist()):
        assert not set(neg) & seen[u]
    m, _, _ = ev.evaluate(PredictPrevious(split.n_items))
    assert m["hit@1"] == pytest.approx(0.5)  # user 2 hits; user 1's target scores 0 like negatives


def test_content_filter_keeps_items_with_text_and_image(monkeypatch):
    import mmkgrec.features as features
    from mmkgrec.data import load_dataset

    bad = set()

    def fake(ds, modality, config=None):
        mask = np.ones(ds.n_items, dtype=bool)
        mask[:: 3 if modality == "text" else 5] = False
        bad.update(str(x) for x in ds.item_ids[~mask])
        return np.zeros((ds.n_items, 2), np.float32), mask

    monkeypatch.setattr(features, "item_feature_matrix", fake)
    cfg = {"data_format": "synthetic", "require_item_content": ["text", "image"],
           "item_min_inter": 5, "user_min_inter": 5}
    ds = load_dataset("synthetic", cfg)
    assert bad and not bad & {str(x) for x in ds.item_ids}
    assert ds.stats["removed_by_content_filter"] > 0
    assert np.bincount(ds.inter.item).min() >= 5 and np.bincount(ds.inter.user).min() >= 5
