"""CKE, KGCN and KGAT: no inert parameter, switches change scores, score == score_all, training
helps on synthetic data, and each beats popularity on a fixed ML-100K subsample."""

import numpy as np
import pytest
import torch

from mmkgrec.evaluation.evaluator import make_evaluator
from mmkgrec.training.trainer import Trainer

from helpers import (assert_beats_popularity, assert_score_matches_score_all, build_model,
                     first_batches, train_scores)

pytestmark = pytest.mark.usefixtures("fake_features")
MODELS = ["CKE", "KGCN", "KGAT"]


CASES = [("CKE", {}), ("CKE", {"modalities": ["text", "image"], "kg_inverse_relations": True}),
         ("KGCN", {}), ("KGCN", {"aggregator": "concat", "n_iter": 2}),
         ("KGCN", {"aggregator": "neighbor", "n_iter": 2}),
         ("KGAT", {}), ("KGAT", {"aggregator_type": "gcn", "layers": [16, 8]}),
         ("KGAT", {"aggregator_type": "graphsage", "kg_loss_triples": "ckg"})]


@pytest.mark.parametrize("name,ov", CASES)
def test_every_parameter_gets_a_gradient(name, ov, split):
    model, cfg = build_model(name, split, **ov)
    model.train()
    model.on_epoch_start(1)  # KGAT: attention from the current weights
    batches = first_batches(model, split, cfg)
    assert len(batches) == (2 if name == "KGAT" else 1)
    sum(model.loss(b) for b in batches).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


SWITCHES = {
    "CKE": [{"kg_inverse_relations": True}, {"modalities": ["text"]}, {"kg_merge": "both"},
            {"kg_merge": "domain"}],
    "KGCN": [{"aggregator": "concat"}, {"aggregator": "neighbor"}, {"n_iter": 2},
             {"neighbor_sample_size": 2}, {"kg_merge": "both"}],
    "KGAT": [{"use_attention": False}, {"aggregator_type": "gcn"}, {"aggregator_type": "graphsage"},
             {"kg_loss_triples": "ckg"}, {"layers": [64, 32]}, {"kg_merge": "domain"}],
}


@pytest.mark.parametrize("name", MODELS)
def test_switches_change_scores(name, split):
    base = train_scores(name, split)
    assert torch.equal(base, train_scores(name, split))  # deterministic
    for ov in SWITCHES[name]:
        other = train_scores(name, split, **ov)
        assert not torch.allclose(base, other, atol=1e-5), ov


@pytest.mark.parametrize("name,ov", CASES)
def test_score_agrees_with_score_all(name, ov, split):
    model, _ = build_model(name, split, **ov)
    model.on_epoch_start(1)
    assert_score_matches_score_all(model, split.n_items)


KGCN_RANKING = [{}, {"aggregator": "concat"}, {"aggregator": "neighbor"},
                {"aggregator": "concat", "n_iter": 2},
                {"aggregator": "neighbor", "n_iter": 2, "neighbor_sample_size": 3},
                {"aggregator": "sum", "n_iter": 2}, {"neighbor_sample_size": 1}]


