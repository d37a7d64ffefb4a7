"""MKGAT, MultiKG4Rec and the cross-modal fusion block: no inert parameter, every switch changes
scores, masked attention is exactly zero, fusion off is the KG-only path, and a short ML-100K run
of each beats popularity."""

import pytest
import torch

from mmkgrec.nn.fusion import CrossModalBlock, ModalFusion, cross_permissions
from helpers import (assert_beats_popularity, build_model, fake_item_feature_matrix, first_batches,
                     train_scores)


@pytest.fixture(autouse=True)
def _fake_features(request, monkeypatch):
    """Synthetic tests get small fake features; the ML-100K runs use the feature store's."""
    import mmkgrec.features

    if "data_dir" not in request.fixturenames:
        monkeypatch.setattr(mmkgrec.features, "item_feature_matrix", fake_item_feature_matrix)


SMALL = {"fusion_seq_len": 6, "fusion_blocks": 2, "fusion_inner_size": 32,
         "layers": [16, 8], "fusion_dropout": 0.1}

CASES = [("MKGAT", {}), ("MKGAT", {"kg_loss": "transr", "modalities": ["image"]}),
         ("MultiKG4Rec", SMALL), ("MultiKG4Rec", {**SMALL, "entity_init": "concat_linear"}),
         ("MultiKG4Rec", {**SMALL, "fusion": "t2v", "fusion_items_per_batch": 9}),
         ("MultiKG4Rec", {**SMALL, "modalities": ["text"]}),
         ("MultiKG4Rec", {**SMALL, "modalities": []})]


@pytest.mark.parametrize("name,ov", CASES)
def test_every_parameter_gets_a_gradient(name, ov, split):
    model, cfg = build_model(name, split, **ov)
    model.train()
    model.on_epoch_start(1)
    batches = first_batches(model, split, cfg)
    assert len(batches) == 2  # a CF and a KG phase
    sum(model.loss(b) for b in batches).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


SWITCHES = {
    "MKGAT": [{"modalities": []}, {"modalities": ["text"]}, {"modalities": ["image"]},
              {"kg_loss": "transr"}],
    "MultiKG4Rec": [{"fusion": "none"}, {"fusion": "t2v"}, {"fusion": "v2t"},
                    {"modalities": ["text"]}, {"modalities": ["image"]}, {"modalities": []},
                    {"entity_init": "feature_only"}, {"entity_init": "concat_linear"},
                    {"fusion_items_per_batch": 9}, {"fusion_bfs_order": "id"}],
}


@pytest.mark.parametrize("name", ["MKGAT", "MultiKG4Rec"])
def test_switches_change_scores(name, split):
    base_ov = SMALL if name == "MultiKG4Rec" else {}
    base = train_scores(name, split, epochs=2, **base_ov)
    assert torch.equal(base, train_scores(name, split, epochs=2, **base_ov))  # deterministic
    for ov in SWITCHES[name]:
        other = train_scores(name, split, epochs=2, **{**base_ov, **ov})
        assert not torch.allclose(base, other, atol=1e-5), ov


def test_mkgat_without_modalities_is_kgat(split):
    mk, _ = build_model("MKGAT", split, modalities=[], kg_loss="transr", layers=[64])
    kgat, _ = build_model("KGAT", split)
    kgat.load_state_dict(mk.state_dict())
    for m in (mk, kgat):
        m.on_epoch_start(1)
        m.eval()
    with torch.no_grad():
        assert torch.allclose(mk.score_all(torch.arange(10)), kgat.score_all(torch.arange(10)))


def test_mkgat_modal_entities(split):
    model, _ = build_model("MKGAT", split)
    n_modal = sum(model.modal_counts)
    assert n_modal == 2 * split.n_items  # fake features: every item has text and an image
    assert model.node_table().shape[0] == model.ckg.n_nodes == model.n_id_nodes + n_modal
    assert set(model.kg.relation_tokens[-2:]) == {"has_text", "has_image"}


def _fusion_inputs(n_items=5, n=6, d=16):
    torch.manual_seed(0)
    xs = {m: torch.randn(n_items, n, d) for m in ("text", "image")}
    mask = torch.ones(n_items, n, dtype=torch.bool)
    mask[1, 3:] = False
    mask[2, 1:] = False
    return xs, mask


