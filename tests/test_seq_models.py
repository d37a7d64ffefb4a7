"""GRU4Rec, SASRec and BERT4Rec: gradients, shapes, exactness of the shortcuts, training on the
synthetic data (consecutive items share a category), content item embeddings, and a short run on
ML-100K against popularity under the same next-item protocol."""

import numpy as np
import pytest
import torch

import mmkgrec
from mmkgrec.config import load_config
from mmkgrec.errors import ConfigError
from mmkgrec.data import load_dataset, split_dataset
from mmkgrec.evaluation.evaluator import make_evaluator
from mmkgrec.evaluation.sequential import NextItemEvaluator
from mmkgrec.models import ModelInputs, build_inputs, get_model_class
from mmkgrec.nn.transformer import SequenceTransformer
from mmkgrec.training.trainer import Trainer

MODELS = ["GRU4Rec", "SASRec", "BERT4Rec"]
QUIET = {"show_progress": False, "split": "time_ratio"}


@pytest.fixture(scope="module")
def split():
    return split_dataset(load_dataset("synthetic", {"data_format": "synthetic"}), "time_ratio")


def _model(name, split, inputs=None, **ov):
    cfg = load_config(name, "synthetic", overrides={**QUIET, **ov})
    cls = get_model_class(name)
    torch.manual_seed(0)
    inputs = inputs or build_inputs(split, cls.requirements(cfg), "cpu", cfg)
    return cls(cfg, inputs), cfg


def _batch(model, split, cfg, n=64):
    batches = model.make_batches(split, cfg)
    return batches.batch(torch.arange(n))


def test_registered_and_configured():
    from mmkgrec.models import registered_models

    assert {"GRU4Rec", "SASRec", "BERT4Rec"} <= set(registered_models())
    for name in MODELS:
        cfg = load_config(name, "synthetic")
        assert cfg["mask_history_seq"] is False and cfg["item_content"] is None
        assert get_model_class(name).input_type == "sequence"


@pytest.mark.parametrize("name", MODELS)
def test_every_parameter_gets_a_gradient_and_shapes(name, split):
    model, cfg = _model(name, split)
    batch = _batch(model, split, cfg)
    model.loss(batch).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname
    model.eval()
    with torch.no_grad():
        model.prepare_eval()
        s = model.score_sequences(batch["seq"], batch["lengths"])
        assert s.shape == (64, split.n_items) and torch.isfinite(s).all()
        users = torch.tensor([0, 5, 7])
        assert model.score_all(users).shape == (3, split.n_items)
        assert model.item_vectors().shape[0] == split.n_items


@pytest.mark.parametrize("causal", [True, False])
def test_query_index_shortcut_is_exact(causal):
    torch.manual_seed(0)
    enc = SequenceTransformer(2, 16, 2, 32, 0.0, 0.0).eval()
    x = torch.randn(5, 7, 16)
    lengths = torch.tensor([1, 7, 3, 5, 2])
    key_mask = torch.arange(7)[None, :] < lengths[:, None]
    full = enc(x, causal, key_mask)
    short = enc(x, causal, key_mask, query_index=lengths - 1)
    torch.testing.assert_close(short, full[torch.arange(5), lengths - 1], rtol=1e-5, atol=1e-5)
    rows, pos = torch.tensor([0, 1, 1, 3, 3]), torch.tensor([0, 2, 6, 4, 1])
    several = enc(x, causal, key_mask, query_index=(rows, pos))
    if causal:
        torch.testing.assert_close(several, full[rows, pos], rtol=1e-5, atol=1e-5)
    if causal:  # right padding after the last item changes nothing
        torch.testing.assert_close(enc(x[:1, :1], True, query_index=torch.tensor([0])), short[:1],
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["SASRec", "GRU4Rec"])
def test_padding_does_not_change_scores(name, split):
    model, cfg = _model(name, split)
    model.eval()
    seq = torch.tensor([[3, 9, 4, 0, 0, 0]])
    with torch.no_grad():
        a = model.score_sequences(seq, torch.tensor([3]))
        b = model.score_sequences(seq[:, :3], torch.tensor([3]))
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_bert4rec_cloze_masks_and_predicts_with_a_mask_token(split):
    model, cfg = _model("BERT4Rec", split, ft_ratio=0.0, mask_ratio=0.0)
    batch = _batch(model, split, cfg)
    seen = {}
    orig = model._hidden

    def spy(seq, query_index=None):
        seen["seq"] = seq.clone()
        return orig(seq, query_index)

    model._hidden = spy
    model.loss(batch)
    # mask_ratio 0: only the window's last item (the target) is masked
    masked = seen["seq"] == model.mask_token
    assert masked.sum(1).tolist() == [1] * 64
    assert masked[torch.arange(64), batch["lengths"] - 1].all()
    model.eval()
    with torch.no_grad():
        model.score_sequences(batch["seq"][:, :-1].clone(), (batch["lengths"] - 1).clamp_min(1))
    assert (seen["seq"] == model.mask_token).sum() == 64


SMALL = {"hidden_size": 32, "inner_size": 64}


