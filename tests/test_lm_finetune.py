"""Fine-tuning LLMKGRec's language model (``lm_finetune``), on tiny random language models saved in
tmp folders (``text_encoder: hf:<folder>``; nothing downloads): the tower gives the store's vectors
before any update, the model's loss is then the frozen model's, the language model's weights get
gradients and train at ``lm_learning_rate``, the one-pass encoder fine-tunes the users' texts, a
saved run reloads its tuned weights, and what cannot be fine-tuned says so."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mmkgrec
from helpers import QUIET, build_model, first_batches, reload_and_compare_scores
from mmkgrec.errors import ConfigError, MMKGRecError

pytestmark = pytest.mark.usefixtures("offline_cache")


@pytest.fixture
def lm(tiny_lm_folders):
    return {"text_encoder": f"hf:{tiny_lm_folders['bert']}"}


@pytest.mark.parametrize("kind", ["bert", "llama"])
def test_tower_gives_the_store_vectors_before_any_update(tiny_lm_folders, split, kind):
    from mmkgrec.features import extract_features, make_encoder, text_tower
    from mmkgrec.features.content import item_texts

    cfg = {"text_encoder": f"hf:{tiny_lm_folders[kind]}", "show_progress": False}
    stored = extract_features(split.dataset, "text", cfg)
    torch.set_num_threads(1)
    tower = text_tower(split, cfg)
    with torch.no_grad():
        got = tower().numpy()
    texts = item_texts(split.dataset)
    assert got.shape == stored.matrix.shape == (split.n_items, make_encoder(cfg["text_encoder"]).dim)
    np.testing.assert_allclose(got, stored.matrix, rtol=1e-5, atol=1e-6)
    assert all((np.abs(got[k]).sum() == 0) == (t is None) for k, t in enumerate(texts))


def test_finetuned_model_starts_as_the_frozen_one_and_its_lm_trains(split, lm):
    frozen, _ = build_model("LLMKGRec", split, **lm)
    model, cfg = build_model("LLMKGRec", split, lm_finetune=True, lm_learning_rate=1e-3, **lm)
    batch = first_batches(model, split, cfg)[0]
    frozen.train()
    model.train()
    torch.set_num_threads(1)
    assert torch.allclose(model.loss(batch), frozen.loss(batch), atol=1e-5)
    lm_params = dict(model.tower.named_parameters())
    assert lm_params
    groups = model.optimizer_groups(cfg)
    assert [g.get("lr") for g in groups] == [None, 1e-3]
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in lm_params.values()}
    assert not {id(p) for p in groups[0]["params"]} & {id(p) for p in lm_params.values()}
    model.loss(batch).backward()
    # the encoder's layers receive gradients (its pooler, which mean pooling never reads, none)
    got = {n for n, p in lm_params.items() if p.grad is not None and p.grad.abs().sum() > 0}
    assert any(n.startswith("lm.encoder.") for n in got)
    assert any(n.startswith("lm.embeddings.") for n in got)
    assert not any(n.startswith("lm.pooler.") for n in got)

    from mmkgrec.training.trainer import make_optimizer

    before = {n: p.detach().clone() for n, p in lm_params.items()}
    opt = make_optimizer(model.optimizer_groups(cfg), cfg)
    opt.step()
    moved = [n for n, p in lm_params.items() if not torch.equal(p, before[n])]
    assert any(n.startswith("lm.encoder.") for n in moved)
    # the evaluation reads the tuned language model, not the store's vectors
    model.eval()
    with torch.no_grad():
        model.prepare_eval()
        tuned = model._content("text")
    assert not torch.allclose(tuned, model.text, atol=1e-6)


def test_one_pass_finetunes_the_users_history_texts(split, lm):
    model, cfg = build_model("LLMKGRec", split, lm_finetune=True, user_encoder="one_pass", **lm)
    assert model.tower.n == split.n_users
    model.train()
    sum(model.loss(b) for b in first_batches(model, split, cfg)).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.tower.parameters())


def test_finetuned_run_reloads_its_tuned_weights(tmp_path, lm):
    out = tmp_path / "run"
    run = mmkgrec.train("LLMKGRec", "synthetic", out=str(out),
                        overrides={**QUIET, "epochs": 1, "lm_finetune": True,
                                   "lm_learning_rate": 1e-2, **lm})
    again = reload_and_compare_scores(run, out)
    # the reloaded language model is the tuned one, not the package's weights
    with torch.no_grad():
        assert not torch.allclose(again.model._content("text"), again.model.text, atol=1e-6)


def test_what_cannot_be_finetuned_says_so(split, lm, tmp_path):
    with pytest.raises(ConfigError, match="shuffle_features"):
        build_model("LLMKGRec", split, lm_finetune=True, shuffle_features=True, **lm)
    with pytest.raises(ConfigError, match="use_lm"):
        build_model("LLMKGRec", split, lm_finetune=True, use_lm=False, **lm)
    from mmkgrec.features import make_encoder, text_tower

    with pytest.raises(MMKGRecError, match="cannot be fine-tuned"):
        from mmkgrec.features.tower import TextTower

        TextTower(make_encoder("descriptor", modality="image"), ["x"])
    with pytest.raises(MMKGRecError, match="feature file"):
        text_tower(split, {"text_encoder": f"file:{tmp_path / 'x.npz'}"})
