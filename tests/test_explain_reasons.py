"""The models' own reasons (mmkgrec.explain.reasons): each hook scores a candidate with history
items taken away. LightGCN, MM-RACL-KAL and LLMKGRec equal (to 1e-6) a model with the same weights
built on a training split without those interactions; removing nothing, or items outside the
history, leaves the score as it is; models without reasons say so."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mmkgrec
from helpers import build_model
from mmkgrec.data.split import Split
from mmkgrec.explain.reasons import (declared_reasons, has_reasons, influence,
                                     models_without_reasons, scores_without)
from mmkgrec.models import build_inputs

pytestmark = pytest.mark.usefixtures("fake_features")

CASES = {
    "LightGCN": {"n_layers": 3, "embedding_size": 16},
    "LLMKGRec": {"embedding_size": 16},
    # a window longer than every history, so that the rebuilt model reads the same sequence
    "MMRACLKAL": {"max_seq_length": 50, "hidden_size": 16, "inner_size": 32,
                  "hidden_dropout_prob": 0.0, "attn_dropout_prob": 0.0},
}


def _user(split, k=6):
    """The first user with at least ``k`` distinct training items, and those items."""
    for u in range(split.n_users):
        items = np.unique(split.train.item[split.train.user == u])
        if len(items) >= k:
            return u, items
    raise AssertionError("no such user")


def _rebuilt(name, split, cfg, model, user, removed):
    """``name`` on the training split without ``user``'s interactions with ``removed``, with
    ``model``'s weights."""
    train = split.train
    cut = (train.user == user) & np.isin(train.item, removed)
    assert cut.any()
    smaller = Split(split.dataset, train.take(np.flatnonzero(~cut)), split.valid, split.test)
    cls = type(model)
    other = cls(cfg, build_inputs(smaller, cls.requirements(cfg), "cpu", cfg))
    other.load_state_dict(model.state_dict())
    other.eval()
    with torch.no_grad():
        other.prepare_eval()
    return other


def _plain_score(model, user, item):
    model.eval()
    with torch.no_grad():
        model.prepare_eval()
        if getattr(model, "scores_need_users", False):
            return float(model.score_all(torch.tensor([user]))[0, item])
        return float(model.score(torch.tensor([user]), torch.tensor([item]))[0])


@pytest.mark.parametrize("name", sorted(CASES))
def test_removal_equals_a_model_trained_without_those_interactions(name, split):
    model, cfg = build_model(name, split, **CASES[name])
    assert has_reasons(model)
    u, hist = _user(split)
    outside = [int(i) for i in np.setdiff1d(np.arange(split.n_items), hist)[:2]]
    c = outside[0]
    removals = [[], [int(hist[0])], [int(i) for i in hist[1:4]], [outside[1]]]
    got = scores_without(model, u, c, removals)
    # removing nothing: the model's own score; an item outside the history: the same, exactly
    assert got[0] == pytest.approx(_plain_score(model, u, c), abs=1e-6)
    assert got[3] == got[0]
    assert got[1] != got[0] and got[2] != got[0]
    for k in (1, 2):
        other = _rebuilt(name, split, cfg, model, u, removals[k])
        assert got[k] == pytest.approx(_plain_score(other, u, c), abs=1e-6), (name, k)
    # one call per removal gives the batch's values
    one = [scores_without(model, u, c, [r])[0] for r in removals]
    np.testing.assert_allclose(one, got, atol=1e-6)
    assert set(model.history_items(u)) == {int(i) for i in hist}


def test_lightgcn_edited_graph_is_the_graph_built_without_the_edges(split):
    from mmkgrec.graph.adjacency import without_edges
    from mmkgrec.nn.propagation import light_propagate, light_propagate_rows

    model, _ = build_model("LightGCN", split, **CASES["LightGCN"])
    u, hist = _user(split)
    n = split.n_users
    removed = [int(i) for i in hist[:3]]
    cut = (split.train.user == u) & np.isin(split.train.item, removed)
    want = build_inputs(Split(split.dataset, split.train.take(np.flatnonzero(~cut)), split.valid,
                              split.test), frozenset({"graph"})).graph.to_dense()
    got = without_edges(model.adj, u, [i + n for i in removed])
    torch.testing.assert_close(got.to_dense(), want, atol=1e-7, rtol=1e-6)
    assert without_edges(model.adj, u, []) is model.adj
    ego = model.ego().detach()
    full = light_propagate(got, ego, 3)
    rows = light_propagate_rows(got, ego, 3, [u, n + removed[0], 0])
    torch.testing.assert_close(rows, full[[u, n + removed[0], 0]], atol=1e-6, rtol=1e-5)


def test_influence_is_one_removal_per_history_item(split):
    model, _ = build_model("LightGCN", split, **CASES["LightGCN"])
    u, hist = _user(split)
    c = int(np.setdiff1d(np.arange(split.n_items), hist)[0])
    drops = influence(model, u, c)
    assert set(drops) == {int(i) for i in hist}
    base = scores_without(model, u, c, [[]])[0]
    i = int(hist[2])
    assert drops[i] == pytest.approx(base - scores_without(model, u, c, [[i]])[0], abs=1e-6)


def test_models_without_reasons_say_so(split):
    declared = declared_reasons()
    for name in ("LightGCN", "MMRACLKAL", "LLMKGRec", "SASRec", "GRU4Rec"):
        assert declared[name], name
    assert {"BPR", "VBPR"} <= set(models_without_reasons())
    assert not set(models_without_reasons()) & {"LightGCN", "MMRACLKAL", "LLMKGRec"}
    bpr, _ = build_model("BPR", split)
    assert not has_reasons(bpr)
    with pytest.raises(NotImplementedError):
        scores_without(bpr, 0, 0, [[]])


def test_llmkgrec_one_pass_has_no_reasons(split, monkeypatch):
    import mmkgrec.features
    from helpers import fake_item_feature_matrix, fake_user_history_matrix

    monkeypatch.setattr(mmkgrec.features, "user_history_matrix", lambda s, config=None:
                        fake_user_history_matrix(s, fake_item_feature_matrix(s.dataset,
                                                                             "text")[0]))
    model, _ = build_model("LLMKGRec", split, user_encoder="one_pass", embedding_size=16)
    assert not has_reasons(model)
    with pytest.raises(NotImplementedError):
        scores_without(model, 0, 0, [[]])


def test_a_lightgcn_run_orders_the_cited_history_by_its_reasons(tmp_path):
    from explain_data import write

    data = write(tmp_path / "films")
    run = mmkgrec.train("LightGCN", str(data), tmp_path / "lgcn", overrides={
        "show_progress": False, "threads": 1, "split": "leave_one_out", "user_min_inter": 1,
        "item_min_inter": 1, "epochs": 1, "embedding_size": 8})
    u, c = run.user_index("1"), run.item_index("8")
    run._prepare()
    drops = influence(run.model, u, c)
    assert set(drops) == set(run.explainer().catalog.history(u)[0].tolist())
    ev = run.explainer().evidence(u, c)
    assert ev.reasons == pytest.approx(drops)
