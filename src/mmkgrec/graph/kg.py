"""Knowledge graphs with dense ids, the collaborative knowledge graph (CKG) and KG neighbourhoods.

Ids
    Entities: items first, entity ``k`` is dense item ``k`` for ``k < n_items`` (the item's linked
    KG entity, ``Dataset.item_entity[k]``, is identified with it; an item without a link is still an
    entity of its own, with no KG triples). Other entities follow in sorted order of their tokens.
    Relations: ``0..R-1`` in sorted order of their tokens; the inverse of ``r`` is ``r + R``.
    CKG nodes: users first (``0..n_users-1``), then entity ``e`` as node ``n_users + e``; the CKG's
    relations are the KG's ``0..2R-1`` plus ``interact = 2R`` (user -> item) and its inverse
    ``2R + 1`` (item -> user), from the *training* interactions only.

Sources (config ``kg_merge``)
    ``external``: the dataset's own KG (RecBole ``.kg`` + ``.link``, KGAT / KGCN ``kg_final``);
    ``domain``: a KG built from the item table's columns listed in ``kg_domain_columns`` (one relation
    per column, e.g. ML-100K ``class`` genres and ``release_year``; tail entities are named
    ``column=value``); ``both``: their union; ``auto`` (default): external when the dataset has one,
    else domain.

Targets (task ``classification``)
    The target column never becomes a domain relation, and the external relations listed in
    ``target_leak_relations`` (ML-100K: ``film.film.genre`` and its inverse) are removed before
    ids are given, counted in ``stats["target_leak_triples"]``
    (:func:`mmkgrec.config.withheld_item_columns`, :func:`~mmkgrec.config.withheld_relations`).

Bad input (config ``kg_bad_triples``: ``drop`` or ``reject``)
    Triples with a missing head, relation or tail token (unknown entity / relation), ``.link`` rows
    for items that are not in the dataset, items linked to an entity another item already claimed,
    self-loops (head == tail after linking) and duplicate ``(h, r, t)`` triples are counted and
    reported in one log line; ``drop`` removes them (the items keep their own entity), ``reject``
    raises :class:`~mmkgrec.errors.MMKGRecError` naming each problem with an example.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from ..config import config_value, withheld_item_columns, withheld_relations
from ..data.dataset import as_tokens, unique_tokens
from ..errors import MMKGRecError

log = logging.getLogger(__name__)

MERGE_MODES = ("auto", "external", "domain", "both")
BAD_TRIPLE_MODES = ("drop", "reject")


def _missing(tokens: np.ndarray) -> np.ndarray:
    """True where a raw token is absent: ``None``, NaN or an empty / blank string."""
    tokens = np.asarray(tokens, dtype=object)
    none = np.equal(tokens, None)
    nan = np.fromiter((isinstance(t, float) and t != t for t in tokens), bool, len(tokens))
    blank = np.fromiter((t is not None and not str(t).strip() for t in tokens), bool,
                        len(tokens))
    return none | nan | blank


def _csr_order(rows: np.ndarray, cols: np.ndarray, n_rows: int):
    """(order sorting edges by (row, col), CSR indptr over ``n_rows``)."""
    order = np.lexsort((cols, rows))
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    return order, indptr


def bfs_sequences(adj: sp.csr_matrix, nodes, n: int, rng: np.random.Generator | None = None,
                  max_depth: int | None = None, chunk: int = 512, pad: int = -1):
    """Breadth-first neighbourhoods of fixed length ``n``, nearest first.

    Row ``k`` starts with ``nodes[k]`` itself, then its distance-1 neighbours, then distance 2,
    and so on until ``n`` nodes are collected (nodes with few neighbours take in higher-order
    nodes), the graph is exhausted or ``max_depth`` is reached. Within one distance, nodes come in
    increasing id order, or in a random order drawn from ``rng`` when given. All sources of a chunk
    expand together (one sparse product per level, no per-node loop).

    Returns ``(seq [len(nodes), n] int64, mask [len(nodes), n] bool)``; padding is ``pad`` where
    ``mask`` is False."""
    adj = sp.csr_matrix(adj, dtype=np.float32)
    adj.data[:] = 1.0
    nodes = np.asarray(nodes, dtype=np.int64)
    n_nodes = adj.shape[0]
    seq = np.full((len(nodes), n), pad, dtype=np.int64)
    count = np.zeros(len(nodes), dtype=np.int64)
    for s in range(0, len(nodes), chunk):
        src = nodes[s:s + chunk]
        rows = np.arange(len(src))
        seq[s + rows, 0] = src
        count[s + rows] = 1
        visited = sp.csr_matrix((np.ones(len(src), np.float32), (rows, src)),
                                shape=(len(src), n_nodes))
        frontier = visited.copy()
        depth = 0
        while frontier.nnz and (max_depth is None or depth < max_depth):
            depth += 1
            full = count[s + rows] >= n  # rows already full expand no further
            if full.all():
                break
            if full.any():
                frontier = (sp.diags((~full).astype(np.float32)) @ frontier).tocsr()
                frontier.eliminate_zeros()
            nxt = (frontier @ adj).tocsr()
            nxt.data[:] = 1.0
            nxt = (nxt - nxt.multiply(visited)).tocsr()
            nxt.eliminate_zeros()
            if nxt.nnz == 0:
                break
            coo = nxt.tocoo()
            r, c = coo.row.astype(np.int64), coo.col.astype(np.int64)
            key = c if rng is None else rng.random(len(c))
            order = np.lexsort((key, r))
            r, c = r[order], c[order]
            first = np.searchsorted(r, r, side="left")
            pos = count[s + r] + (np.arange(len(r)) - first)
            keep = pos < n
            seq[s + r[keep], pos[keep]] = c[keep]
            count[s + rows] = np.minimum(n, count[s + rows] + np.bincount(r, minlength=len(src)))
            visited = (visited + nxt).tocsr()
            frontier = nxt
    mask = seq != pad
    return seq, mask


@dataclass
class CollaborativeKG:
    """The collaborative knowledge graph: users and entities as one node set, edges
    ``(head, relation, tail)`` sorted by (head, tail). See the module docstring for ids."""

    n_users: int
    n_entities: int
    n_relations: int  # 2R + 2, inverse and interaction relations included
    interact: int
    heads: np.ndarray
    relations: np.ndarray
    tails: np.ndarray
    indptr: np.ndarray  # CSR row pointers over heads (edges are sorted by head)
    t_order: np.ndarray  # edge order sorting by (tail, head): the transpose's CSR data order
    t_indptr: np.ndarray

    @property
    def n_nodes(self) -> int:
        return self.n_users + self.n_entities

    @property
    def n_edges(self) -> int:
        return len(self.heads)

    def adjacency(self, values: np.ndarray | None = None) -> sp.csr_matrix:
        """``[n_nodes, n_nodes]`` CSR with one stored entry per edge (parallel edges of different
        relations are kept, so a product sums them)."""
        v = np.ones(self.n_edges, np.float32) if values is None else np.asarray(values, np.float32)
        return sp.csr_matrix((v, self.tails, self.indptr), shape=(self.n_nodes, self.n_nodes))

    def torch_csr(self, values, device="cpu"):
        """``(A, A^T)`` as torch sparse CSR tensors with edge weights ``values`` (a tensor in edge
        order), for :func:`mmkgrec.graph.adjacency.spmm`. Indices are shared, only values move."""
        import torch

        cache = self.__dict__.setdefault("_torch_idx", {})
        key = str(device)
        if key not in cache:
            cache[key] = tuple(torch.from_numpy(a).to(device) for a in (
                self.indptr, self.tails, self.t_indptr, self.heads[self.t_order], self.t_order))
        indptr, cols, t_indptr, t_cols, t_order = cache[key]
        n = self.n_nodes
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            a = torch.sparse_csr_tensor(indptr, cols, values, size=(n, n), check_invariants=False)
            a_t = torch.sparse_csr_tensor(t_indptr, t_cols, values[t_order], size=(n, n),
                                          check_invariants=False)
        return a, a_t

    def bfs_sequences(self, nodes, n: int, rng=None, max_depth=None):
        """:func:`bfs_sequences` over the CKG (node ids as here: users first)."""
        return bfs_sequences(self.adjacency(), nodes, n, rng, max_depth)

    def layer_plan(self, targets, n_layers: int) -> list["PropagationLayer"]:
        """The rows each of ``n_layers`` propagation layers must compute so that the last layer's
        output is exact at ``targets``: ``S_L = targets``, ``S_{l-1} = S_l + N(S_l)`` (sorted node
        ids). Layer ``l`` multiplies the sub-matrix ``A[S_l, S_{l-1}]``; nodes outside ``S_l``
        are never computed. With KGAT's single layer this skips every entity row of the
        propagation (a ~10x smaller dense workload on ML-100K), with identical results."""
        a = sp.csr_matrix((np.arange(1, self.n_edges + 1, dtype=np.int64), self.tails, self.indptr),
                          shape=(self.n_nodes, self.n_nodes))
        sets = [np.unique(np.asarray(targets, dtype=np.int64))]
        for _ in range(n_layers):
            rows = sets[0]
            sub = a[rows]
            sets.insert(0, np.union1d(rows, sub.indices))
        plan = []
        for l in range(1, n_layers + 1):
            rows, cols = sets[l], sets[l - 1]
            sub = a[rows]
            # edge ids in the sub-matrix's CSR order (explicit, so id 0 survives slicing)
            indptr = sub.indptr.astype(np.int64)
            edge = sub.data.astype(np.int64) - 1
            ccols = np.searchsorted(cols, sub.indices).astype(np.int64)
            r = np.repeat(np.arange(len(rows)), np.diff(indptr))
            t_order = np.lexsort((r, ccols))
            t_indptr = np.zeros(len(cols) + 1, dtype=np.int64)
            np.cumsum(np.bincount(ccols, minlength=len(cols)), out=t_indptr[1:])
            plan.append(PropagationLayer(rows, cols, np.searchsorted(cols, rows).astype(np.int64),
                                         indptr, ccols, edge, t_indptr, r[t_order], t_order))
        return plan


@dataclass
class PropagationLayer:
    """One layer of a :meth:`CollaborativeKG.layer_plan`: output rows ``rows`` (node ids), input
    rows ``cols`` (node ids), ``self_pos`` (positions of ``rows`` within ``cols``), and the CSR
    structure of ``A[rows, cols]`` whose entry ``k`` is CKG edge ``edge[k]``, with its transpose
    (``t_indptr``, ``t_cols``, ``t_order``: the transpose's entries in the original's order)."""

    rows: np.ndarray
    cols: np.ndarray
    self_pos: np.ndarray
    indptr: np.ndarray
    ccols: np.ndarray
    edge: np.ndarray
    t_indptr: np.ndarray
    t_cols: np.ndarray
    t_order: np.ndarray

    def torch_csr(self, edge_values):
        """``(A_sub, A_sub^T)`` as torch sparse CSR tensors; ``edge_values`` holds a value per
        CKG edge (the attention), in the CKG's edge order."""
        import torch

        dev = edge_values.device
        cache = self.__dict__.setdefault("_torch", {})
        if str(dev) not in cache:
            cache[str(dev)] = tuple(torch.from_numpy(x).to(dev) for x in (
                self.indptr, self.ccols, self.edge, self.t_indptr, self.t_cols, self.t_order))
        indptr, ccols, edge, t_indptr, t_cols, t_order = cache[str(dev)]
        v = edge_values[edge]
        shape = (len(self.rows), len(self.cols))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            a = torch.sparse_csr_tensor(indptr, ccols, v, size=shape, check_invariants=False)
            a_t = torch.sparse_csr_tensor(t_indptr, t_cols, v[t_order], size=shape[::-1],
                                          check_invariants=False)
        return a, a_t


