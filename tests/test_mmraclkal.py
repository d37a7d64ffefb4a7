"""MM-RACL-KAL: gradients, every switch, the item weight alpha, retrieval augmentation, the hard
negatives of L_ii, the variant configs, Text-LightGCN, and a short run on ML-100K against
popularity under the next-item protocol."""

from importlib import resources

import numpy as np
import pytest
import torch
import yaml

from mmkgrec.config import load_config
from mmkgrec.data import load_dataset, split_dataset
from mmkgrec.evaluation.evaluator import make_evaluator
from mmkgrec.evaluation.sequential import NextItemEvaluator
from mmkgrec.models import ModelInputs, build_inputs, get_model_class
from mmkgrec.training.trainer import Trainer

NAME = "MMRACLKAL"
# small and without dropout, so that a switch is the only difference between two runs
QUIET = {"show_progress": False, "split": "time_ratio", "hidden_size": 32, "inner_size": 64,
         "hidden_dropout_prob": 0.0, "attn_dropout_prob": 0.0, "max_seq_length": 20}


@pytest.fixture(scope="module")
def split():
    return split_dataset(load_dataset("synthetic", {"data_format": "synthetic"}), "time_ratio")


@pytest.fixture(scope="module")
def inputs(split):
    """Random text (12-d) and image (6-d) features; every 7th item has no image, every 11th no
    text; the training graph."""
    rng = np.random.default_rng(0)
    feats = {}
    for m, dim, every in (("text", 12, 11), ("image", 6, 7)):
        mat = torch.from_numpy(rng.normal(size=(split.n_items, dim)).astype(np.float32))
        mask = torch.ones(split.n_items)
        mask[::every] = 0
        feats[m] = (mat, mask)
    inp = build_inputs(split, frozenset({"graph"}))
    return ModelInputs(split.n_users, split.n_items, split.train, graph=inp.graph, features=feats)


def _model(inputs, seed=0, **ov):
    cfg = load_config(NAME, "synthetic", overrides={**QUIET, **ov})
    torch.manual_seed(seed)
    return get_model_class(NAME)(cfg, inputs), cfg


def _batch(model, split, cfg, n=48):
    return model.make_batches(split, cfg).batch(torch.arange(n))


def _scores(model, batch):
    model.eval()
    with torch.no_grad():
        model.prepare_eval()
        out = model.score_sequences(batch["seq"], batch["lengths"], users=batch["users"])
    model.train()
    return out


def test_registered_config_documented_and_requirements():
    from mmkgrec.models import registered_models

    assert NAME in registered_models()
    cls = get_model_class(NAME)
    assert cls.input_type == "sequence" and cls.scores_need_users
    cfg = load_config(NAME, "synthetic")
    assert cfg["item_id_embedding"] is False and cfg["augment_at_inference"] is False
    assert cls.requirements(cfg) == {"text", "image", "graph"}
    text = (resources.files("mmkgrec") / "configs" / "model" / f"{NAME}.yaml").read_text()
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            assert "#" in line, f"undocumented key: {line}"
    vdir = resources.files("mmkgrec") / "configs" / "variant"
    expected = {"RACL-KAL": {"text"}, "MMRACLKAL-base": {"text"},
                "MMRACLKAL-M": {"text", "image"}, "MMRACLKAL-RA": {"text", "image"},
                "MMRACLKAL-S": {"text", "image", "graph"},
                "MMRACLKAL-wo-image": {"text", "graph"},
                "MMRACLKAL-wo-static": {"text", "image"}}
    for name in ("RACL-KAL", "MMRACLKAL-base", "MMRACLKAL-M", "MMRACLKAL-RA", "MMRACLKAL-S",
                 "MMRACLKAL-wo-image", "MMRACLKAL-wo-ra", "MMRACLKAL-wo-static", "MMRACLKAL-wo-cl",
                 "MMRACLKAL-ui-only", "MMRACLKAL-ii-only", "MMRACLKAL-mm-only",
                 "MMRACLKAL-ii-random", "MMRACLKAL-id"):
        path = vdir / f"{name}.yaml"
        c = load_config(NAME, "synthetic", file=str(path))
        assert yaml.safe_load(path.read_text())  # non-empty
        req = cls.requirements(c)
        assert req == expected.get(name, {"text", "image", "graph"}), name
    racl = load_config(NAME, "synthetic", file=str(vdir / "RACL-KAL.yaml"))
    assert racl["use_augmentation"] and racl["use_contrastive"] and not racl["use_static"]


