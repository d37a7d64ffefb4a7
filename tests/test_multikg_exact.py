"""Multi-KG4Rec computes what it computed before its speed work: the scores, losses and gradients
of a small synthetic case (fixed seed, one thread) equal, to 1e-5, those recorded from the
implementation before any speed change (``tests/data/multikg4rec_reference.npz``).

Any change to the fusion's or the model's hot path must keep this test passing; a deliberate
change of what the model computes regenerates the file
(``PYTHONPATH=src python tests/test_multikg_exact.py --write``) and says why in its commit."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import (assert_equals_reference, build_model, first_batches, load_reference,
                     write_reference)

REFERENCE = Path(__file__).parent / "data" / "multikg4rec_reference.npz"

# small but with the default structure: 8 heads, BFS of 8, one self-attention block, three cross
# blocks, two propagation layers, mess dropout on
BASE = {"embedding_size": 16, "fusion_heads": 8, "fusion_inner_size": 32, "layers": [8, 8],
        "kg_embedding_size": 8, "fusion_seq_len": 8, "fusion_blocks": 3}
CASES = {
    "default": {},
    "t2v": {"fusion": "t2v"},
    "concat_linear": {"entity_init": "concat_linear", "fusion_bfs_order": "id"},
    "partial": {"fusion_items_per_batch": 9},
    "dropout": {"fusion_dropout": 0.1},
    "text_only": {"modalities": ["text"], "fusion_blocks": 1, "fusion_self_layers": 0},
}
N_USERS_SCORED = 32
KG_GRADIENTS = ("default", "concat_linear")  # the KG phase's gradients (the file's size)


def partial_features(dataset, modality, config=None):
    """Fake features as ``helpers.fake_item_feature_matrix``, but some items lack the modality
    (every 7th has no image, every 11th no text), as on the real datasets."""
    cats = np.array([int(c[0][3:]) for c in dataset.item_features["class"]])
    rng = np.random.default_rng(1 if modality == "text" else 2)
    mat = rng.normal(size=(cats.max() + 1, 6))[cats] + 0.1 * rng.normal(size=(len(cats), 6))
    has = np.arange(len(cats)) % (11 if modality == "text" else 7) != 3
    return mat.astype(np.float32), has


def run_case(split, overrides: dict, kg_gradients: bool = True) -> dict[str, np.ndarray]:
    """One training step's CF and KG losses and gradients (after an attention refresh; the KG
    phase's gradients only with ``kg_gradients``) and the evaluation scores of the first users,
    at one thread and fixed seeds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, cfg = build_model("MultiKG4Rec", split, **{**BASE, **overrides})
        model.train()
        model.on_epoch_start(1)
        out = {}
        for k, batch in enumerate(first_batches(model, split, cfg)):
            phase = batch.get("phase", "cf")
            model.zero_grad()
            torch.manual_seed(100 + k)
            loss = model.loss(batch)
            loss.backward()
            out[f"{phase}/loss"] = loss.detach().numpy()
            for name, p in model.named_parameters():
                if p.grad is not None and (phase == "cf" or kg_gradients):
                    out[f"{phase}/grad/{name}"] = p.grad.numpy().copy()
        model.eval()
        with torch.no_grad():
            model.prepare_eval()
            out["scores"] = model.score_all(torch.arange(N_USERS_SCORED)).numpy()
        return out
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("case", list(CASES))
def test_scores_and_gradients_equal_the_reference(case, split, monkeypatch):
    import mmkgrec.features

    monkeypatch.setattr(mmkgrec.features, "item_feature_matrix", partial_features)
    assert_equals_reference(run_case(split, CASES[case], case in KG_GRADIENTS),
                            load_reference(REFERENCE), case)


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_multikg_exact.py --write")
    import mmkgrec.features

    mmkgrec.features.item_feature_matrix = partial_features
    write_reference(REFERENCE, lambda split, case, ov: run_case(split, ov, case in KG_GRADIENTS),
                    CASES)
