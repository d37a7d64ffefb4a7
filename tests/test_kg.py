"""Knowledge graphs: ids, inverse relations, the collaborative KG, domain KG, merging, BFS
neighbourhoods, KGCN sampling, bad input, and the KG layers (TransR, edge softmax, attention)."""

import logging

import numpy as np
import pytest
import torch

from mmkgrec.data import load_dataset, split_dataset
from mmkgrec.data.split import Split
from mmkgrec.errors import MMKGRecError
from mmkgrec.graph.kg import KnowledgeGraph, bfs_sequences
from mmkgrec.models import build_inputs
from mmkgrec.nn.kg import (AGGREGATORS, BiInteraction, TransE, TransR, edge_softmax,
                           knowledge_attention)

INTER = ("user_id:token\titem_id:token\trating:float\n"
         "u1\ti1\t5\nu1\ti2\t4\nu1\ti3\t3\nu2\ti1\t2\nu2\ti3\t1\n")
KG = "head_id:token\trelation_id:token\ttail_id:token\n" + \
    "m1\tgenre\tg1\nm2\tgenre\tg1\nm1\tdirector\td1\n"
LINK = "item_id:token\tentity_id:token\ni1\tm1\ni2\tm2\n"
ITEM = ("item_id:token\tclass:token_seq\trelease_year:token\n"
        "i1\tDrama Comedy\t1995\ni2\tDrama\t1994\ni3\t\t1995\n")


def _tiny(atomic_dir, kg=KG, link=LINK, **extra):
    return load_dataset(str(atomic_dir({"inter": INTER, "kg": kg, "link": link, **extra})))


def _split(ds, train_rows):
    """A split whose training part is ``train_rows`` of the interactions, the rest test."""
    rows = np.asarray(train_rows)
    rest = np.setdiff1d(np.arange(len(ds.inter)), rows)
    empty = ds.inter.take(np.array([], dtype=np.int64))
    return Split(ds, ds.inter.take(rows), empty, ds.inter.take(rest), "manual")


def _triples(kg, arr=None):
    arr = kg.triples if arr is None else arr
    e, r = kg.entity_tokens, kg.relation_tokens
    return {(e[h], r[x % kg.n_relations] + ("^-1" if x >= kg.n_relations else ""), e[t])
            for h, x, t in arr}


def test_ids_items_first_and_inverse_relations(atomic_dir):
    ds = _tiny(atomic_dir)
    kg = KnowledgeGraph.from_dataset(ds)
    # items are entities 0..2 (i3 has no link: an entity of its own), then others in sorted order
    assert kg.entity_tokens.tolist() == ["m1", "m2", "item:i3", "d1", "g1"]
    assert kg.relation_tokens.tolist() == ["director", "genre"] and kg.n_relations == 2
    assert _triples(kg) == {("m1", "genre", "g1"), ("m2", "genre", "g1"), ("m1", "director", "d1")}
    inv = kg.triples_with_inverse()
    assert len(inv) == 6
    assert _triples(kg, inv[3:]) == {("g1", "genre^-1", "m1"), ("g1", "genre^-1", "m2"),
                                     ("d1", "director^-1", "m1")}
    assert kg.stats["items_linked"] == 2 and kg.stats["n_triples"] == 3
    assert (kg.adjacency().toarray() == kg.adjacency().toarray().T).all()