def test_every_parameter_gets_a_gradient(split, inputs):
    model, cfg = _model(inputs)
    batch = _batch(model, split, cfg)
    assert "users" in batch
    model.loss(batch).backward()
    names = {n for n, _ in model.named_parameters()}
    assert {"alpha_logit", "text_proj.weight", "image_proj.weight", "gate.weight",
            "static_user_emb.weight", "static_item_emb.weight"} <= names
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname
    s = _scores(model, batch)
    assert s.shape == (len(batch["seq"]), split.n_items) and torch.isfinite(s).all()
    assert model.score_all(torch.tensor([0, 3])).shape == (2, split.n_items)
    with pytest.raises(ValueError, match="users"):
        model.score_sequences(batch["seq"], batch["lengths"])


SWITCHES = [
    {"use_image": False}, {"item_id_embedding": True}, {"use_static": False},
    {"static_item_init": "content"}, {"augment_at_inference": True, "augment_p": 0.5},
    {"use_augmentation": False}, {"use_contrastive": False}, {"lambda_ui": 0.0},
    {"lambda_ii": 0.0}, {"lambda_mm": 0.0}, {"ii_negatives": "random"},
    {"ui_negatives": "sampled"}, {"contrastive_positive_in_denominator": True},
    {"mm_symmetric": True}, {"contrastive_normalize": False}, {"augment_topk": 3},
    {"gnn_layers": 1},
]


def _after_one_step(split, inputs, base_state, **ov):
    model, cfg = _model(inputs, **ov)
    model.load_state_dict({k: v for k, v in base_state.items()
                           if k in model.state_dict() and model.state_dict()[k].shape == v.shape},
                          strict=False)
    batch = _batch(model, split, cfg)
    torch.manual_seed(1)
    model.loss(batch).backward()
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p -= 0.5 * p.grad
    return _scores(model, batch)


