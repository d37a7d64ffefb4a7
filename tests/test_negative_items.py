"""``negative_items``: training negatives among every item (``all``, the draws of the sampler before
the key existed) or among the items with training interactions (``seen``, the cold-item protocol);
every batcher that samples negatives honours it, a cold_item split under ``all`` warns once, a bad
value is one line, and a content model trained with ``seen`` ranks unseen items above the floor."""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import pytest
import torch

from mmkgrec.cli import main
from mmkgrec.config import load_config
from mmkgrec.data import load_dataset, split_dataset
from mmkgrec.data.batches import LabelledBatches, PairwiseBatches
from mmkgrec.data.sampling import KnownPairs, negative_pool, sample_negatives
from mmkgrec.data.split import cold_item_split
from mmkgrec.errors import ConfigError

from helpers import QUIET, build_model, model_batches, train_scores

SEEN = {"negative_items": "seen"}


@pytest.fixture(scope="module")
def synthetic():
    return load_dataset("synthetic", {"data_format": "synthetic"})


@pytest.fixture(scope="module")
def cold(synthetic):
    """A cold_item split of the synthetic data: 20% of the items without training interactions."""
    return cold_item_split(synthetic, 0.2, seed=3)


def _unseen(split) -> np.ndarray:
    return np.setdiff1d(np.arange(split.n_items), split.train.item)