def test_collaborative_kg_uses_training_interactions_only(atomic_dir):
    ds = _tiny(atomic_dir)
    kg = KnowledgeGraph.from_dataset(ds)
    split = _split(ds, [0, 1, 3])  # u1-i1, u1-i2, u2-i1 train; u1-i3, u2-i3 test
    ckg = kg.collaborative(split)
    U = ds.n_users
    assert ckg.n_nodes == U + kg.n_entities and ckg.n_relations == 2 * 2 + 2
    inter = ckg.relations == ckg.interact
    pairs = set(zip(ckg.heads[inter].tolist(), (ckg.tails[inter] - U).tolist()))
    assert pairs == {(0, 0), (0, 1), (1, 0)}  # never item 2 (test only)
    back = ckg.relations == ckg.interact + 1
    assert set(zip((ckg.heads[back] - U).tolist(), ckg.tails[back].tolist())) == {
        (i, u) for u, i in pairs}
    assert ckg.n_edges == 6 + 2 * 3
    # edges sorted by head: CSR pointers agree; the transpose order sorts by tail
    assert (np.diff(ckg.heads) >= 0).all()
    assert (np.bincount(ckg.heads, minlength=ckg.n_nodes) == np.diff(ckg.indptr)).all()
    a = ckg.adjacency().toarray()
    vals = torch.arange(ckg.n_edges, dtype=torch.float32) + 1
    A, At = ckg.torch_csr(vals)
    assert torch.equal(A.to_dense(), torch.from_numpy(ckg.adjacency(vals.numpy()).toarray()))
    assert torch.equal(At.to_dense(), A.to_dense().T)
    assert a.sum() == ckg.n_edges


def test_domain_kg_and_merge_on_synthetic():
    ds = load_dataset("synthetic", {"data_format": "synthetic"})
    dom = KnowledgeGraph.from_dataset(ds, {"kg_merge": "domain"})
    assert dom.relation_tokens.tolist() == ["class", "release_year"]
    assert len(dom.triples) == 2 * ds.n_items  # one class and one year per synthetic item
    assert set(dom.entity_tokens[dom.n_items:]) == {f"class=cat{c}" for c in range(8)} | {
        f"release_year={y}" for y in range(1950, 2010, 10)}
    ext = KnowledgeGraph.from_dataset(ds)  # auto: the external KG
    assert ext.stats["kg_source"] == "external" and len(ext.triples) == 3 * ds.n_items
    both = KnowledgeGraph.from_dataset(ds, {"kg_merge": "both"})
    assert len(both.triples) == len(ext.triples) + len(dom.triples)
    assert both.n_relations == 5
    # domain triples hang off the same item entities as the external ones
    assert _triples(ext) <= _triples(both)
    dom_rel = {(r, t) for _, r, t in _triples(dom)}
    assert {(r, t) for h, r, t in _triples(both) if r in ("class", "release_year")} == dom_rel
    assert all(h.startswith("e") for h, r, _ in _triples(both) if r == "class")
    only = KnowledgeGraph.from_dataset(ds, {"kg_merge": "domain", "kg_domain_columns": ["class"]})
    assert only.relation_tokens.tolist() == ["class"]
    with pytest.raises(MMKGRecError, match="kg_domain_columns"):
        KnowledgeGraph.from_dataset(ds, {"kg_merge": "domain", "kg_domain_columns": ["nope"]})


def test_domain_kg_from_item_table_token_seq(atomic_dir):
    ds = _tiny(atomic_dir, item=ITEM)
    kg = KnowledgeGraph.from_dataset(ds, {"kg_merge": "both"})
    assert ("m1", "class", "class=Comedy") in _triples(kg)
    assert ("item:i3", "release_year", "release_year=1995") in _triples(kg)
    assert not any(h == "item:i3" and r == "class" for h, r, _ in _triples(kg))  # empty value


def test_external_kg_required_for_external_merge(atomic_dir):
    ds = load_dataset(str(atomic_dir({"inter": INTER})))
    with pytest.raises(MMKGRecError, match="no external KG"):
        KnowledgeGraph.from_dataset(ds, {"kg_merge": "external"})


