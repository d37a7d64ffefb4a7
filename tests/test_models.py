import numpy as np
import pytest
import torch

from mmkgrec.config import load_config
from mmkgrec.data import load_dataset, split_dataset
from mmkgrec.graph.adjacency import bipartite_adjacency, sym_normalize
from mmkgrec.models import build_inputs, get_model_class, registered_models


@pytest.fixture(scope="module")
def split():
    return split_dataset(load_dataset("synthetic", {"data_format": "synthetic"}), "random_ratio")


def _model(name, split, **ov):
    cfg = load_config(name, "synthetic", overrides=ov)
    cls = get_model_class(name)
    torch.manual_seed(0)
    return cls(cfg, build_inputs(split, cls.requires)), cfg


def test_registry_names():
    assert {"BPR", "LightGCN", "Pop"} <= set(registered_models())
    with pytest.raises(KeyError, match="unknown model 'Nope'"):
        get_model_class("Nope")


def test_normalised_adjacency_by_hand():
    from mmkgrec.data.dataset import Interactions

    # user0-item0, user0-item1, user1-item0: degrees u0=2, u1=1, i0=2, i1=1
    a = sym_normalize(bipartite_adjacency(Interactions([0, 0, 1], [0, 1, 0]), 2, 2)).toarray()
    assert np.isclose(a[0, 2], 1 / 2) and np.isclose(a[0, 3], 1 / np.sqrt(2))
    assert np.isclose(a[1, 2], 1 / np.sqrt(2)) and np.allclose(a, a.T) and a[0, 1] == 0


def test_lightgcn_gradient_matches_dense_reference(split):
    model, cfg = _model("LightGCN", split, n_layers=3, reg_weight=1e-3)
    batch = {"users": torch.tensor([0, 1, 5, 7]), "pos_items": torch.tensor([1, 2, 3, 4]),
             "neg_items": torch.tensor([9, 8, 7, 6])}
    model.loss(batch).backward()
    nu = split.n_users
    g_user, g_item = model.node_emb.weight.grad[:nu].clone(), model.node_emb.weight.grad[nu:].clone()
    # dense reference: the same maths written out with a dense matrix
    adj = torch.from_numpy(sym_normalize(bipartite_adjacency(split.train, split.n_users,
                                                              split.n_items)).toarray())
    u0 = model.node_emb.weight[:nu].detach().double().clone().requires_grad_(True)
    i0 = model.node_emb.weight[nu:].detach().double().clone().requires_grad_(True)
    x = torch.cat([u0, i0])
    layers = [x]
    for _ in range(3):
        layers.append(adj.double() @ layers[-1])
    out = torch.stack(layers).mean(0)
    u, i = out[: split.n_users], out[split.n_users:]
    b = batch
    pos = (u[b["users"]] * i[b["pos_items"]]).sum(1)
    neg = (u[b["users"]] * i[b["neg_items"]]).sum(1)
    loss = -torch.nn.functional.logsigmoid(pos - neg).mean() + 1e-3 * (
        u0[b["users"]].pow(2).sum() + i0[b["pos_items"]].pow(2).sum()
        + i0[b["neg_items"]].pow(2).sum()) / 4
    loss.backward()
    assert torch.allclose(g_user.double(), u0.grad, atol=1e-6)
    assert torch.allclose(g_item.double(), i0.grad, atol=1e-6)
    assert g_user.abs().sum() > 0


def test_pop_scores_are_training_counts(split):
    model, _ = _model("Pop", split)
    counts = np.bincount(split.train.item, minlength=split.n_items)
    assert np.array_equal(model.score_all(torch.tensor([0, 3]))[1].numpy(), counts)
    assert model.score(torch.tensor([0]), torch.tensor([5])).item() == counts[5]


@pytest.mark.parametrize("name", ["BPR", "LightGCN"])
def test_score_agrees_with_score_all_and_vectors(name, split):
    model, _ = _model(name, split)
    model.eval()
    with torch.no_grad():
        model.prepare_eval()
        users, items = torch.tensor([0, 4, 9]), torch.tensor([3, 1, 2])
        full = model.score_all(users)
        assert torch.allclose(model.score(users, items), full[torch.arange(3), items])
        assert torch.allclose(full, model.user_vectors()[users] @ model.item_vectors().T)


@pytest.mark.parametrize("name", ["BPR", "LightGCN"])
def test_every_parameter_gets_a_gradient(name, split):
    model, _ = _model(name, split)
    batch = {"users": torch.arange(50), "pos_items": torch.arange(50),
             "neg_items": torch.arange(50, 100)}
    model.loss(batch).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


def test_missing_inputs_are_named(split):
    from mmkgrec.models import ModelInputs

    cfg = load_config("LightGCN", "synthetic")
    bare = ModelInputs(split.n_users, split.n_items, split.train)
    with pytest.raises(ValueError, match=r"LightGCN needs inputs \['graph'\]"):
        get_model_class("LightGCN")(cfg, bare)
    with pytest.raises(ValueError, match=r"KGAT needs inputs \['kg'\]"):
        get_model_class("KGAT")(load_config("KGAT", "synthetic"), bare)