def _digest(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def test_all_draws_are_those_of_the_sampler_before_the_key(synthetic):
    # the values below were drawn by the sampler before negative_items existed (same seeds)
    known = KnownPairs([0, 0, 0, 1, 1, 2], [0, 1, 2, 3, 4, 5], 3, 8)
    neg = sample_negatives(np.array([0, 1, 2, 0, 1]), 8, known, np.random.default_rng(123), n=3)
    assert neg.tolist() == [[4, 5, 4], [0, 7, 1], [2, 1, 2], [6, 6, 6], [6, 7, 7]]
    for split, want in ((split_dataset(synthetic, "random_ratio"), ("bb9ddc0007c285f5",
                                                                     "e02ddf0ac35bf443")),
                        (cold_item_split(synthetic, 0.1, seed=2020), ("3cbfce96c588ba1d",
                                                                      "9026656d9ea40ad5"))):
        cfg = {"train_batch_size": 512, "num_neg": 2, "negative_items": "all",
               "split": "random_ratio"}
        pairwise = PairwiseBatches.from_split(split, cfg)
        assert pairwise.pool is None
        got = _digest(b["neg_items"].numpy() for e in range(2)
                      for b in pairwise.epoch(np.random.default_rng(e)))
        labelled = LabelledBatches.from_split(split, {**cfg, "num_neg": 1})
        got_l = _digest(a for b in labelled.epoch(np.random.default_rng(5))
                        for a in (b["items"].numpy(), b["labels"].numpy()))
        assert (got, got_l) == want


def test_seen_never_draws_an_item_without_training_interactions(cold):
    unseen = _unseen(cold)
    assert len(unseen) >= 40  # the cold items (and any item nobody interacted with)
    pool = negative_pool(cold.train, cold.n_items, SEEN)
    assert np.array_equal(pool, np.setdiff1d(np.arange(cold.n_items), unseen))
    assert negative_pool(cold.train, cold.n_items, {"negative_items": "all"}) is None
    cfg = {"train_batch_size": 256, "num_neg": 3, **SEEN}
    pairwise = PairwiseBatches.from_split(cold, cfg)
    labelled = LabelledBatches.from_split(cold, cfg)
    drawn = [b["neg_items"].numpy().ravel() for e in range(3)
             for b in pairwise.epoch(np.random.default_rng(e))]
    drawn += [b["items"][b["labels"] == 0].numpy() for b in
              labelled.epoch(np.random.default_rng(0))]
    drawn = np.concatenate(drawn)
    assert not np.isin(drawn, unseen).any()
    assert set(np.unique(drawn)) == set(pool.tolist())  # every seen item can be drawn
    # and still never one of the user's own training items
    users = np.repeat(np.arange(cold.n_users), 50)
    neg = sample_negatives(users, cold.n_items, pairwise.known, np.random.default_rng(1), 2,
                           pool=pool)
    assert not pairwise.known.contains(np.repeat(users, 2), neg.ravel()).any()
    assert not np.isin(neg, unseen).any()


@pytest.mark.usefixtures("fake_features")
@pytest.mark.parametrize("name", ["LLMKGRec", "CKE", "KGAT", "VBPR", "BPR"])
def test_every_model_that_samples_negatives_honours_the_key(name, cold):
    unseen = _unseen(cold)
    model, cfg = build_model(name, cold, **SEEN)
    cf = [b for b in model_batches(model, cold, cfg).epoch(np.random.default_rng(0))
          if "neg_items" in b]
    assert cf and not np.isin(torch.cat([b["neg_items"].ravel() for b in cf]).numpy(),
                              unseen).any()
    model, cfg = build_model(name, cold)  # all: the unseen items are among the negatives
    cf = [b for b in model_batches(model, cold, cfg).epoch(np.random.default_rng(0))
          if "neg_items" in b]
    assert np.isin(torch.cat([b["neg_items"].ravel() for b in cf]).numpy(), unseen).any()


@pytest.mark.usefixtures("fake_features")
def test_mmraclkal_random_negatives_honour_the_key(cold):
    unseen = _unseen(cold)
    for neg, expect in (("seen", False), ("all", True)):
        model, _ = build_model("MMRACLKAL", cold, negative_items=neg, use_image=False)
        torch.manual_seed(0)
        drawn = model._random_items(torch.arange(cold.n_users).repeat(20), 5).numpy()
        assert np.isin(drawn, unseen).any() == expect, neg


@pytest.mark.usefixtures("fake_features")
def test_a_content_model_ranks_cold_items_above_the_floor_with_seen(cold):
    """LLMKGRec (fake category text vectors + KG) on the synthetic cold_item split: under ``all``
    the held-out items sink to the bottom of the ranking; under ``seen`` the test targets on them
    rank in the upper part (the text and KG carry the category each user prefers)."""
    test_cold = np.isin(cold.test.item, cold.cold_items) & (cold.test.user < 20)
    u, i = cold.test.user[test_cold], cold.test.item[test_cold]
    pct = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # many small ops: a second thread only slows them on a shared machine
    try:
        scores = {neg: train_scores("LLMKGRec", cold, epochs=5, negative_items=neg).numpy()
                  for neg in ("all", "seen")}
    finally:
        torch.set_num_threads(threads)
    for neg, s in scores.items():
        rank = (-s).argsort(1).argsort(1) / (cold.n_items - 1)  # 0: top, 1: bottom
        pct[neg] = (rank[:, cold.cold_items].mean(), rank[u, i].mean())
    assert pct["seen"][1] < 0.4, pct   # cold test targets well above the middle
    assert pct["all"][0] > 0.7, pct    # the leak this key removes: cold items sink
    assert pct["seen"][0] < pct["all"][0] - 0.2, pct


def test_cold_item_with_all_warns_once_and_seen_does_not(tmp_path, caplog):
    base = ["train", "--model", "BPR", "--dataset", "synthetic", "--set", "epochs=1",
            "--set", "show_progress=false", "--set", "split=cold_item"]
    with caplog.at_level(logging.WARNING):
        assert main([*base, "--out", str(tmp_path / "a")]) == 0
    lines = [r.getMessage() for r in caplog.records if "negative_items" in r.getMessage()]
    assert len(lines) == 1 and "negative_items: seen" in lines[0] and "\n" not in lines[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert main([*base, "--out", str(tmp_path / "b"), "--set", "negative_items=seen"]) == 0
        assert main(["train", "--model", "BPR", "--dataset", "synthetic", "--set", "epochs=1",
                     "--set", "show_progress=false", "--out", str(tmp_path / "c")]) == 0
    assert not [r for r in caplog.records if "negative_items" in r.getMessage()]


def test_a_bad_value_is_one_line_naming_the_key(tmp_path, capsys):
    with pytest.raises(ConfigError, match="negative_items.*'all'.*'seen'"):
        load_config("BPR", "synthetic", overrides={**QUIET, "negative_items": "unseen"})
    out = tmp_path / "run"
    assert main(["train", "--model", "BPR", "--dataset", "synthetic", "--out", str(out),
                 "--set", "negative_items=unseen"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "negative_items" in err[0] and not out.exists()


@pytest.mark.usefixtures("fake_features")
@pytest.mark.parametrize("name,extra", [
    ("SASRec", {}), ("GRU4Rec", {}), ("BERT4Rec", {}),
    ("MMRACLKAL", {"use_contrastive": False, "augment_p": 0.0, "item_id_embedding": True})])
def test_full_softmax_leaves_unseen_items_out_with_seen(name, extra, cold):
    """The sequential models' full softmax: an item without training interactions is never an
    input or a target, so its only gradient is the normaliser's push down (the leak). Under
    ``seen`` it leaves the normaliser and gets none; under ``all`` it is pushed."""
    unseen = torch.from_numpy(_unseen(cold)) + 1  # row 0 of the item table is padding
    pushed = {}
    for neg in ("seen", "all"):
        model, cfg = build_model(name, cold, negative_items=neg, **extra)
        assert model.item_emb is not None, name
        batch = next(iter(model_batches(model, cold, cfg).epoch(np.random.default_rng(0))))
        model.train()
        model.loss(batch).backward()
        pushed[neg] = float(model.item_emb.weight.grad[unseen].abs().max())
    assert pushed["seen"] == 0.0 and pushed["all"] > 0.0, pushed