def test_bad_triples_counted_dropped_or_rejected(atomic_dir, caplog):
    bad_kg = KG + "m1\tgenre\tg1\n" + "g1\tsame\tg1\n" + "m2\t\tg1\n" + "m2\tdirector\td1\n"
    bad_link = LINK + "zz\tm9\n"  # a link for an item that does not exist
    ds = _tiny(atomic_dir, kg=bad_kg, link=bad_link)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mmkgrec.graph.kg"):
        kg = KnowledgeGraph.from_dataset(ds, {"kg_bad_triples": "drop"})
    bad = kg.stats["bad_input"]
    assert bad["duplicate triples"] == 1
    assert bad["self-loops"] == 1
    assert bad["triples naming an unknown (missing) entity or relation"] == 1
    assert bad[".link rows for items not in the dataset"] == 1
    assert len(kg.triples) == 4  # the three good ones + m2 director d1
    lines = [r.getMessage() for r in caplog.records if r.name == "mmkgrec.graph.kg"]
    assert len(lines) == 1 and "1 duplicate triples" in lines[0] and "1 self-loops" in lines[0]
    with pytest.raises(MMKGRecError) as err:
        KnowledgeGraph.from_dataset(ds, {"kg_bad_triples": "reject"})
    msg = str(err.value)
    for what in ("duplicate triples", "self-loops", "unknown (missing)", ".link rows", "drop"):
        assert what in msg
    assert "('m1', 'genre', 'g1')" in msg  # an example of the duplicate
    clean = KnowledgeGraph.from_dataset(_tiny(atomic_dir, kg=KG), {"kg_bad_triples": "reject"})
    assert len(clean.triples) == 3


def test_item_entity_claimed_twice_is_reported(atomic_dir):
    ds = _tiny(atomic_dir, link=LINK + "i3\tm1\n")
    kg = KnowledgeGraph.from_dataset(ds)
    assert kg.stats["bad_input"]["items linked to an entity another item already claims"] == 1
    assert kg.entity_tokens[2] == "item:i3"
    with pytest.raises(MMKGRecError, match="already claims"):
        KnowledgeGraph.from_dataset(ds, {"kg_bad_triples": "reject"})


def _rekeyed(atomic_dir, map_text, **cfg):
    """The tiny dataset whose .link is keyed by another catalogue's ids (o1, o2, o3), read
    through the CSV map ``map_text`` (columns ``ours``, ``theirs``)."""
    d = atomic_dir({"inter": INTER, "kg": KG,
                    "link": "item_id:token\tentity_id:token\no1\tm2\no2\tm1\no9\tm1\n"})
    (d / "map.csv").write_text(map_text)
    return load_dataset(str(d), {"link_item_map": "map.csv",
                                 "link_item_map_columns": ["ours", "theirs"], **cfg})


def test_link_rekeyed_through_an_id_map(atomic_dir):
    """A .link written for another catalogue is read through the map: i1 is their o2 (entity
    m1), i2 is o1 ("a, quoted" title column and extra fields ignored), i3 maps to nothing."""
    ds = _rekeyed(atomic_dir, 'ours,title,theirs\ni2,"a, quoted",o1\ni1,b,o2\ni3,c,\n')
    ent = dict(zip(ds.item_ids.tolist(), ds.item_entity.tolist()))
    assert ent == {"i1": "m1", "i2": "m2", "i3": None}
    assert ds.stats["link_item_map"] == {"items_mapped": 2, "items_linked": 2,
                                         "map_rows_unknown_item": 0}
    kg = KnowledgeGraph.from_dataset(ds)
    assert kg.entity_tokens[:2].tolist() == ["m1", "m2"]  # entity k is item k
    # as given, no item is linked: the .link names none of this dataset's ids
    d = atomic_dir({"inter": INTER, "kg": KG,
                    "link": "item_id:token\tentity_id:token\no1\tm2\n"}, name="asis")
    assert all(e is None for e in load_dataset(str(d)).item_entity)


@pytest.mark.parametrize("map_text,fragment", [
    ("ours,other\ni1,o1\n", "line 1: header has no column(s) ['theirs']"),
    ("ours,theirs\ni1,o1\ni1,o2\n", "line 3: 'ours' i1 appears again (first on line 2)"),
    ("ours,title,theirs\ni1,o1\n", "line 2: 2 field(s) where the header names 3"),
    ("ours,theirs\n,o1\n", "line 2: empty 'ours'"),
    ("", "empty file"),
])
def test_bad_link_map_names_file_and_line(atomic_dir, map_text, fragment):
    with pytest.raises(MMKGRecError) as err:
        _rekeyed(atomic_dir, map_text)
    assert "map.csv" in str(err.value) and fragment in str(err.value)