@dataclass
class KnowledgeGraph:
    """A KG over dense entity and relation ids (see the module docstring).

    ``triples``: ``[m, 3]`` int64 ``(head, relation, tail)`` without inverses, de-duplicated,
    no self-loops. ``entity_tokens[e]``: the raw token of entity ``e`` (for an item without a link,
    ``"item:<raw id>"``); ``relation_tokens[r]`` likewise."""

    n_items: int
    entity_tokens: np.ndarray
    relation_tokens: np.ndarray
    triples: np.ndarray
    stats: dict = field(default_factory=dict)

    @property
    def n_entities(self) -> int:
        return len(self.entity_tokens)

    @property
    def n_relations(self) -> int:
        """``R``: relations without inverses; ids ``R..2R-1`` are their inverses."""
        return len(self.relation_tokens)

    def triples_with_inverse(self) -> np.ndarray:
        """``[2m, 3]``: every triple and its inverse ``(t, r + R, h)``."""
        t = self.triples
        inv = np.stack([t[:, 2], t[:, 1] + self.n_relations, t[:, 0]], 1)
        return np.concatenate([t, inv])

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_split(cls, split, config=None) -> "KnowledgeGraph":
        return cls.from_dataset(split.dataset, config)

    @classmethod
    def from_dataset(cls, ds, config=None) -> "KnowledgeGraph":
        """Build the KG of ``ds`` with the config keys ``kg_merge``, ``kg_domain_columns`` and
        ``kg_bad_triples`` (their defaults are the schema's, :mod:`mmkgrec.config_schema`)."""
        merge = config_value(config, "kg_merge")
        mode = config_value(config, "kg_bad_triples")
        withheld = withheld_item_columns(config)
        columns = [c for c in config_value(config, "kg_domain_columns") or [] if c not in withheld]
        leak_relations = withheld_relations(config)
        n_leak = 0
        if merge not in MERGE_MODES:
            raise MMKGRecError(f"config key 'kg_merge': expected one of {MERGE_MODES}, got {merge!r}")
        if mode not in BAD_TRIPLE_MODES:
            raise MMKGRecError(f"config key 'kg_bad_triples': expected one of {BAD_TRIPLE_MODES}, "
                               f"got {mode!r}")
        has_external = ds.kg is not None
        if merge == "auto":
            merge = "external" if has_external else "domain"
        if merge in ("external", "both") and not has_external:
            raise MMKGRecError(f"dataset '{ds.name}' has no external KG (.kg + .link, or kg_final) "
                               f"but kg_merge is '{merge}'; use kg_merge: domain")
        n_items = ds.n_items
        item_tok = np.asarray([f"item:{r}" for r in ds.item_ids], dtype=object)
        parts, bad, examples = [], {}, {}

        def note(kind, count, example):
            bad[kind] = bad.get(kind, 0) + int(count)
            if count and kind not in examples:
                examples[kind] = example

        link = item_tok.copy()
        if merge in ("external", "both"):
            raw = np.asarray(ds.kg, dtype=object).reshape(-1, 3)
            miss = _missing(raw[:, 0]) | _missing(raw[:, 1]) | _missing(raw[:, 2])
            note("triples naming an unknown (missing) entity or relation", miss.sum(),
                 f"row {int(np.flatnonzero(miss)[0]) + 1 if miss.any() else 0}: "
                 f"{tuple(raw[miss][0]) if miss.any() else ''}")
            raw = raw[~miss]
            if leak_relations:  # the target's relations leave before anything is built
                leak = np.fromiter((str(t) in leak_relations for t in raw[:, 1]), bool,
                                   len(raw))
                n_leak, raw = int(leak.sum()), raw[~leak]
            parts.append(np.stack([as_tokens(raw[:, j]) for j in range(3)], 1)
                         if len(raw) else raw.astype(object))
            n_unknown_link = int(ds.stats.get("link_rows_unknown_item", 0))
            note(".link rows for items not in the dataset", n_unknown_link,
                 "see the warning logged when the .link file was read")
            if ds.item_entity is not None:
                ent = np.asarray(ds.item_entity, dtype=object)
                linked = ~_missing(ent)
                ent_s = np.where(linked, as_tokens(ent), None)
                # an entity claimed by two items stays with the first; the second keeps its own
                seen: dict = {}
                dup = np.zeros(n_items, dtype=bool)
                for k in np.flatnonzero(linked):
                    if ent_s[k] in seen:
                        dup[k] = True
                    else:
                        seen[ent_s[k]] = k
                note("items linked to an entity another item already claims", dup.sum(),
                     f"item '{ds.item_ids[np.flatnonzero(dup)[0]]}' -> "
                     f"{ent_s[np.flatnonzero(dup)[0]]}" if dup.any() else "")
                ok = linked & ~dup
                link[ok] = ent_s[ok].astype(object)
                kg_entities = set(as_tokens(raw[:, 0])) | set(as_tokens(raw[:, 2]))
                in_kg = np.fromiter((str(t) in kg_entities for t in link[ok]), bool,
                                    int(ok.sum()))
                bad_info = {"items_linked": int(ok.sum()),
                            "linked_entities_not_in_kg": int((~in_kg).sum())}
            else:
                bad_info = {"items_linked": 0, "linked_entities_not_in_kg": 0}
        else:
            bad_info = {"items_linked": 0}
        used_cols = []
        if merge in ("domain", "both"):
            for col in columns:
                if col not in ds.item_features:
                    continue
                used_cols.append(col)
                parts.append(_domain_triples(link, ds.item_features[col], col))
            if not used_cols:
                raise MMKGRecError(f"dataset '{ds.name}': none of kg_domain_columns {list(columns)} "
                                   f"is an item column (has {sorted(ds.item_features)}); the "
                                   "domain KG would be empty")
        raw = np.concatenate(parts) if parts else np.empty((0, 3), dtype=object)

        entity_tokens, rel_tok, triples = _dense_ids(link, raw)
        m = len(raw)
        loops = triples[:, 0] == triples[:, 2]
        note("self-loops", loops.sum(),
             f"{tuple(raw[loops][0])}" if loops.any() else "")
        key = (triples[:, 0] * max(1, len(rel_tok)) + triples[:, 1]) * len(entity_tokens) + triples[:, 2]
        _, first = np.unique(key, return_index=True)
        dup = np.ones(m, dtype=bool)
        dup[first] = False
        note("duplicate triples", (dup & ~loops).sum(),
             f"{tuple(raw[dup & ~loops][0])}" if (dup & ~loops).any() else "")
        keep = ~loops & ~dup
        problems = {k: v for k, v in bad.items() if v}
        if problems and mode == "reject":
            detail = "; ".join(f"{v} {k} (e.g. {examples.get(k, '')})" for k, v in problems.items())
            raise MMKGRecError(f"knowledge graph of dataset '{ds.name}': {detail}. Fix the data or "
                               "set kg_bad_triples: drop")
        if not keep.all():  # ids again, so no relation or entity survives only in dropped rows
            entity_tokens, rel_tok, triples = _dense_ids(link, raw[keep])
        stats = {"kg_source": merge, "kg_domain_columns": used_cols,
                 **({"target_leak_triples": n_leak} if leak_relations else {}),
                 "n_entities": len(entity_tokens), "n_relations": len(rel_tok),
                 "n_triples": len(triples), **bad_info,
                 "bad_input": {k: v for k, v in bad.items()}, "bad_input_action": mode}
        msg = ", ".join(f"{v} {k}" for k, v in problems.items()) or "no bad input"
        (log.warning if problems else log.info)(
            "KG of %s (%s): %d entities, %d relations, %d triples; %s%s", ds.name, merge,
            stats["n_entities"], stats["n_relations"], stats["n_triples"], msg,
            " (dropped)" if problems else "")
        return cls(n_items, entity_tokens, rel_tok, triples, stats)

    # ---- graphs over the ids ------------------------------------------------------------
    def describe(self) -> dict:
        deg = np.bincount(self.triples[:, [0, 2]].ravel(), minlength=self.n_entities)
        return {**self.stats, "items_with_triples": int((deg[:self.n_items] > 0).sum()),
                "mean_degree": float(deg.mean()) if len(deg) else 0.0}

    def adjacency(self, inverse: bool = True) -> sp.csr_matrix:
        """Binary ``[n_entities, n_entities]`` adjacency, symmetric when ``inverse``."""
        t = self.triples_with_inverse() if inverse else self.triples
        a = sp.csr_matrix((np.ones(len(t), np.float32), (t[:, 0], t[:, 2])),
                          shape=(self.n_entities, self.n_entities))
        a.sum_duplicates()
        a.data[:] = 1.0
        return a

    def collaborative(self, split) -> CollaborativeKG:
        """The CKG: KG triples with inverses, plus ``interact`` (user -> item) and its inverse from
        the split's *training* interactions (duplicates collapsed)."""
        n_users, R2 = split.n_users, 2 * self.n_relations
        t = self.triples_with_inverse()
        keys = np.unique(split.train.user * self.n_items + split.train.item)
        u, i = keys // self.n_items, keys % self.n_items
        heads = np.concatenate([t[:, 0] + n_users, u, i + n_users])
        tails = np.concatenate([t[:, 2] + n_users, i + n_users, u])
        rels = np.concatenate([t[:, 1], np.full(len(u), R2), np.full(len(u), R2 + 1)])
        n = n_users + self.n_entities
        order, indptr = _csr_order(heads, tails, n)
        heads, rels, tails = heads[order], rels[order], tails[order]
        t_order, t_indptr = _csr_order(tails, heads, n)
        return CollaborativeKG(n_users, self.n_entities, R2 + 2, R2, heads, rels, tails, indptr,
                               t_order, t_indptr)

    def neighbour_sample(self, n_neighbours: int, rng: np.random.Generator):
        """KGCN's fixed-size receptive field (Wang et al., WWW 2019, Sec. 3.2): for every entity,
        ``n_neighbours`` neighbours over the undirected KG (each triple in both directions, the
        reverse with the inverse relation ``r + R``), drawn without replacement when the entity
        has at least that many, else with replacement. An entity with no triple (an unlinked
        item) gets itself with relation ``2R`` (a "self" relation) in every slot.

        Returns ``(entities [n_entities, K], relations [n_entities, K])`` int64."""
        K = int(n_neighbours)
        t = self.triples_with_inverse()
        order = np.lexsort((rng.random(len(t)), t[:, 0]))  # random order within each head
        t = t[order]
        deg = np.bincount(t[:, 0], minlength=self.n_entities)
        start = np.concatenate([[0], np.cumsum(deg)[:-1]])
        slot = np.broadcast_to(np.arange(K), (self.n_entities, K))
        with_repl = np.floor(rng.random((self.n_entities, K)) * np.maximum(deg, 1)[:, None])
        off = np.where((deg >= K)[:, None], slot, with_repl).astype(np.int64)
        idx = np.minimum(start[:, None] + off, max(len(t) - 1, 0))
        ents = np.empty((self.n_entities, K), np.int64)
        rels = np.empty((self.n_entities, K), np.int64)
        has = deg > 0
        if len(t):
            ents[has] = t[idx[has], 2]
            rels[has] = t[idx[has], 1]
        ents[~has] = np.arange(self.n_entities)[~has, None]
        rels[~has] = 2 * self.n_relations
        return ents, rels

    def bfs_sequences(self, nodes, n: int, rng=None, max_depth=None):
        """:func:`bfs_sequences` over the undirected KG (entity ids)."""
        return bfs_sequences(self.adjacency(True), nodes, n, rng, max_depth)


