"""VBPR, MMGCN and the plumbing that hands item content to models, tested without the feature
store: features are small random matrices whose rows depend on each synthetic item's category."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mmkgrec.config import load_config
from mmkgrec.data import load_dataset, split_dataset
from mmkgrec.errors import ConfigError
from mmkgrec.evaluation.evaluator import make_evaluator
from mmkgrec.graph.adjacency import row_normalize, spmm, to_torch_csr
from mmkgrec.models import ModelInputs, build_inputs, get_model_class
from mmkgrec.models.base import shuffle_item_rows
from mmkgrec.training.trainer import Trainer

QUIET = {"show_progress": False}
MODELS = ["VBPR", "MMGCN"]


def fake_item_feature_matrix(dataset, modality, config=None):
    """Stand-in for ``mmkgrec.features.item_feature_matrix``: a category centre plus noise;
    every 17th item has no image."""
    cats = np.array([int(c[0][3:]) for c in dataset.item_features["class"]])
    dim, seed = (12, 1) if modality == "text" else (6, 2)
    rng = np.random.default_rng(seed)
    mat = rng.normal(size=(cats.max() + 1, dim))[cats] + 0.1 * rng.normal(size=(len(cats), dim))
    mask = np.ones(len(cats), dtype=bool)
    if modality == "image":
        mask[::17] = False
    mat[~mask] = 0.0
    return mat.astype(np.float32), mask


@pytest.fixture(scope="module")
def split():
    return split_dataset(load_dataset("synthetic", {"data_format": "synthetic"}), "random_ratio")


def _inputs(split, modalities=("text", "image")):
    feats = {}
    for m in modalities:
        mat, mask = fake_item_feature_matrix(split.dataset, m)
        feats[m] = (torch.from_numpy(mat), torch.from_numpy(mask.astype(np.float32)))
    return ModelInputs(split.n_users, split.n_items, split.train, features=feats)


def _model(name, split, modalities=("text", "image"), **ov):
    cfg = load_config(name, "synthetic", overrides={**QUIET, "modalities": list(modalities), **ov})
    torch.manual_seed(0)
    return get_model_class(name)(cfg, _inputs(split, modalities)), cfg


BATCH = {"users": torch.arange(60), "pos_items": torch.arange(60),
         "neg_items": torch.arange(60, 120)}


@pytest.mark.parametrize("name,ov", [("VBPR", {}), ("MMGCN", {}),
                                     ("MMGCN", {"combination": "add", "aggregation": "sum"})])
def test_every_parameter_gets_a_gradient(name, ov, split):
    model, _ = _model(name, split, **ov)
    model.loss(BATCH).backward()
    names = [n for n, _ in model.named_parameters()]
    assert any("image" in n for n in names) or name == "VBPR"
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname
    # several negatives per positive
    model.loss({**BATCH, "neg_items": torch.stack([BATCH["neg_items"]] * 3, 1)}).backward()


@pytest.mark.parametrize("name", MODELS)
def test_score_agrees_with_score_all_and_vectors(name, split):
    model, _ = _model(name, split)
    users, items = torch.tensor([0, 4, 9, 30]), torch.tensor([3, 1, 2, 17])  # item 17: no image
    with torch.no_grad():
        fresh = model.score(users, items)  # no cache: computed directly
        model.eval()
        model.prepare_eval()
        full = model.score_all(users)
        assert torch.allclose(model.score(users, items), full[torch.arange(4), items], atol=1e-5)
        assert torch.allclose(fresh, full[torch.arange(4), items], atol=1e-5)
        assert torch.allclose(full, model.user_vectors()[users] @ model.item_vectors().T, atol=1e-5)


def test_requirements_follow_the_config():
    for name in MODELS:
        cls = get_model_class(name)
        assert cls.requirements(load_config(name, "synthetic")) == {"text", "image"}
        assert cls.requirements(load_config(name, "synthetic",
                                            overrides={"modalities": ["image"]})) == {"image"}
        with pytest.raises(ConfigError, match="modalities"):
            cls.requirements(load_config(name, "synthetic", overrides={"modalities": ["audio"]}))
        with pytest.raises(ConfigError, match="modalities"):
            cls.requirements(load_config(name, "synthetic", overrides={"modalities": []}))
    assert get_model_class("BPR").requirements(load_config("BPR")) == frozenset()
    assert get_model_class("LightGCN").requirements(load_config("LightGCN")) == {"graph"}


def test_bad_sizes_and_switches_are_rejected(split):
    with pytest.raises(ConfigError, match="visual_size"):
        _model("VBPR", split, visual_size=0)
    with pytest.raises(ConfigError, match="combination"):
        _model("MMGCN", split, combination="max")
    with pytest.raises(ConfigError, match="feature_norm"):
        _model("VBPR", split, feature_norm="minmax")
    with pytest.raises(ValueError, match="image"):  # configured for image, given text only
        get_model_class("VBPR")(load_config("VBPR", "synthetic"), _inputs(split, ("text",)))


def test_vbpr_modality_switch(split):
    both, _ = _model("VBPR", split)
    text, _ = _model("VBPR", split, modalities=("text",))
    users = torch.arange(20)
    with torch.no_grad():
        # both-modality model with the image weights of E and beta' zeroed == the text-only model
        sd = text.state_dict()
        pad = both.proj.weight.shape[1] - sd["proj.weight"].shape[1]
        w = sd["proj.weight"]
        sd["proj.weight"] = torch.cat([w, torch.zeros(w.shape[0], pad)], 1)
        sd["content_bias.weight"] = torch.cat([sd["content_bias.weight"], torch.zeros(1, pad)], 1)
        both.load_state_dict(sd)
        assert torch.allclose(both.score_all(users), text.score_all(users), atol=1e-6)
        both.proj.weight[:, -pad:].normal_()
        assert not torch.allclose(both.score_all(users), text.score_all(users), atol=1e-3)
    # an item with no content at all is scored by the ID part alone
    inputs = _inputs(split)
    for m in inputs.features:
        inputs.features[m][0][5] = 0.0
        inputs.features[m][1][5] = 0.0
    torch.manual_seed(0)
    m = get_model_class("VBPR")(load_config("VBPR", "synthetic"), inputs)
    with torch.no_grad():
        m.item_bias.weight.normal_()
        m.content_bias.weight.normal_()
        s = m.score(users, torch.full((20,), 5))
        ref = m.item_bias.weight[5, 0] + m.gamma_user(users) @ m.gamma_item.weight[5]
        assert torch.allclose(s, ref, atol=1e-6)


def test_vbpr_feature_norm_standardises_the_content(split):
    raw, _ = _model("VBPR", split)
    std, _ = _model("VBPR", split, feature_norm="standard")
    has = std.content.abs().sum(1) > 0
    assert torch.allclose(std.content[has].mean(0), torch.zeros(std.content.shape[1]), atol=1e-4)
    assert not torch.allclose(raw.content, std.content)
    users = torch.arange(20)
    with torch.no_grad():
        std.load_state_dict(raw.state_dict())
        std.proj.weight.normal_()
        raw.proj.weight.copy_(std.proj.weight)
        assert not torch.allclose(std.score_all(users), raw.score_all(users), atol=1e-4)


def test_mmgcn_modality_switch(split):
    both, _ = _model("MMGCN", split)
    text, _ = _model("MMGCN", split, modalities=("text",))
    # same ID embeddings and text branch: the both-modality model adds the image branch's output
    both.load_state_dict(text.state_dict(), strict=False)
    with torch.no_grad():
        ub, ib = both.compute_vectors()
        ut, it = text.compute_vectors()
        assert not torch.allclose(ub @ ib.T, ut @ it.T, atol=1e-3)
        ids = both.node_emb.weight
        img = both.branches["image"](both.feat_image, both.mask_image, ids, both.adj, both.adj_t)
        assert torch.allclose(torch.cat([ub, ib]), torch.cat([ut, it]) + img, atol=1e-5)


def test_spmm_and_row_normalize_match_dense():
    rng = np.random.default_rng(0)
    a = sp.random(7, 7, density=0.4, random_state=0, format="csr", dtype=np.float32)
    a.data[:] = 1.0
    a = sp.csr_matrix(a.toarray() * (np.arange(7) != 3)[:, None])  # row 3 isolated: stays zero
    r = row_normalize(a)
    dense = torch.from_numpy(r.toarray())
    rs = dense.sum(1)
    assert torch.allclose(rs[rs > 0], torch.ones(int((rs > 0).sum()))) and rs[3] == 0
    x = torch.from_numpy(rng.normal(size=(7, 3)).astype(np.float32)).requires_grad_(True)
    w = torch.from_numpy(rng.normal(size=(7, 3)).astype(np.float32))
    (spmm(to_torch_csr(r), to_torch_csr(r.T), x) * w).sum().backward()
    x2 = x.detach().clone().requires_grad_(True)
    (dense @ x2 * w).sum().backward()
    assert torch.allclose(x.grad, x2.grad, atol=1e-6)


def _fake_store(monkeypatch):
    import mmkgrec.features as features

    calls = []

    def fake(dataset, modality, config):
        calls.append(modality)
        return fake_item_feature_matrix(dataset, modality, config)

    monkeypatch.setattr(features, "item_feature_matrix", fake, raising=False)
    return calls


def test_build_inputs_and_shuffle_features(split, monkeypatch):
    calls = _fake_store(monkeypatch)
    cfg = load_config("VBPR", "synthetic")
    plain = build_inputs(split, get_model_class("VBPR").requirements(cfg), "cpu", cfg)
    assert sorted(calls) == ["image", "text"]
    for m in ("text", "image"):
        mat, mask = fake_item_feature_matrix(split.dataset, m)
        assert {t.dtype for t in plain.features[m]} == {torch.float32}
        assert np.array_equal(plain.features[m][0].numpy(), mat)
        assert np.array_equal(plain.features[m][1].numpy(), mask)
    text_only = build_inputs(split, frozenset({"text"}), "cpu", cfg)
    assert set(text_only.features) == {"text"}

    def shuffled(seed):
        c = load_config("VBPR", "synthetic", overrides={"shuffle_features": True, "seed": seed})
        return build_inputs(split, frozenset({"text", "image"}), "cpu", c)

    shuf, again, other = shuffled(7), shuffled(7), shuffled(8)
    perms = []
    for m in ("text", "image"):
        x, mask = plain.features[m][0].numpy(), plain.features[m][1].numpy()
        y, ymask = shuf.features[m][0].numpy(), shuf.features[m][1].numpy()
        assert not np.array_equal(x, y)                             # rows moved
        assert np.array_equal(np.unique(x, axis=0, return_counts=True)[1],
                              np.unique(y, axis=0, return_counts=True)[1])
        assert np.array_equal(np.unique(x, axis=0), np.unique(y, axis=0))  # same multiset of rows
        assert ymask.sum() == mask.sum() and np.all(y[ymask == 0] == 0)  # masks moved with rows
        assert np.array_equal(y, again.features[m][0].numpy())     # fixed seed: reproducible
        assert not np.array_equal(y, other.features[m][0].numpy())
        # recover the permutation: row k of y is row perm[k] of x
        perms.append(np.array([np.flatnonzero((x == row).all(1))[0] for row in y]))
    assert np.array_equal(perms[0][perms[1] % 17 != 0], perms[1][perms[1] % 17 != 0])


def _trained(name, split, inputs=None, **ov):
    model, cfg = _model(name, split, **{"valid_metric": "ndcg@10", "stopping_step": 0,
                                         "epochs": 5, "learning_rate": 0.01, **ov})
    if inputs is not None:
        torch.manual_seed(0)
        model = get_model_class(name)(cfg, inputs)
    before = make_evaluator(split, "valid", cfg).evaluate(model)[0]["ndcg@10"]
    torch.manual_seed(0)
    result = Trainer(model, split, cfg).fit()
    after = make_evaluator(split, "valid", cfg).evaluate(model)[0]["ndcg@10"]
    assert after == pytest.approx(result.best_valid["ndcg@10"])
    return before, after


@pytest.mark.parametrize("name", MODELS)
def test_short_training_improves_validation(name, split):
    before, after = _trained(name, split)
    assert after > before + 0.05, (before, after)


def test_shuffled_features_do_worse(split):
    """The control: the same VBPR run with content rows permuted across items loses the
    category signal the features carry."""
    inputs = _inputs(split)
    inputs.features = shuffle_item_rows(inputs.features, 0)
    real = _trained("VBPR", split)[1]
    shuffled = _trained("VBPR", split, inputs)[1]
    assert real > shuffled + 0.02, (real, shuffled)


def test_train_through_the_api_with_a_feature_store(monkeypatch):
    import mmkgrec

    calls = _fake_store(monkeypatch)
    run = mmkgrec.train("MMGCN", "synthetic",
                        overrides={**QUIET, "epochs": 2, "modalities": ["image"], "n_layers": 1})
    assert calls == ["image"] and set(run.model.branches) == {"image"}
    assert run.metrics["test"]["ndcg@10"] >= 0
