"""LLMKGRec computes what it computed before its speed work: the loss and gradients of one
training batch (the CF and KG parts together) and the full-ranking scores of the first users, on a
small synthetic case (fixed seed, one thread), equal to 1e-5 those recorded from the
implementation before any speed change (``tests/data/llmkgrec_reference.npz``).

The cases cover every path of the model: the default (attention pooling, TransR, KG fusion),
TransE, no LM (ID embeddings), no KG, the hybrid with ID embeddings and a deeper MLP, the
one-pass encoder, several negatives per positive, items without text and a user without training
history. Any change to the model's hot path must keep this test passing; a deliberate change of
what the model computes regenerates the file
(``PYTHONPATH=src python tests/test_llmkgrec_exact.py --write``) and says why in its commit."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import (assert_equals_reference, build_model, fake_user_history_matrix,
                     first_batches, load_reference, write_reference)

REFERENCE = Path(__file__).parent / "data" / "llmkgrec_reference.npz"

BASE = {"embedding_size": 16, "attention_size": 8, "kg_embedding_size": 8,
        "matching_layers": [16], "train_batch_size": 64}
CASES = {
    "default": {},
    "transe": {"kg_embedding_method": "transe"},
    "no_lm": {"use_lm": False},
    "no_kg": {"use_kg": False},
    "hybrid": {"id_embeddings": True, "matching_layers": [16, 8]},
    "one_pass": {"user_encoder": "one_pass"},
    "num_neg": {"num_neg": 3},
    "no_history": {"_cut_user": 7},        # user 7 keeps no training interaction
    "kg_off": {"kg_loss_weight": 0.0},
}
N_USERS_SCORED = 32


def partial_features(dataset, modality, config=None):
    """Fake text vectors as ``helpers.fake_item_feature_matrix``, but every 11th item has none."""
    cats = np.array([int(c[0][3:]) for c in dataset.item_features["class"]])
    rng = np.random.default_rng(1)
    mat = rng.normal(size=(cats.max() + 1, 6))[cats] + 0.1 * rng.normal(size=(len(cats), 6))
    return mat.astype(np.float32), np.arange(len(cats)) % 11 != 3


def user_texts(split, config=None):
    """One-pass user vectors from the fake text vectors (as tests/test_llmkgrec.py's fixture)."""
    return fake_user_history_matrix(split, partial_features(split.dataset, "text")[0])


def run_case(split, overrides: dict) -> dict[str, np.ndarray]:
    """The first training batch's loss and gradients, then (after the optimiser-free train ->
    eval switch) the scores of the first users against every item, at one thread."""
    ov = dict(overrides)
    cut = ov.pop("_cut_user", None)
    if cut is not None:
        split = dataclasses.replace(split, train=split.train.take(
            np.flatnonzero(split.train.user != cut)))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, cfg = build_model("LLMKGRec", split, **{**BASE, **ov})
        model.train()
        batches = first_batches(model, split, cfg)
        assert len(batches) == 1  # one joint CF + KG batch (or CF alone without the KG)
        batch = batches[0]
        if cut is not None:  # the user without history is in the batch
            batch = {**batch, "users": torch.cat([batch["users"][:-1], torch.tensor([cut])])}
        model.zero_grad()
        loss = model.loss(batch)
        loss.backward()
        out = {"loss": loss.detach().numpy()}
        for name, p in model.named_parameters():
            if p.grad is not None:
                out[f"grad/{name}"] = p.grad.numpy().copy()
        model.eval()
        with torch.no_grad():
            model.prepare_eval()
            users = torch.arange(N_USERS_SCORED)
            out["scores"] = model.score_all(users).numpy()
            out["pair_scores"] = model.score(users, users % split.n_items).numpy()
        return out
    finally:
        torch.set_num_threads(threads)


# a training step computes every user and item ("whole", a batch that covers most users) or
# only the batch's own ("batch"); both must give the reference
SHARES = {"whole": 0.0, "batch": 2.0}


@pytest.mark.parametrize("path", list(SHARES))
@pytest.mark.parametrize("case", list(CASES))
def test_loss_gradients_and_scores_equal_the_reference(case, path, split, monkeypatch):
    import mmkgrec.features
    from mmkgrec.models.llmkgrec import LLMKGRec

    monkeypatch.setattr(LLMKGRec, "WHOLE_CATALOGUE_SHARE", SHARES[path])
    monkeypatch.setattr(mmkgrec.features, "item_feature_matrix", partial_features)
    monkeypatch.setattr(mmkgrec.features, "user_history_matrix", user_texts)
    assert_equals_reference(run_case(split, CASES[case]), load_reference(REFERENCE), case)


@pytest.mark.parametrize("case", ["default", "no_history", "num_neg"])
def test_fallback_pooling_equals_the_reference(case, split, monkeypatch):
    """Logits too spread for the one-product pooling: the gathered-history path gives the same."""
    import mmkgrec.features
    from mmkgrec.models.llmkgrec import LLMKGRec
    from mmkgrec.nn.matching import AttentionPooling

    monkeypatch.setattr(mmkgrec.features, "item_feature_matrix", partial_features)
    monkeypatch.setattr(AttentionPooling, "MAX_LOGIT_RANGE", -1.0)
    monkeypatch.setattr(LLMKGRec, "WHOLE_CATALOGUE_SHARE", 0.0)
    assert_equals_reference(run_case(split, CASES[case]), load_reference(REFERENCE), case)


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_llmkgrec_exact.py --write")
    import mmkgrec.features

    mmkgrec.features.item_feature_matrix = partial_features
    mmkgrec.features.user_history_matrix = user_texts
    write_reference(REFERENCE, lambda split, case, ov: run_case(split, ov), CASES)