def _dense_ids(link: np.ndarray, raw: np.ndarray):
    """(entity tokens, relation tokens, int64 triples): entity ``k < n_items`` is the item whose
    (linked) token is ``link[k]``; other entities follow in sorted token order; relations sorted."""
    n_items, m = len(link), len(raw)
    tokens, inv = unique_tokens(np.concatenate([as_tokens(link), as_tokens(raw[:, 0]),
                                                as_tokens(raw[:, 2])]))
    ent_id = np.full(len(tokens), -1, dtype=np.int64)
    ent_id[inv[:n_items]] = np.arange(n_items)
    others = np.flatnonzero(ent_id < 0)
    ent_id[others] = n_items + np.arange(len(others))
    entity_tokens = np.empty(n_items + len(others), dtype=object)
    entity_tokens[ent_id] = tokens
    heads = ent_id[inv[n_items:n_items + m]]
    tails = ent_id[inv[n_items + m:]]
    rel_tok, rels = unique_tokens(raw[:, 1])
    triples = np.stack([heads, rels.reshape(-1).astype(np.int64), tails], 1)
    return entity_tokens, rel_tok.astype(object), triples.astype(np.int64)


def _domain_triples(item_tokens: np.ndarray, column, name: str) -> np.ndarray:
    """``(item entity, name, "name=value")`` for every value of an item column (token,
    token_seq or float; missing values skipped)."""
    heads, tails = [], []
    for tok, v in zip(item_tokens, column):
        if v is None or (isinstance(v, float) and v != v):
            continue
        vals = v if isinstance(v, (list, tuple, np.ndarray)) else [v]
        for x in vals:
            if x is None or str(x).strip() == "":
                continue
            heads.append(tok)
            tails.append(f"{name}={x}")
    out = np.empty((len(heads), 3), dtype=object)
    out[:, 0], out[:, 1], out[:, 2] = heads, name, tails
    return out


def kg_summary(ds, split=None, config=None) -> dict | None:
    """KG statistics for ``mmkgrec data info``: the KG built with ``config``'s ``kg_*`` keys (or
    their defaults), plus the CKG's size on ``split``'s training part; ``None`` when the dataset
    has neither an external KG nor any of the domain columns."""
    try:
        kg = KnowledgeGraph.from_dataset(ds, config)
    except MMKGRecError as e:
        if ds.kg is None:
            return None
        raise e
    out = kg.describe()
    if split is not None:
        ckg = kg.collaborative(split)
        out.update(ckg_nodes=ckg.n_nodes, ckg_relations=ckg.n_relations, ckg_edges=ckg.n_edges)
    return out