@pytest.mark.parametrize("name,ov", [("SASRec", SMALL), ("GRU4Rec", {}), ("BERT4Rec", SMALL)])
def test_short_training_beats_untrained(name, ov, split):
    model, cfg = _model(name, split, epochs=3, train_batch_size=512, learning_rate=0.01,
                        max_seq_length=20, stopping_step=0, eval_step=3, **ov)
    ev = make_evaluator(split, "valid", cfg, model)
    assert isinstance(ev, NextItemEvaluator)
    before = ev.evaluate(model)[0]["ndcg@10"]
    Trainer(model, split, cfg).fit()
    after = ev.evaluate(model)[0]["ndcg@10"]
    assert after > before + 0.08, (before, after)


def test_mask_history_switch_changes_results(split):
    model, cfg = _model("SASRec", split)
    plain = make_evaluator(split, "test", cfg, model).evaluate(model)[1].per_user()
    cfg2 = cfg.updated(mask_history_seq=True)
    masked = make_evaluator(split, "test", cfg2, model).evaluate(model)[1].per_user()
    assert not np.allclose(plain["ndcg@10"], masked["ndcg@10"])


def test_eval_next_item_puts_a_cf_model_under_the_next_item_protocol(split):
    from mmkgrec.evaluation.ranking import FullRankingEvaluator

    model, cfg = _model("BPR", split)
    assert isinstance(make_evaluator(split, "test", cfg, model), FullRankingEvaluator)
    ev = make_evaluator(split, "test", cfg.updated(eval_next_item=True, mask_history_seq=True), model)
    assert isinstance(ev, NextItemEvaluator) and ev.mask_history
    # the same numbers as the evaluator built by hand
    by_hand = NextItemEvaluator(split, "test", list(ev.metrics), mask_history=True)
    assert ev.evaluate(model)[0] == by_hand.evaluate(model)[0]


def test_text_and_image_item_embeddings(split):
    rng = np.random.default_rng(0)
    feats = {}
    for m, dim in (("text", 12), ("image", 6)):
        mat = torch.from_numpy(rng.normal(size=(split.n_items, dim)).astype(np.float32))
        mask = torch.ones(split.n_items)
        mask[::7] = 0
        feats[m] = (mat, mask)
    inputs = ModelInputs(split.n_users, split.n_items, split.train, features=feats)
    for name in MODELS:
        for content, with_id in (("text", False), ("image", True)):
            cls = get_model_class(name)
            cfg = load_config(name, "synthetic", overrides={**QUIET, "item_content": content,
                                                             "content_with_id": with_id})
            assert cls.requirements(cfg) == frozenset({content})
            model = cls(cfg, inputs)
            assert (model.item_emb is not None) == with_id
            batch = _batch(model, split, cfg, 32)
            model.loss(batch).backward()
            for pname, p in model.named_parameters():
                assert p.grad is not None and p.grad.abs().sum() > 0, (name, pname)
            # items without content share the projection's bias only
            if not with_id:
                v = model.item_vectors().detach()
                torch.testing.assert_close(v[0], v[7])
    with pytest.raises(ConfigError, match="item_content"):
        get_model_class("SASRec").requirements({"item_content": "audio"})


def test_api_run_end_to_end(tmp_path):
    run = mmkgrec.train("SASRec", "synthetic", out=tmp_path / "run",
                        overrides={**QUIET, **SMALL, "epochs": 1, "train_batch_size": 512,
                                                  "max_seq_length": 20})
    assert run.metrics["test"]["ndcg@10"] >= 0
    assert len(run.recommend("0", k=5)) == 5
    loaded = mmkgrec.load(tmp_path / "run")
    assert loaded.evaluate("test")["ndcg@10"] == pytest.approx(run.metrics["test"]["ndcg@10"])


@pytest.mark.data
def test_sasrec_and_gru4rec_beat_pop_on_ml100k(data_dir):
    base = {"data_path": str(data_dir / "ml-100k"), "subsample_users": 400, "split": "time_ratio",
            "show_progress": False, "stopping_step": 0, "eval_step": 100}
    cfg = load_config("Pop", "ml-100k", overrides=base)
    ds = load_dataset("ml-100k", cfg)
    split = split_dataset(ds, "time_ratio", [0.8, 0.1, 0.1], 2020)
    pop_cls = get_model_class("Pop")
    pop = pop_cls(cfg, build_inputs(split, pop_cls.requirements(cfg)))
    pop_ndcg = NextItemEvaluator(split, "test", ["ndcg@10"]).evaluate(pop)[0]["ndcg@10"]
    for name, ov in (("SASRec", {**SMALL, "epochs": 3, "learning_rate": 0.005,
                                 "train_batch_size": 1024}),
                     ("GRU4Rec", {"epochs": 2, "learning_rate": 0.01, "train_batch_size": 512,
                                  "hidden_size": 64, "embedding_size": 32})):
        cfg = load_config(name, "ml-100k", overrides={**base, **ov, "max_seq_length": 20})
        cls = get_model_class(name)
        torch.manual_seed(0)
        model = cls(cfg, build_inputs(split, cls.requirements(cfg), "cpu", cfg))
        Trainer(model, split, cfg).fit()
        ndcg = make_evaluator(split, "test", cfg, model).evaluate(model)[0]["ndcg@10"]
        assert ndcg >= 1.1 * pop_ndcg, (name, ndcg, pop_ndcg)