@pytest.mark.parametrize("case", ["sampled", "fixed", "wide"])
@pytest.mark.parametrize("ov", KGCN_RANKING)
def test_kgcn_full_ranking_equals_the_per_pair_computation(ov, case, split, monkeypatch):
    """KGCN's full ranking (shared parts once per pass, items whose attention cannot depend on
    the user by one product, the others in blocks of users and items) gives every user's score
    of every item as the per-pair computation it trains with. ``fixed``: 70% of the entities
    get one relation in all K slots and the others random ones, so some items (at every depth)
    have user-independent vectors beside the others; ``wide``: user-relation scores spanning more than 60 (the
    per-item softmax of the one-hop blocks)."""
    import mmkgrec.models.kgcn as kgcn

    model, _ = build_model("KGCN", split, **ov)
    if case == "fixed":
        rows = torch.from_numpy(np.random.default_rng(0).random(len(model.adj_relation)) < 0.7)
        model.adj_relation[rows] = model.adj_relation[rows, :1]
        n_rel = model.relation_emb.weight.shape[0]  # the other 30%: mixed relations
        model.adj_relation[~rows] = torch.randint(0, n_rel, model.adj_relation[~rows].shape)
    elif case == "wide":
        with torch.no_grad():
            model.user_emb.weight.mul_(300.0)
    users = torch.arange(split.n_users)
    pairs_u = users.repeat_interleave(split.n_items)
    pairs_i = torch.arange(split.n_items).repeat(split.n_users)
    model.eval()
    with torch.no_grad():
        per_pair = model.score(pairs_u, pairs_i).view(split.n_users, split.n_items)
        uncached = model.score_all(users)
        monkeypatch.setattr(kgcn, "_CHUNK_ELEMENTS", 1 << 14)  # many blocks of both kinds
        monkeypatch.setattr(kgcn, "_ONE_HOP_USERS", 7)  # H = 1: blocks of 7 users x 3 items
        monkeypatch.setattr(kgcn, "_ONE_HOP_CELLS", 7 * 3 * model.user_emb.weight.shape[1])
        model.prepare_eval()
        blocked = model.score_all(users)
        n_fixed = len(model._shared["fixed"])
        if model.K == 1:  # one neighbour: no item's attention depends on the user
            assert n_fixed == split.n_items
        elif case == "fixed":  # both kinds of item are there
            assert 0 < n_fixed < split.n_items
    scale = per_pair.abs().max().clamp_min(1.0)
    torch.testing.assert_close(uncached / scale, per_pair / scale, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(blocked / scale, per_pair / scale, atol=1e-5, rtol=1e-5)
    model.train()  # new weights: the shared parts of the last pass are dropped
    with torch.no_grad():
        model.entity_emb.weight.mul_(2.0)
    model.eval()
    with torch.no_grad():
        model.prepare_eval()
        after = model.score_all(users[:5])
        assert torch.allclose(after, model.score(pairs_u[:5 * split.n_items],
                                                 pairs_i[:5 * split.n_items]).view(5, -1),
                              atol=1e-5 * float(scale))
        assert not torch.allclose(after, per_pair[:5], atol=1e-4)


@pytest.mark.parametrize("case", ["sampled", "fixed", "wide", "grouped", "dense"])
@pytest.mark.parametrize("ov", KGCN_RANKING)
def test_kgcn_scores_for_a_top_k_keep_every_users_top_k(ov, case, split, monkeypatch):
    """``score_all_for_top`` (the evaluator's hook) bounds the scores that cannot reach a
    user's top k once the excluded entries are gone and computes the rest exactly: for every k
    the top k is :meth:`score_all`'s (items may trade places only within a tie at rounding
    level: the scores position by position agree), every bounded entry lies strictly below the
    user's k-th best, and some entries are bounded. Entity vectors x20 saturate tanh in places
    (near-ties, wide ranges of x); ``wide``: user vectors x300 (the softmax per item);
    ``grouped`` / ``dense``: the bound per neighbour group / by one product over every
    relation."""
    import mmkgrec.models.kgcn as kgcn
    from mmkgrec.evaluation.metrics import topk_with_ties

    if case in ("grouped", "dense"):
        monkeypatch.setattr(kgcn, "_dense_table", lambda *a: case == "dense")

    model, _ = build_model("KGCN", split, **ov)
    if case == "fixed":
        rows = torch.from_numpy(np.random.default_rng(0).random(len(model.adj_relation)) < 0.7)
        model.adj_relation[rows] = model.adj_relation[rows, :1]
    with torch.no_grad():
        model.entity_emb.weight.mul_(20.0)  # wide ranges of x: the bounds must still hold
        if case == "wide":
            model.user_emb.weight.mul_(300.0)
    users = torch.arange(split.n_users)
    g = torch.Generator().manual_seed(0)
    excluded = torch.rand(split.n_users, split.n_items, generator=g) < 0.3
    excluded[0] = True  # a user with nothing left to rank
    excluded[1, 2:] = True  # fewer items left than k
    rows, cols = excluded.nonzero(as_tuple=True)
    model.eval()
    bounded_somewhere = False
    with torch.no_grad():
        model.prepare_eval()
        bounds = model._shared["bounds"]
        assert (bounds is None) == (model.H != 1)
        if bounds is not None and len(model._shared["items"]):  # items whose bounds matter
            if case in ("grouped", "dense"):
                assert (bounds["dense"] is None) == (case == "grouped")
        full = model.score_all(users).masked_fill(excluded, -torch.inf)
        for k in (1, 3, 10):
            top = model.score_all_for_top(users, k, (rows, cols))
            assert torch.isfinite(top).all()
            top = top.masked_fill(excluded, -torch.inf)
            scale = float(full[~excluded].abs().max().clamp_min(1.0))
            # the same top k: position by position the same exact score (items may swap only
            # within a tie at rounding level, as between any two exact float computations)
            mine, theirs = topk_with_ties(top, k), topk_with_ties(full, k)
            torch.testing.assert_close(full.gather(1, mine), full.gather(1, theirs), rtol=0,
                                       atol=1e-5 * scale)
            kth = full.topk(k, 1).values[:, -1:]
            off = ~torch.isclose(top, full, rtol=0, atol=1e-5 * scale) & ~excluded
            assert (top[off] < kth.expand_as(top)[off]).all()
            assert (full[off] < kth.expand_as(full)[off]).all()
            bounded_somewhere |= bool(off.any())
    if model.H == 1 and model.K > 1 and case != "fixed":
        assert bounded_somewhere  # the bounds pruned something
    else:
        assert model.K == 1 or model.H > 1 or case == "fixed"


def test_full_ranking_evaluation_is_the_same_with_and_without_kgcn_bounds(split, monkeypatch):
    """The evaluator's metrics for KGCN, per user, are those of scoring every item exactly."""
    from mmkgrec.evaluation.ranking import FullRankingEvaluator
    from mmkgrec.models.base import Recommender
    from mmkgrec.models.kgcn import KGCN

    model, _ = build_model("KGCN", split)
    with torch.no_grad():
        model.entity_emb.weight.mul_(20.0)
    ev = FullRankingEvaluator(split, "test", ["recall@3", "ndcg@5", "mrr@5", "hit@1",
                                              "precision@5"])
    bounded, acc_b, _ = ev.evaluate(model)
    monkeypatch.setattr(KGCN, "score_all_for_top", Recommender.score_all_for_top)
    exact, acc_e, _ = ev.evaluate(model)
    assert bounded == exact
    for m, v in acc_b.per_user().items():
        assert np.array_equal(v, acc_e.per_user()[m])


@pytest.mark.parametrize("name,epochs", [("CKE", 8), ("KGCN", 8), ("KGAT", 4)])
def test_training_improves_validation_ndcg(name, epochs, split):
    model, cfg = build_model(name, split, epochs=epochs, learning_rate=0.01, valid_metric="ndcg@10",
                        stopping_step=0, eval_step=epochs)
    ev = make_evaluator(split, "valid", cfg)
    before = ev.evaluate(model)[0]["ndcg@10"]
    result = Trainer(model, split, cfg).fit()
    after = ev.evaluate(model)[0]["ndcg@10"]
    assert after > before + 0.02, (before, after)
    assert result.best_valid["ndcg@10"] == pytest.approx(after)


def test_kgat_attention_refresh_and_checkpoint(split, tmp_path):
    model, cfg = build_model("KGAT", split)
    prop = model.propagation
    uniform = prop.attention.clone()
    model.on_epoch_start(0)
    assert torch.equal(prop.attention, uniform)  # epoch 0: uniform 1/|N_h|
    model.on_epoch_start(1)
    assert not torch.allclose(prop.attention, uniform)
    # the best epoch's weights carry their attention
    assert "propagation.attention" in model.state_dict()
    sums = torch.zeros(model.ckg.n_nodes).index_add_(0, model.edge_heads, prop.attention)
    has = torch.bincount(model.edge_heads, minlength=model.ckg.n_nodes) > 0
    assert torch.allclose(sums[has], torch.ones(int(has.sum())), atol=1e-5)


def test_kg_batches_exclude_true_tails(split):
    from mmkgrec.data.batches import KGTripleBatches

    model, cfg = build_model("KGAT", split)
    trip = model.kg.triples_with_inverse()
    kb = KGTripleBatches(trip, model.kg.n_entities, 512, 2 * model.kg.n_relations)
    true = set(map(tuple, trip.tolist()))
    n = 0
    for b in kb.epoch(np.random.default_rng(0)):
        for h, r, t in zip(b["heads"].tolist(), b["relations"].tolist(), b["neg_tails"].tolist()):
            assert (h, r, t) not in true
        n += len(b["heads"])
    assert n == len(trip) and len(kb) == -(-len(trip) // 512)


# ---- real data -----------------------------------------------------------------------------
@pytest.mark.parametrize("model,overrides", [
    ("CKE", {"epochs": 8, "learning_rate": 0.01}),
    ("KGCN", {"epochs": 10, "learning_rate": 0.01}),
    ("KGAT", {"epochs": 8, "learning_rate": 0.005}),  # lr 0.01 is unstable for KGAT here
])
def test_beats_popularity_on_ml100k(model, overrides, pop, data_dir):
    assert_beats_popularity(model, overrides, pop)