def test_link_map_missing_or_outside_is_refused(atomic_dir, tmp_path):
    with pytest.raises(MMKGRecError, match="link_item_map.*not found.*link_item_map: null"):
        load_dataset(str(atomic_dir({"inter": INTER, "kg": KG, "link": LINK})),
                     {"link_item_map": "nope.csv"})
    (tmp_path / "outside.csv").write_text("ours,theirs\n")
    with pytest.raises(MMKGRecError, match="allow_outside_paths"):
        load_dataset(str(atomic_dir({"inter": INTER, "kg": KG, "link": LINK})),
                     {"link_item_map": "../outside.csv"})


def test_ml100k_films_linked_to_their_own_entities(data_dir):
    """RecBole's ml-100k.link is keyed by MovieLens-1M ids; the packaged settings re-key it, so
    Star Wars (ML-100K 50) is Freebase m.0dtfn and its sequel relation reaches The Empire
    Strikes Back (172). Read as given, 50 would be another film and 260 (Event Horizon) Star
    Wars."""
    from mmkgrec.config import load_config

    ds = load_dataset("ml-100k", load_config("KGAT", "ml-100k"))
    ent = dict(zip(ds.item_ids.tolist(), ds.item_entity.tolist()))
    assert (ent["50"], ent["172"], ent["181"]) == ("m.0dtfn", "m.0f3m1", "m.0ddjy")
    assert ds.stats["link_item_map"]["items_linked"] > 1500
    kg = KnowledgeGraph.from_dataset(ds)
    e = {t: k for k, t in enumerate(kg.entity_tokens.tolist())}
    r = kg.relation_tokens.tolist().index("film.film.sequel")
    assert any((h, x, t) == (e["m.0dtfn"], r, e["m.0f3m1"]) for h, x, t in kg.triples.tolist())
    given = load_dataset("ml-100k", load_config("KGAT", "ml-100k", None,
                                                {"link_item_map": None}))
    ent = dict(zip(given.item_ids.tolist(), given.item_entity.tolist()))
    assert ent["260"] == "m.0dtfn" and ent["50"] != "m.0dtfn"


def test_bfs_nearest_first_padded_and_masked():
    import scipy.sparse as sp

    # 0 - 1 - 2 - 3 - 4 (a path) and 0 - 5; node 6 isolated
    edges = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5)]
    r, c = zip(*edges)
    a = sp.csr_matrix((np.ones(5), (r, c)), shape=(7, 7))
    a = a + a.T
    seq, mask = bfs_sequences(a, [0, 2, 6, 4], 4)
    assert seq[0].tolist() == [0, 1, 5, 2]  # self, distance 1 (ids ascending), distance 2
    assert seq[1].tolist() == [2, 1, 3, 0]
    assert seq[2].tolist() == [6, -1, -1, -1] and mask[2].tolist() == [True, False, False, False]
    assert seq[3].tolist() == [4, 3, 2, 1]  # few near neighbours: higher-order nodes fill in
    seq, mask = bfs_sequences(a, [4], 8)
    assert seq[0].tolist() == [4, 3, 2, 1, 0, 5, -1, -1] and mask.sum() == 6
    seq, _ = bfs_sequences(a, [4], 8, max_depth=2)
    assert seq[0].tolist() == [4, 3, 2, -1, -1, -1, -1, -1]
    # a random order within a distance keeps distances sorted
    seq, _ = bfs_sequences(a, [0], 6, rng=np.random.default_rng(1))
    assert seq[0, 0] == 0 and set(seq[0, 1:3]) == {1, 5} and seq[0, 3] == 2


def test_ckg_bfs_reaches_users_and_attributes(atomic_dir):
    ds = _tiny(atomic_dir)
    kg = KnowledgeGraph.from_dataset(ds)
    ckg = kg.collaborative(_split(ds, [0, 1, 3]))
    U = ds.n_users
    seq, mask = ckg.bfs_sequences([U + 0], 6)  # item i1
    first = set(seq[0, 1:5].tolist())
    assert seq[0, 0] == U and first == {0, 1, U + 3, U + 4}  # users u1, u2; d1 and g1
    assert mask.all()


