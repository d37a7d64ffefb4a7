"""KGBM4Rec: every parameter learns, every switch matters, bad content is masked and counted, the
token states are computed once, and on ML-100K each task beats its trivial baseline."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

import mmkgrec
from helpers import ML100K_BASE, QUIET, assert_beats_popularity, build_model, first_batches
from mmkgrec.config import load_config
from mmkgrec.data import load_dataset, split_dataset
from mmkgrec.data.targets import classification_split
from mmkgrec.errors import MMKGRecError
from mmkgrec.features.tokens import TokenStateEncoder, clean_text, item_token_states
from mmkgrec.models import build_inputs, get_model_class

SWITCHES = {"early_fusion": False, "late_fusion": False, "cross_modal_attention": False,
            "use_graph": False, "conv_layer_norm": False, "modalities": ["text"]}


@pytest.fixture(autouse=True)
def _own_cache(request, tmp_path_factory, monkeypatch):
    """Token states of the synthetic texts in a store of the test's own (MiniLM runs locally).
    The real-data tests keep the run's store, so ML-100K's poster features, which other suites'
    real-data tests extract too, are computed once per test run rather than twice."""
    if "data_dir" not in request.fixturenames:
        monkeypatch.setenv("MMKGREC_CACHE", str(tmp_path_factory.getbasetemp() / "kgbm-cache"))


def _vectors(model):
    model.eval()
    with torch.no_grad():
        model.prepare_eval()
        return model.item_vectors().clone()


@pytest.mark.parametrize("task", ["ranking", "rating", "classification"])
def test_every_parameter_gets_a_gradient(split, fake_features, task):
    ov = {"task": task}
    if task == "classification":
        ov.update(target_column="class", valid_metric="f1_macro")
        data = classification_split(split.dataset, load_config(
            "KGBM4Rec", "synthetic", overrides={**QUIET, **ov}))
    else:
        ov["valid_metric"] = "rmse" if task == "rating" else "ndcg@10"
        data = split
    model, cfg = build_model("KGBM4Rec", data, **ov)
    model.train()
    for batch in first_batches(model, data, cfg):
        model.loss(batch).backward()
    dead = [n for n, p in model.named_parameters()
            if p.grad is None or not torch.count_nonzero(p.grad)]
    assert not dead, dead


@pytest.mark.parametrize("key", sorted(SWITCHES))
def test_each_switch_changes_the_output(split, fake_features, key):
    """Same seed, the parameters both models have copied from the full model: turning one switch
    off changes the item vectors."""
    full, _ = build_model("KGBM4Rec", split)
    off, _ = build_model("KGBM4Rec", split, **{key: SWITCHES[key]})
    own = off.state_dict()
    off.load_state_dict({k: v for k, v in full.state_dict().items()
                         if k in own and own[k].shape == v.shape}, strict=False)
    a, b = _vectors(full), _vectors(off)
    assert not torch.allclose(a, b, atol=1e-5), key


def test_text_items_per_batch_trains_every_text_parameter(split, fake_features):
    model, cfg = build_model("KGBM4Rec", split, text_items_per_batch=16)
    model.train()
    model.on_epoch_start(0)
    cached = model.text_cache.clone()
    assert cached.abs().sum() > 0
    model.loss(first_batches(model, split, cfg)[0]).backward()
    assert all(p.grad is not None and torch.count_nonzero(p.grad)
               for p in model.text_encoder.parameters())
    assert (model.text_cache != cached).any(1).sum() <= 16  # only the fresh items move


@pytest.mark.parametrize("path", ["early_fusion", "cross_modal_attention", "late_fusion"])
def test_each_fusion_path_alone_carries_the_image(split, fake_features, path):
    """With only one fusion path on, changing item 0's image features changes item 0's vector."""
    ov = {k: k == path for k in ("early_fusion", "cross_modal_attention", "late_fusion")}
    model, _ = build_model("KGBM4Rec", split, **ov)
    before = _vectors(model)
    model.image_feat[0] += 3.0
    after = _vectors(model)
    assert not torch.allclose(before[0], after[0], atol=1e-5)


def test_items_without_image_or_text_are_masked_and_counted(split, monkeypatch):
    """Items with no image are counted and their (garbage) feature rows never reach the output;
    items with no text likewise."""
    import mmkgrec.features
    from helpers import fake_item_feature_matrix

    missing = np.arange(0, 200, 7)

    def holes(dataset, modality, config=None):
        mat, mask = fake_item_feature_matrix(dataset, modality, config)
        mask[missing] = False
        mat[missing] = 0.0
        return mat, mask

    monkeypatch.setattr(mmkgrec.features, "item_feature_matrix", holes)
    cfg = load_config("KGBM4Rec", "synthetic", overrides=QUIET)
    cls = get_model_class("KGBM4Rec")
    inputs = build_inputs(split, cls.requirements(cfg), "cpu", cfg)
    packed, mask = inputs.features["text_tokens"]
    mask[missing[:5]] = 0.0
    torch.manual_seed(0)
    model = cls(cfg, inputs)
    assert model.input_report["items_without_image"] == len(missing)
    assert model.input_report["items_without_text"] == 5
    before = _vectors(model)
    model.image_feat[missing] = 100.0  # what a zero fill without a mask would let through
    assert torch.allclose(before, _vectors(model))


def test_labels_without_training_items_are_counted(split, fake_features, caplog):
    cfg = load_config("KGBM4Rec", "synthetic", overrides={
        **QUIET, "task": "classification", "target_column": "class", "valid_metric": "f1_macro"})
    data = classification_split(split.dataset, cfg)
    cls = get_model_class("KGBM4Rec")
    inputs = build_inputs(data, cls.requirements(cfg), "cpu", cfg)
    labels = inputs.extra["labels"]
    labels.labels[:, 0] = False  # label 0 only at valid / test time
    with caplog.at_level(logging.WARNING):
        model = cls(cfg, inputs)
    assert model.input_report["labels_without_training_items"] == 1
    assert any("no training item" in r.message for r in caplog.records)
    model.eval()
    model.prepare_eval()
    assert model.classify(torch.arange(5)).shape == (5, labels.n_classes)


def test_long_token_sequences_are_cut_counted_and_reported_once(split, caplog):
    cfg = load_config("KGBM4Rec", "synthetic", overrides={**QUIET, "text_max_tokens": 4,
                                                          "text_clean": False})
    texts = [t for t in split.dataset.item_features["movie_title"]]
    with caplog.at_level(logging.WARNING):
        res = item_token_states(split.dataset, cfg)
    n_long = int((res.packed[:, 0] > 4).sum())
    assert res.n_truncated == n_long > 0, (n_long, texts[:3])
    lines = [r for r in caplog.records if "longer than 4 tokens" in r.message]
    assert len(lines) == 1
    # a second call reads the store: nothing encoded again, still reported (once)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        again = item_token_states(split.dataset, cfg)
    assert again.stats["encoded"] == 0 and again.n_truncated == n_long
    assert len([r for r in caplog.records if "longer than 4 tokens" in r.message]) == 1


def test_token_states_are_encoded_once_per_item(split, tmp_path):
    cfg = load_config("KGBM4Rec", "synthetic", overrides=QUIET)
    first = item_token_states(split.dataset, cfg, root=tmp_path)  # an empty store
    second = item_token_states(split.dataset, cfg, root=tmp_path)
    assert first.stats["encoded"] == int(first.mask.sum()) > 0
    assert second.stats["encoded"] == 0
    np.testing.assert_array_equal(first.packed, second.packed)


def test_a_bert_path_without_a_tokenizer_is_refused(tmp_path):
    (tmp_path / "config.json").write_text('{"hidden_size": 8, "model_type": "bert"}')
    with pytest.raises(MMKGRecError, match="no tokenizer"):
        TokenStateEncoder(f"bert:{tmp_path}", 16)


def test_cli_refuses_a_bert_path_without_tokenizer_in_one_line(tmp_path, capsys):
    from mmkgrec.cli import main

    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text('{"hidden_size": 8, "model_type": "bert"}')
    out = tmp_path / "run"
    rc = main(["train", "--model", "KGBM4Rec", "--dataset", "synthetic", "--out", str(out),
               "--set", f'token_encoder="bert:{bert}"', "--set", "show_progress=false"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and "no tokenizer" in err[-1] and str(bert) in err[-1]
    assert "Traceback" not in "\n".join(err)
    assert not out.exists() and not list(tmp_path.glob("run*"))


def test_text_cleaning_drops_stop_words_and_special_characters():
    assert clean_text("The Lord of the Rings: The Two Towers (2002)!") == "lord rings towers 2002"


def test_content_reaching_nothing_is_a_config_error(split, fake_features):
    with pytest.raises(mmkgrec.errors.ConfigError, match="late_fusion"):
        build_model("KGBM4Rec", split, early_fusion=False, late_fusion=False,
                    cross_modal_attention=False)


# ---- real data: each task against its trivial baseline ---------------------------------------
# Short runs: a few epochs, and the speed approximation text_items_per_batch (64 or 128 items through
# the BiLSTM per step; the exact text branch is covered by the gradient and switch tests above).
def _test_metrics(model, overrides):
    run = mmkgrec.train(model, "ml-100k", overrides={**QUIET, "threads": 1, **overrides})
    return run.metrics["test"]


def test_classification_beats_majority_on_ml100k(data_dir):
    ov = {"task": "classification", "target_column": "class", "valid_metric": "f1_macro",
          "load_kg": False, "stopping_step": 3}
    kgbm = _test_metrics("KGBM4Rec", {**ov, "epochs": 4, "train_batch_size": 64,
                                      "learning_rate": 0.005, "text_items_per_batch": 64})
    majority = _test_metrics("Majority", ov)
    print(f"KGBM4Rec {kgbm}\nMajority {majority}")
    assert kgbm["f1_macro"] > majority["f1_macro"] + 0.1
    assert kgbm["f1_micro"] > majority["f1_micro"] + 0.05


def test_rating_beats_bias_only_on_ml100k(data_dir):
    ov = {"task": "rating", "valid_metric": "rmse", "split": "kfold", "fold": 0,
          "load_kg": False, "stopping_step": 3}
    kgbm = _test_metrics("KGBM4Rec", {**ov, "epochs": 12, "train_batch_size": 4096,
                                      "learning_rate": 0.003, "text_items_per_batch": 128})
    bias = _test_metrics("BiasOnly", {**ov, "epochs": 30})
    print(f"KGBM4Rec {kgbm}\nBiasOnly {bias}")
    assert kgbm["rmse"] < bias["rmse"] - 0.005


def test_ranking_beats_pop_on_ml100k(data_dir, pop):
    assert_beats_popularity("KGBM4Rec", {"epochs": 10, "load_kg": False, "learning_rate": 0.003,
                                         "text_items_per_batch": 128}, pop)