@pytest.mark.parametrize("mode", ["both", "t2v", "v2t"])
def test_cross_attention_masks(mode):
    xs, mask = _fusion_inputs()
    block = CrossModalBlock(("text", "image"), 16, 4, 32, 0.0, cross_permissions(("text", "image"),
                                                                                  mode)).eval()
    _, w = block(xs, mask, return_weights=True)
    n = mask.shape[1]
    for m, p in w.items():  # [B, h, n, 2n]; keys: text then image
        assert torch.allclose(p.sum(-1), torch.ones_like(p.sum(-1)))
        keys = torch.cat([mask, mask], 1)[:, None, None, :].expand_as(p)
        assert (p[~keys] == 0).all()  # padded positions get exactly zero attention
        own, other = (p[..., :n], p[..., n:]) if m == "text" else (p[..., n:], p[..., :n])
        crosses = mode == "both" or (mode == "t2v") == (m == "text")
        assert (other == 0).all() != crosses, (m, mode)
        assert (own.sum(-1) > 0).all()
    # the outputs equal those of the fast path (no weights)
    out = block(xs, mask)
    assert all(torch.allclose(out[m], block(xs, mask, return_weights=True)[0][m], atol=1e-5)
               for m in out)


def test_padding_does_not_change_fusion():
    xs, mask = _fusion_inputs()
    fusion = ModalFusion(("text", "image"), 16, 2, 4, 1, 32, 0.0).eval()
    out = fusion(xs, mask)
    noisy = {m: torch.where(mask[..., None], x, torch.randn_like(x) * 100) for m, x in xs.items()}
    out2 = fusion(noisy, mask)
    for m in out:
        assert out[m].shape == (5, 16)
        assert torch.allclose(out[m], out2[m], atol=1e-5)
    mass = fusion.modality_mass(xs, mask)
    assert mass.shape == (5, 2) and torch.allclose(mass.sum(1), torch.ones(5))


@pytest.mark.parametrize("mode", ["both", "t2v", "v2t"])
def test_fast_fusion_equals_per_modality_path(mode):
    """Without dropout the fusion runs one attention product for both modalities' queries
    (additive masks, plain matmuls); it must equal the per-modality path (SDPA self-attention,
    explicit softmax per query modality, taken when weights are returned), values and
    gradients."""
    xs, mask = _fusion_inputs(n_items=7, n=6, d=16)
    fusion = ModalFusion(("text", "image"), 16, 3, 4, 1, 32, 0.0, mode).train()
    assert not fusion.uses_dropout()
    results = []
    for slow in (False, True):
        fusion.zero_grad()
        ins = {m: x.clone().requires_grad_() for m, x in xs.items()}
        out = fusion(ins, mask, return_weights=True)[0] if slow else fusion(ins, mask)
        (out["text"].square().sum() + out["image"].sin().sum()).backward()
        grads = [ins[m].grad for m in ins] + [p.grad.clone() for p in fusion.parameters()]
        results.append((out, grads))
    (fast, g_fast), (ref, g_ref) = results
    for m in ref:
        assert fast[m].shape == (7, 16) and torch.allclose(fast[m], ref[m], atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(g_fast, g_ref))
    assert ModalFusion(("text", "image"), 16, 3, 4, 1, 32, 0.1, mode).train().uses_dropout()


def test_fusion_off_is_the_kg_only_path(split):
    model, _ = build_model("MultiKG4Rec", split, **{**SMALL, "fusion": "none"})
    assert model.fusion is None and not any("fusion" in n for n, _ in model.named_parameters())
    model.on_epoch_start(1)
    model.eval()
    with torch.no_grad():
        init, layer0 = model.initial_tables(), model.layer0_tables()
        assert all(torch.equal(init[m], layer0[m]) for m in init)
        e = torch.cat([g(init[m][model.input_nodes], model.plan, model.self_pos, model.n_out)
                       for m, g in model.graphs.items()], 1)
        u, i = e[:model.n_users], e[model.n_users:]
        assert torch.allclose(model.score_all(torch.arange(7)), u[:7] @ i.T, atol=1e-5)
    # with fusion on, the items' layer-0 rows change and nothing else does
    on, _ = build_model("MultiKG4Rec", split, **SMALL)
    on.eval()
    with torch.no_grad():
        init, layer0 = on.initial_tables(), on.layer0_tables()
    u0, i1 = on.n_users, on.n_users + on.n_items
    for m in init:
        assert torch.equal(init[m][:u0], layer0[m][:u0]) and torch.equal(init[m][i1:], layer0[m][i1:])
        assert not torch.allclose(init[m][u0:i1], layer0[m][u0:i1])