def test_neighbour_sample():
    ds = load_dataset("synthetic", {"data_format": "synthetic"})
    kg = KnowledgeGraph.from_dataset(ds)
    ents, rels = kg.neighbour_sample(4, np.random.default_rng(0))
    assert ents.shape == rels.shape == (kg.n_entities, 4)
    inv = kg.triples_with_inverse()
    true = set(map(tuple, inv.tolist()))
    for e in range(0, kg.n_entities, 7):
        for k in range(4):
            assert (e, rels[e, k], ents[e, k]) in true
    # items have 3 triples (< 4): with replacement; category entities have many: no repeats
    hub = int(np.argmax(np.bincount(inv[:, 0])))
    assert len(set(ents[hub].tolist())) == 4
    again, _ = kg.neighbour_sample(4, np.random.default_rng(0))
    assert np.array_equal(ents, again)


def test_unlinked_item_samples_itself(atomic_dir):
    kg = KnowledgeGraph.from_dataset(_tiny(atomic_dir))
    ents, rels = kg.neighbour_sample(3, np.random.default_rng(0))
    assert ents[2].tolist() == [2, 2, 2] and rels[2].tolist() == [4, 4, 4]


def test_build_inputs_kg():
    ds = load_dataset("synthetic", {"data_format": "synthetic"})
    split = split_dataset(ds, "random_ratio")
    inputs = build_inputs(split, frozenset({"kg"}), "cpu", {"kg_merge": "both"})
    assert isinstance(inputs.kg, KnowledgeGraph) and inputs.kg.n_relations == 5


# ---- layers -------------------------------------------------------------------------------
def test_transr_loss_by_hand():
    t = TransR(n_relations=2, entity_dim=2, relation_dim=2)
    with torch.no_grad():
        t.proj[1] = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
        t.relation.weight[1] = torch.tensor([0.5, -1.0])
    h, pos, neg = torch.tensor([[1.0, 1.0]]), torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 0.0]])
    r = torch.tensor([1])
    # W h = (1, 2); W pos = (2, 0); W neg = (0, 0)
    g_pos = (1 + 0.5 - 2) ** 2 + (2 - 1 - 0) ** 2  # 0.25 + 1 = 1.25
    g_neg = (1 + 0.5 - 0) ** 2 + (2 - 1 - 0) ** 2  # 2.25 + 1 = 3.25
    assert t.distance(h, r, pos).item() == pytest.approx(g_pos)
    expected = -np.log(1 / (1 + np.exp(-(g_neg - g_pos))))
    assert t.loss(h, r, pos, neg).item() == pytest.approx(expected, rel=1e-6)
    reg = (1 + 4) + (0.25 + 1) + 4 + 0  # ||W h||^2 + ||e_r||^2 + ||W pos||^2 + ||W neg||^2
    assert t.loss(h, r, pos, neg, reg_weight=0.1).item() == pytest.approx(expected + 0.1 * reg,
                                                                          rel=1e-6)


@pytest.mark.parametrize("cls", [TransR, TransE])
def test_transr_loss_from_differences_equals_three_projections(cls):
    """Without the L2 term the loss projects h - t and h - t' (any row order, sorted or not):
    the same value and gradients as projecting h, t and t' one by one."""
    torch.manual_seed(0)
    t = TransR(5, 8, 4) if cls is TransR else TransE(5, 8)
    h, pos, neg = (torch.randn(40, 8, requires_grad=True) for _ in range(3))
    for r in (torch.randint(0, 5, (40,)), torch.sort(torch.randint(0, 5, (40,)))[0]):
        p = t.project(torch.stack([h, pos, neg], 1), r)
        er = t.relation(r)
        want = -torch.nn.functional.logsigmoid((p[:, 0] + er - p[:, 2]).pow(2).sum(-1)
                                               - (p[:, 0] + er - p[:, 1]).pow(2).sum(-1)).mean()
        got = t.loss(h, r, pos, neg)
        assert torch.allclose(got, want, rtol=1e-5)
        params = [h, pos, neg, *t.parameters()]
        for a, b in zip(torch.autograd.grad(got, params), torch.autograd.grad(want, params)):
            assert torch.allclose(a, b, atol=1e-5), cls