@pytest.mark.parametrize("ov", SWITCHES, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_each_switch_changes_the_scores(ov, split, inputs):
    base_model, _ = _model(inputs)
    state = base_model.state_dict()
    ref = _after_one_step(split, inputs, state)
    torch.testing.assert_close(_after_one_step(split, inputs, state), ref)  # deterministic
    assert not torch.allclose(_after_one_step(split, inputs, state, **ov), ref, atol=1e-6), ov


def test_alpha_in_unit_interval_and_one_without_image(inputs, caplog):
    with caplog.at_level("WARNING"):
        model, _ = _model(inputs)
    no_image = inputs.features["image"][1] == 0
    assert f"{int(no_image.sum())} of {model.n_items} items have no image and use alpha = 1" in caplog.text
    assert no_image.any() and (~no_image).any()
    for logit in (-40.0, -1.0, 0.0, 2.0, 40.0):
        with torch.no_grad():
            model.alpha_logit.fill_(logit)
        a = model.item_alpha()
        assert ((a >= 0) & (a <= 1)).all()
        assert (a[no_image] == 1.0).all()
        table, t_hat, _ = model._item_parts()
        assert torch.equal(table[1:][no_image], t_hat[no_image])  # e_i = W_t v_t exactly
    text_only, _ = _model(inputs, use_image=False)
    assert (text_only.item_alpha() == 1).all() and not hasattr(text_only, "image_proj")


def test_neighbours_are_the_cosine_top_k_without_the_item(inputs):
    model, _ = _model(inputs, augment_topk=5)
    e = torch.nn.functional.normalize(model.item_table()[1:].detach(), dim=1)
    sims = e @ e.T
    sims.fill_diagonal_(-2)
    expect = sims.topk(5, dim=1).indices
    nb = model.neighbours
    assert nb.shape == (inputs.n_items, 5)
    assert not (nb == torch.arange(inputs.n_items)[:, None]).any()
    agree = (nb.sort(1).values == expect.sort(1).values).all(1).float().mean()
    assert agree > 0.95  # ties among items without content may order differently
    before = nb.clone()
    with torch.no_grad():
        model.text_proj.weight.mul_(-1).add_(torch.randn_like(model.text_proj.weight))
    model.on_epoch_start(0)  # the initial index serves epoch 0
    assert torch.equal(model.neighbours, before)
    model.on_epoch_start(1)  # refresh_every: 1
    assert not torch.equal(model.neighbours, before)
    assert "neighbours" in model.state_dict()  # a resumed run keeps the same index


def test_augmentation_p0_keeps_and_p1_replaces_every_item(split, inputs):
    model, cfg = _model(inputs, augment_topk=4)
    seq = _batch(model, split, cfg)["seq"]
    real = seq > 0
    model.augment_p = 0.0
    assert torch.equal(model.augment(seq), seq)
    model.augment_p = 1.0
    out = model.augment(seq)
    assert torch.equal(out == 0, ~real)  # padding stays padding
    nb = model.neighbours[(seq - 1).clamp_min(0)]  # [B, L, K]
    member = ((out - 1).unsqueeze(-1) == nb).any(-1)
    assert member[real].all()
    assert (out[real] != seq[real]).all()  # never the item itself
    # p = 0.5: about half replaced
    model.augment_p = 0.5
    frac = (model.augment(seq) != seq)[real].float().mean()
    assert 0.35 < frac < 0.65


def test_hard_negatives_exclude_positive_and_user_training_items(split, inputs):
    model, cfg = _model(inputs, augment_topk=30)
    batch = _batch(model, split, cfg, 200)
    rows, pos = batch["target_window"], batch["target_pos"]
    anchor, target, users = batch["seq"][rows, pos] - 1, batch["target"], batch["users"][rows]
    cand, valid = model.ii_negatives_of(anchor, target, users)
    assert torch.equal(cand, model.neighbours[anchor])
    train_items = {}
    for u, i in zip(split.train.user, split.train.item):
        train_items.setdefault(int(u), set()).add(int(i))
    removed_known = removed_pos = 0
    for r in range(len(cand)):
        u, t = int(users[r]), int(target[r])
        for c, ok in zip(cand[r].tolist(), valid[r].tolist()):
            bad = c == t or c in train_items[u]
            assert ok != bad, (u, t, c)
            removed_known += c in train_items[u]
            removed_pos += c == t
    assert removed_known > 0 and removed_pos > 0  # the exclusions were exercised
    # the loss sums over the valid negatives only (decoupled: -pos/tau + logsumexp(neg/tau))
    items = model.item_table()[1:].detach()
    e = torch.nn.functional.normalize(items, dim=1)
    terms = []
    for r in range(len(cand)):
        negs = cand[r][valid[r]]
        if len(negs):
            a = e[anchor[r]]
            terms.append(torch.logsumexp(e[negs] @ a / model.tau, 0) - a @ e[target[r]] / model.tau)
    torch.testing.assert_close(model.loss_ii(items, anchor, target, users),
                               torch.stack(terms).mean(), rtol=1e-4, atol=1e-4)
    random_model, _ = _model(inputs, ii_negatives="random", augment_topk=30)
    cand, valid = random_model.ii_negatives_of(anchor, target, users)
    for r in range(len(cand)):
        assert not set(cand[r].tolist()) & train_items[int(users[r])]


def test_decoupled_and_infonce_losses():
    model = type("M", (), {})()
    cls = get_model_class(NAME)
    model.tau, model.pos_in_denominator = 0.5, False
    pos = torch.tensor([1.0, 0.2])
    neg = torch.tensor([[0.5, -0.5], [0.1, 0.3]])
    valid = torch.tensor([[True, False], [False, False]])
    # decoupled: the second anchor has no valid negative and is skipped
    assert cls.contrastive(model, pos, neg, valid).item() == pytest.approx(
        (0.5 - 1.0) / 0.5, abs=1e-5)
    model.pos_in_denominator = True
    expect = [torch.logsumexp(torch.tensor([2.0, 1.0]), 0) - 2.0,
              torch.logsumexp(torch.tensor([0.4]), 0) - 0.4]
    assert cls.contrastive(model, pos, neg, valid).item() == pytest.approx(
        float(sum(expect) / 2), abs=1e-5)


def test_text_lightgcn_gradients_and_scores(split, inputs):
    cls = get_model_class("LightGCN")
    plain = cls(load_config("LightGCN", "synthetic"), inputs)
    assert plain.node_emb.weight.shape[0] == split.n_users + split.n_items
    assert not hasattr(plain, "content_proj")
    for content in ("text", "image"):
        cfg = load_config("LightGCN", "synthetic", overrides={"item_content": content})
        assert cls.requirements(cfg) == {"graph", content}
        torch.manual_seed(0)
        model = cls(cfg, inputs)
        assert model.node_emb.weight.shape[0] == split.n_users
        users = torch.arange(0, 64)
        batch = {"users": users, "pos_items": torch.randint(0, split.n_items, (64,)),
                 "neg_items": torch.randint(0, split.n_items, (64,))}
        model.loss(batch).backward()
        for pname, p in model.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, (content, pname)
        ego = model.ego().detach()[split.n_users:]
        every = 11 if content == "text" else 7
        torch.testing.assert_close(ego[0], ego[every])  # no content: the bias only
        model.eval()
        with torch.no_grad():
            model.prepare_eval()
            s = model.score_all(torch.tensor([0, 1, 2]))
        assert s.shape == (3, split.n_items) and torch.isfinite(s).all()
    for variant in ("Text-LightGCN", "Image-LightGCN"):
        path = resources.files("mmkgrec") / "configs" / "variant" / f"{variant}.yaml"
        assert load_config("LightGCN", "synthetic", file=str(path))["item_content"] in ("text",
                                                                                         "image")


@pytest.mark.data
def test_mmraclkal_beats_pop_on_ml100k(data_dir):
    base = {"data_path": str(data_dir / "ml-100k"), "subsample_users": 400, "split": "time_ratio",
            "show_progress": False, "stopping_step": 0, "eval_step": 100, "threads": 1}
    cfg = load_config("Pop", "ml-100k", overrides=base)
    split = split_dataset(load_dataset("ml-100k", cfg), "time_ratio", [0.8, 0.1, 0.1], 2020)
    pop_cls = get_model_class("Pop")
    pop = pop_cls(cfg, build_inputs(split, pop_cls.requirements(cfg)))
    pop_ndcg = NextItemEvaluator(split, "test", ["ndcg@10"]).evaluate(pop)[0]["ndcg@10"]
    cfg = load_config(NAME, "ml-100k", overrides={
        **base, "epochs": 3, "learning_rate": 0.005, "train_batch_size": 1024,
        "hidden_size": 32, "inner_size": 64, "max_seq_length": 20})
    cls = get_model_class(NAME)
    torch.manual_seed(0)
    # real MiniLM text features and hand-crafted poster descriptors (extracted on first use)
    model = cls(cfg, build_inputs(split, cls.requirements(cfg), "cpu", cfg))
    Trainer(model, split, cfg).fit()
    ndcg = make_evaluator(split, "test", cfg, model).evaluate(model)[0]["ndcg@10"]
    assert ndcg >= 1.1 * pop_ndcg, (ndcg, pop_ndcg)