def test_bfs_sequences_and_modality_attention(split):
    model, _ = build_model("MultiKG4Rec", split, **SMALL)
    seq, mask = model.fusion_seq, model.fusion_mask
    assert torch.equal(seq[:, 0], model.ckg.n_users + torch.arange(split.n_items))
    assert mask[:, 0].all()
    model.on_epoch_start(1)
    items, mass, mods = model.modality_attention([0, 3], n_items=4)
    assert mods == ("text", "image") and items.shape == (2, 4) and mass.shape == (2, 4, 2)
    has = items >= 0
    assert torch.allclose(mass[has].sum(-1), torch.ones(int(has.sum())))
    for k, u in enumerate([0, 3]):
        train = set(split.train.item[split.train.user == u].tolist())
        assert set(items[k][items[k] >= 0].tolist()) <= train


def test_partial_fusion_equals_full_at_evaluation(split):
    """Under fusion_items_per_batch the cache holds the full pass's values: fusing a subset now
    leaves the other items' layer-0 rows equal to the full pass."""
    model, _ = build_model("MultiKG4Rec", split, **{**SMALL, "fusion_dropout": 0.0,
                                                "fusion_items_per_batch": 9})
    model.eval()
    with torch.no_grad():
        full = model.layer0_tables()
        part = model.layer0_tables(torch.tensor([3, 5, 8]))
    assert all(torch.allclose(full[m], part[m], atol=1e-5) for m in full)


# ---- real data -----------------------------------------------------------------------------
@pytest.mark.parametrize("model,overrides", [
    ("MKGAT", {"epochs": 8, "learning_rate": 0.01}),
    ("MultiKG4Rec", {"epochs": 3, "learning_rate": 0.005}),
])
def test_beats_popularity_on_ml100k(model, overrides, pop, data_dir):
    # the KG models' check: one torch thread, >= 1.10 x Pop's test NDCG@10
    assert_beats_popularity(model, overrides, pop)


# ---- bad input: the fusion's sizes are refused when the config is read, before training -------
@pytest.mark.parametrize("override,fragment", [
    ("fusion_seq_len=0", "must be >= 1"),
    ("fusion_heads=0", "must be >= 1"),
    ("fusion_blocks=-1", "must be >= 0"),
    ("fusion_heads=3", "must divide embedding_size (64), got 3"),
    ("fusion_heads=128", "must divide embedding_size (64), got 128"),
])
def test_fusion_sizes_refused_with_the_key_named(override, fragment):
    from mmkgrec.config import load_config
    from mmkgrec.errors import ConfigError

    key = override.split("=")[0]
    with pytest.raises(ConfigError) as e:
        load_config("MultiKG4Rec", "ml-100k", overrides=[override])
    msg = str(e.value)
    assert msg.startswith(f"config key '{key}'") and fragment in msg and "\n" not in msg, msg
    load_config("MultiKG4Rec", "ml-100k", overrides=["fusion_heads=16", "embedding_size=32"])
    with pytest.raises(ConfigError, match="'fusion_heads'.*embedding_size from --set"):
        load_config("MultiKG4Rec", "ml-100k", overrides=["embedding_size=12"])


def test_cli_refuses_bad_fusion_heads_in_one_line(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "mmkgrec.cli", "train", "--model", "MultiKG4Rec",
                        "--dataset", "ml-100k", "--out", str(out), "--set", "fusion_heads=5"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and not out.exists()
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "fusion_heads" in lines[0] and "Traceback" not in r.stderr, r.stderr