def test_edge_softmax_sums_to_one_per_head():
    index = torch.tensor([0, 0, 0, 2, 2, 3])
    scores = torch.tensor([1.0, 2.0, 3.0, 100.0, 101.0, -5.0])
    p = edge_softmax(scores, index, 5)
    sums = torch.zeros(5).index_add_(0, index, p)
    assert torch.allclose(sums, torch.tensor([1.0, 0, 1.0, 1.0, 0]))
    assert torch.allclose(p[:3], torch.softmax(scores[:3], 0))
    assert torch.allclose(p[3:5], torch.softmax(scores[3:5], 0))  # stable for large scores


def test_knowledge_attention_matches_formula():
    torch.manual_seed(0)
    t = TransR(3, 4, 3)
    emb = torch.randn(5, 4)
    heads = torch.tensor([0, 0, 1, 1, 1, 4])
    rels = torch.tensor([2, 0, 1, 1, 0, 2])
    tails = torch.tensor([1, 2, 0, 3, 4, 0])
    pi = knowledge_attention(t, emb, heads, rels, tails, 5, chunk=2)
    raw = torch.stack([(emb[tl] @ t.proj[r]) @ torch.tanh(emb[h] @ t.proj[r] + t.relation.weight[r])
                       for h, r, tl in zip(heads, rels, tails)])
    expected = torch.cat([torch.softmax(raw[:2], 0), torch.softmax(raw[2:5], 0), torch.ones(1)])
    assert torch.allclose(pi, expected, atol=1e-6)


def test_aggregators_compute_their_formulas():
    torch.manual_seed(0)
    e, n = torch.randn(3, 4), torch.randn(3, 4)
    bi = BiInteraction(4, 2)
    lr = torch.nn.functional.leaky_relu
    assert torch.allclose(bi(e, n), lr(bi.w1(e + n)) + lr(bi.w2(e * n)))
    gcn, sage = AGGREGATORS["gcn"](4, 2), AGGREGATORS["graphsage"](4, 2)
    assert torch.allclose(gcn(e, n), lr(gcn.w(e + n)))
    assert torch.allclose(sage(e, n), lr(sage.w(torch.cat([e, n], 1))))


def test_data_info_reports_kg(capsys):
    import json

    from mmkgrec.cli import main

    assert main(["data", "info", "synthetic"]) == 0
    out = json.loads(capsys.readouterr().out)
    kg = out["kg"]
    assert kg["n_relations"] == 3 and kg["n_triples"] == 3 * out["dataset"]["n_items"]
    assert kg["ckg_edges"] == 2 * kg["n_triples"] + 2 * out["split"]["train"]


def test_layer_plan_matches_full_propagation():
    ds = load_dataset("synthetic", {"data_format": "synthetic"})
    split = split_dataset(ds, "random_ratio")
    ckg = KnowledgeGraph.from_dataset(ds).collaborative(split)
    torch.manual_seed(0)
    w = torch.rand(ckg.n_edges)
    x0 = torch.randn(ckg.n_nodes, 5)
    A, _ = ckg.torch_csr(w)
    targets = np.arange(ds.n_users + 7)
    plan = ckg.layer_plan(targets, 2)
    assert np.array_equal(plan[-1].rows, targets) and len(plan[0].cols) <= ckg.n_nodes
    full, x = x0, x0[torch.from_numpy(plan[0].cols)]
    for layer in plan:
        full = torch.tanh(A @ full + full)
        a, a_t = layer.torch_csr(w)
        assert torch.equal(a_t.to_dense(), a.to_dense().T)
        x = torch.tanh(a @ x + x[torch.from_numpy(layer.self_pos)])
    assert torch.allclose(x, full[torch.from_numpy(targets)], atol=1e-5)
