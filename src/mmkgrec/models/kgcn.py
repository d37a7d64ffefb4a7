"""KGCN: Knowledge Graph Convolutional Networks (Wang et al., WWW 2019, "Knowledge Graph
Convolutional Networks for Recommender Systems")."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..nn.kg import KGCNAggregator
from ..nn.losses import bpr_loss, l2_per_batch
from .base import ModelInputs, Recommender, register

_CHUNK_ELEMENTS = 1 << 24  # elements of the largest intermediate tensor in score_all
_TWO_LOG2E = 2.0 / math.log(2.0)
_ONE_HOP_USERS, _ONE_HOP_CELLS = 256, 1 << 18  # a one-hop block: users, users x items x d


@register
class KGCN(Recommender):
    """KGCN with a fixed-size sampled receptive field.

    * Receptive field (Sec. 3.2): each entity gets ``neighbor_sample_size`` (K) neighbours over the
      undirected KG, sampled once with a seed (:meth:`KnowledgeGraph.neighbour_sample`); ``n_iter``
      (H) hops.
    * User-relation scores (Sec. 3.2): ``pi^u_r = u^T r``, normalised by a softmax over the K
      sampled neighbours of each entity; ``v^u_N = sum_e pi~^u_{r(v,e)} e``.
    * Aggregators (Sec. 3.2), ``aggregator``: ``sum``, ``concat`` or ``neighbor``
      (:class:`~mmkgrec.nn.kg.KGCNAggregator`), one weight matrix per iteration, ReLU inside and
      tanh in the last iteration.
    * Score ``f(u, v) = u^T v^u`` (Sec. 3.3, before the sigmoid); trained pairwise with BPR and
      ``reg_weight`` times the L2 of the batch's user embeddings and user-specific item vectors,
      as RecBole 1.2.1 trains it (the paper uses a log loss on labels with sampled negatives).

    **Resolutions.** The reverse of each triple uses the inverse relation (its own embedding), so
    the KG is undirected; the entity table keeps only entities within H sampled hops of an item
    (the others can never reach a score); an entity without neighbours (an unlinked item) aggregates itself through
    a dedicated "self" relation. ``score_all`` computes once per pass what does not depend on the
    user, including the whole vector of an item whose receptive field has one relation per entity
    (the softmax over equal scores is uniform), and the rest in blocks of users and items (memory
    bounded by ``2^24`` elements per intermediate tensor); the same scores as ``score``. For the
    evaluator's top-k (``score_all_for_top``, H = 1) the user-dependent scores are first bounded
    through tanh's secant over each item's receptive field, and only those that can reach a
    user's top k are computed exactly.

    SPEC.md "Multi-KG4Rec": a Table 2 baseline; no SPEC.md resolution beyond the shared ones."""

    name = "KGCN"
    requires = frozenset({"kg"})

    def __init__(self, config, inputs: ModelInputs):
        super().__init__(config, inputs)
        kg = inputs.kg
        d = int(config["embedding_size"])
        self.K, self.H = int(config["neighbor_sample_size"]), int(config["n_iter"])
        ents, rels = kg.neighbour_sample(self.K, np.random.default_rng(int(config["seed"])))
        # Only entities within H sampled hops of an item can influence a score: the entity table
        # holds those alone (items first, ids unchanged for items), initialised with the std that
        # Xavier-normal gives the full table, so results match a full table's at less cost.
        keep = np.arange(self.n_items)
        frontier = keep
        for _ in range(self.H):
            frontier = np.unique(ents[frontier])
            keep = np.union1d(keep, frontier)
        remap = np.zeros(kg.n_entities, dtype=np.int64)
        remap[keep] = np.arange(len(keep))
        self.n_entities_full = kg.n_entities
        self.user_emb = nn.Embedding(self.n_users, d)
        self.entity_emb = nn.Embedding(len(keep), d)
        self.relation_emb = nn.Embedding(2 * kg.n_relations + 1, d)  # + the "self" relation
        nn.init.xavier_normal_(self.user_emb.weight)
        nn.init.xavier_normal_(self.relation_emb.weight)
        nn.init.normal_(self.entity_emb.weight, std=(2.0 / (kg.n_entities + d)) ** 0.5)
        self.aggregators = nn.ModuleList(KGCNAggregator(config["aggregator"], d)
                                         for _ in range(self.H))
        self.reg_weight = float(config["reg_weight"])
        # rows of entities at the last hop are never expanded; their (remapped) ids are unused
        self.register_buffer("adj_entity", torch.from_numpy(remap[ents[keep]]))
        self.register_buffer("adj_relation", torch.from_numpy(rels[keep]))

    def _receptive_field(self, items: torch.Tensor):
        """Entities ``[*, K^h]`` for h = 0..H and the relations ``[*, K^(h+1)]`` leading to them."""
        ents, rels = [items.unsqueeze(-1)], []
        for _ in range(self.H):
            e = ents[-1]
            rels.append(self.adj_relation[e].flatten(-2))
            ents.append(self.adj_entity[e].flatten(-2))
        return ents, rels

    def _entity_vectors(self, ents: list) -> list:
        """Embeddings of every hop's entities in one lookup (one dense gradient per step)."""
        flat = self.entity_emb(torch.cat([e.reshape(-1) for e in ents]))
        sizes = [e.numel() for e in ents]
        return [v.view(*e.shape, flat.shape[-1]) for v, e in zip(flat.split(sizes), ents)]

    def _aggregate(self, vecs: list, att: list, first: int = 0) -> torch.Tensor:
        """Iterations ``first..H-1`` of the aggregation: ``vecs[h] [..., K^h, d]`` (the output of
        iteration ``first - 1``), ``att[h] [..., K^(h+1)]`` (leading dimensions broadcast);
        returns the items' vectors ``[..., d]``."""
        K = self.K
        for i in range(first, self.H):
            new = []
            for hop in range(self.H - i):
                neigh = vecs[hop + 1].unflatten(-2, (-1, K))  # [..., K^hop, K, d]
                a = att[hop].unflatten(-1, (-1, K)).softmax(-1)  # [..., K^hop, K]
                new.append(self.aggregators[i](vecs[hop], (a.unsqueeze(-1) * neigh).sum(-2),
                                               i == self.H - 1))
            vecs = new
        return vecs[0].squeeze(-2)

    def score(self, users, items):
        u = self.user_emb(users)
        ents, rels = self._receptive_field(items)
        ur = u @ self.relation_emb.weight.T  # pi^u_r for every relation
        att = [torch.gather(ur, 1, r) for r in rels]
        v = self._aggregate(self._entity_vectors(ents), att)
        return (u * v).sum(-1)

    # ---- full ranking ------------------------------------------------------------------
    _shared = None
    exact_pairs = None  # score_all_for_top this pass: (user, item) pairs exact, bounded

    def train(self, mode: bool = True):
        self._shared = None  # the weights change: the shared parts are stale
        return super().train(mode)

    def prepare_eval(self):
        """The user-independent parts of full ranking, once per evaluation pass."""
        self._shared = None
        self._shared = self._shared_parts()
        self.exact_pairs = [0, 0]

    def _shared_parts(self) -> dict:
        """What every user's scores share, for every item at once.

        * ``fixed`` (item ids) and ``fixed_vecs`` ``[n_fixed, d]``: the items whose receptive
          field has, at every expanded entity, K sampled relations that are all the same (an
          unlinked item's "self" relation included). The softmax over K equal scores is uniform
          whatever ``u``, so their vectors ``v^u`` do not depend on the user: computed once
          (attention scores 0), scored by one matrix product ``u @ fixed_vecs^T``.
        * ``items`` (the others), ``rels`` (the relations of their receptive field, ``[m,
          K^(h+1)]`` per hop) and ``parts``: the first aggregation's user-independent halves
          (:meth:`~mmkgrec.nn.kg.KGCNAggregator.project_shared`: ``W_v v + b`` ``[m, K^h, d]``
          and ``W_n`` of the neighbours ``[m, K^h, K, d]``); with H = 1 laid out for
          :meth:`_one_hop_scores` (``[m, d, 1]`` and ``[m, d, K]``, times ``2 log2(e)``)."""
        items = torch.arange(self.n_items, device=self.user_emb.weight.device)
        ents, rels = self._receptive_field(items)
        fixed = torch.ones(self.n_items, dtype=torch.bool, device=items.device)
        for r in rels:
            r = r.unflatten(-1, (-1, self.K))
            fixed &= (r == r[..., :1]).all(-1).all(-1)
        sub = [e[fixed] for e in ents]
        fixed_vecs = self._aggregate(self._entity_vectors(sub), [
            torch.zeros(e.shape, device=items.device) for e in sub[1:]])
        ents, rels = [e[~fixed] for e in ents], [r[~fixed] for r in rels]
        vecs = self._entity_vectors(ents)  # [m, K^h, d]
        agg = self.aggregators[0]
        parts = [agg.project_shared(vecs[h], vecs[h + 1].unflatten(-2, (-1, self.K)))
                 for h in range(self.H)]
        bounds = None
        if self.H == 1:  # 2 log2(e) x: tanh(x) = 1 - 2 / (1 + 2^(2 log2(e) x))
            own, neigh_w = parts[0]
            bounds = _one_hop_bounds(own[:, 0], neigh_w[:, 0], rels[0],
                                     self.relation_emb.weight.shape[0])
            column = torch.empty(self.n_items, dtype=torch.long, device=items.device)
            column[torch.cat([(~fixed).nonzero().squeeze(1), fixed.nonzero().squeeze(1)])] = \
                torch.arange(self.n_items, device=items.device)
            bounds["column"] = column  # item -> its column in the order [dynamic, fixed]
            parts = [(own.transpose(1, 2) * _TWO_LOG2E).contiguous(),
                     (neigh_w.squeeze(1).transpose(1, 2) * _TWO_LOG2E).contiguous()]
        return {"fixed": fixed.nonzero().squeeze(1), "fixed_vecs": fixed_vecs,
                "items": (~fixed).nonzero().squeeze(1), "rels": rels, "parts": parts,
                "bounds": bounds}

    def score_all(self, users):
        """Scores ``[len(users), n_items]``. From the shared parts (:meth:`prepare_eval`): the
        items with user-independent vectors by one matrix product; the others in blocks of
        users and items, where only the user-specific attention, the weighted sums and the later
        iterations are computed (every intermediate under ``2^24`` elements). With one iteration
        (H = 1, the default) a block is computed item-major, as batched matrix products over the
        items (:meth:`_one_hop_scores`)."""
        sh = self._shared if self._shared is not None else self._shared_parts()
        out = torch.empty(len(users), self.n_items, device=users.device)
        u_all = self.user_emb(users)
        if len(sh["fixed"]):
            out[:, sh["fixed"]] = u_all @ sh["fixed_vecs"].T
        rels, parts, items = sh["rels"], sh["parts"], sh["items"]
        K, H, n = self.K, self.H, len(items)
        if not n:
            return out
        d = u_all.shape[1]
        if H == 1:  # blocks of ~2^18 elements stay in cache (measured fastest on a CPU)
            b = max(1, min(len(users), _ONE_HOP_USERS))
            m = min(n, max(1, _ONE_HOP_CELLS // (b * d)))
        else:
            cells = K ** (H - 1) * (d + K)  # the largest intermediate per (user, item)
            m = min(n, max(1, _CHUNK_ELEMENTS // cells))
            b = max(1, min(len(users), _CHUNK_ELEMENTS // (m * cells)))  # users per block
        every = n == self.n_items  # no fixed item: the columns in order
        buf = torch.empty(n, b, device=users.device) if H == 1 else None  # one user block
        for s in range(0, len(users), b):
            u = u_all[s:s + b]
            ur = u @ self.relation_emb.weight.T  # pi^u_r for every relation
            if H == 1:
                scores = buf[:, :len(u)]
                self._one_hop_scores(u, ur, rels[0], *parts, m, scores)
                if every:
                    out[s:s + b] = scores.T
                else:
                    out[s:s + b, items] = scores.T
                continue
            for i0 in range(0, n, m):
                blk = slice(i0, min(i0 + m, n))
                att = [ur[:, r[blk]] for r in rels]  # [b, m, K^(h+1)]
                vecs = [self.aggregators[0].combine_shared(
                    own[blk], neigh_w[blk], att[h].unflatten(-1, (-1, K)).softmax(-1), False)
                    for h, (own, neigh_w) in enumerate(parts)]  # iteration 0: [b, m, K^h, d]
                v = self._aggregate(vecs, att, first=1)  # [b, m, d]
                out[s:s + b, items[blk]] = torch.einsum("bmd,bd->bm", v, u)
        return out

    def score_all_for_top(self, users, k: int, exclude):
        """:meth:`score_all` for a top-``k`` ranking (the evaluator's hook): with one iteration
        (H = 1), each user's scores of the items whose vectors depend on the user are first
        bounded, then computed exactly only where the upper bound reaches the user's ``k``-th best
        lower bound (other entries hold their upper bound, below that). The ``exclude``d entries
        (the masked history) take no part in the ``k``-th best.

        The bound (:func:`_one_hop_bounds`): over the item's receptive field every ``x_d`` lies in
        ``[lo_d, hi_d]`` (a convex combination of the K neighbours), where ``tanh`` is within
        ``err_d = M (hi_d - lo_d)^2 / 8`` of its secant (``M`` bounds ``|tanh''|``). So ``u .
        tanh(x)`` is ``u . (c + sum_g a_g B_g) +- |u| . err`` with the user's own attention
        ``a`` (``g``: the item's neighbours grouped by relation, which share their attention):
        a few matrix products over the items instead of a ``tanh`` per user, item and
        dimension, plus a margin for rounding. Exact wherever it matters: the top ``k`` is
        :meth:`score_all`'s (items may trade places only within a tie at rounding level, as
        between any two exact computations)."""
        sh = self._shared if self._shared is not None else self._shared_parts()
        n = len(sh["items"])
        if sh["bounds"] is None or not n or k >= self.n_items:
            return self.score_all(users)
        bd, items, fixed = sh["bounds"], sh["items"], sh["fixed"]
        u_all = self.user_emb(users)
        out = torch.empty(len(users), self.n_items, device=users.device)
        # the excluded entries, columns in the order [items, fixed]
        ex = torch.zeros(len(users), self.n_items, dtype=torch.bool, device=users.device)
        ex[exclude[0], bd["column"][exclude[1]]] = True
        fixed_top = None
        if len(fixed):
            out[:, fixed] = fixed_scores = u_all @ sh["fixed_vecs"].T
            fixed_top = fixed_scores.masked_fill(ex[:, n:], -torch.inf).topk(
                min(k, len(fixed)), 1).values
        D = bd["rel"].shape[1]  # relation groups per item (neighbours sharing a relation)
        b = max(1, min(len(users), _CHUNK_ELEMENTS // (n * D)))
        for s in range(0, len(users), b):
            u, ex_b = u_all[s:s + b], ex[s:s + b, :n]
            ur = u @ self.relation_emb.weight.T
            p = _relation_weights(ur)  # [R, b]; None where a softmax must run per item
            if p is not None and bd["dense"] is not None:  # one product over every relation
                z = bd["per_relation"] @ p  # [n, b]
                mid = (bd["dense"] @ (p.unsqueeze(1) * u.T.unsqueeze(0)).flatten(0, 1)).div_(z)
                w = None
            else:
                w, z = _attention(ur, p, bd["rel"], bd["count"], bd["per_relation"])
                g = (bd["B"] @ u.T).view(n, D, len(u)).mul_(w).sum(1).div_(z)
                mid = torch.addmm(g, bd["c"], u.T)  # [n, b]
            ua = u.abs()
            slack = torch.addmm(bd["margin"] * ua.sum(1), bd["err"], ua.T)
            best = (mid - slack).T.masked_fill_(ex_b, -torch.inf).topk(min(k, n), 1).values
            if fixed_top is not None:
                best = torch.cat([best, fixed_top[s:s + b]], 1)
            kth = best.topk(k, 1).values[:, -1]  # at most each user's k-th best exact score
            upper = mid.add_(slack)
            out[s:s + b, items] = upper.T
            vi, ui = (upper >= kth).nonzero(as_tuple=True)  # excluded ones are masked later
            if len(ui):  # the candidates: exact scores, as score() computes them
                a = (p[bd["rel"][vi], ui.unsqueeze(1)] if w is None
                     else w[vi, :, ui]) / z[vi, ui].unsqueeze(1)
                x = bd["own"][vi] + torch.einsum("pg,pgd->pd", a, bd["neigh"][vi])
                out[s + ui, items[vi]] = (u[ui] * torch.tanh(x)).sum(1)
            if self.exact_pairs is not None:
                self.exact_pairs[0] += len(ui)
                self.exact_pairs[1] += len(u) * n
        return out

    @staticmethod
    def _one_hop_scores(u, ur, rels, own, neigh_w, m: int, out) -> None:
        """Scores ``out [n, b]`` of users ``u [b, d]`` for the items when H = 1, ``m`` items at a
        time: ``u . tanh(x)`` with ``x = W_v v + b + sum_k softmax_k(pi^u_r(v,k)) W_n e_k``.

        * The softmax from ``P = exp(pi^u_r - max_r pi^u_r)`` ``[R, b]`` (once per user block):
          the weights of item ``v`` are ``P[r(v,k)] / sum_k P[r(v,k)]``, a gather ``[m, K, b]``
          and a sum over K instead of an exponential per user, item and neighbour. Where a
          user's scores span more than 60 (``P`` could underflow), the softmax per item.
        * ``x`` ``[m, d, b]`` (times ``2 log2(e)``, folded into ``own`` and ``neigh_w``, shape
          ``[m, d, 1]``, ``[m, d, K]``) is one batched product over the items.
        * ``u . tanh(x) = sum(u) - 2 sum_d u_d / (1 + e^(2 x_d))`` and ``e^(2x) = 2^(2 log2(e)
          x)``: one ``exp2`` (the cheapest exponential in torch on a CPU: the activation of every
          user, item and dimension is most of the work), an add and a division, in place."""
        p = _relation_weights(ur)
        u_t, u_sum = u.T.contiguous(), u.sum(1)
        for i0 in range(0, len(rels), m):
            blk = slice(i0, min(i0 + m, len(rels)))
            if p is None:
                att = ur.T[rels[blk]].softmax(1)  # [m, K, b]
            else:
                att = p[rels[blk]]
                att = att.div_(att.sum(1, keepdim=True))
            x = torch.baddbmm(own[blk], neigh_w[blk], att)  # [m, d, b]
            x.exp2_().add_(1.0)
            torch.sum(torch.div(u_t, x, out=x), 1, out=out[blk])
        out.mul_(-2.0).add_(u_sum)

    def loss(self, batch):
        users, pos, neg = batch["users"], batch["pos_items"], batch["neg_items"]
        if neg.dim() == 2:
            users_n, neg = users.repeat_interleave(neg.shape[1]), neg.reshape(-1)
        else:
            users_n = users
        all_users = torch.cat([users, users_n])
        all_items = torch.cat([pos, neg])
        u = self.user_emb(all_users)
        ents, rels = self._receptive_field(all_items)
        ur = u @ self.relation_emb.weight.T
        v = self._aggregate(self._entity_vectors(ents), [torch.gather(ur, 1, r) for r in rels])
        s = (u * v).sum(-1)
        b = len(users)
        pos_s, neg_s = s[:b], s[b:]
        if batch["neg_items"].dim() == 2:
            neg_s = neg_s.view(b, -1)
        loss = bpr_loss(pos_s, neg_s)
        if self.reg_weight:
            loss = loss + self.reg_weight * l2_per_batch(u, v)
        return loss


_TANH_CURVATURE = 4.0 / (3.0 * math.sqrt(3.0))  # max |tanh''(x)|, at x = asinh(1/sqrt(2))
_DENSE_ELEMENTS = 1 << 25  # the largest items x relations x d table of the one-product bound


def _one_hop_bounds(own: torch.Tensor, neigh: torch.Tensor, rels: torch.Tensor,
                    n_relations: int) -> dict:
    """What bounds a one-hop KGCN score ``u . tanh(own + sum_k a_k neigh_k)`` for any attention
    ``a`` (``own [m, d]``, ``neigh [m, K, d]``: the item's ``W_v v + b`` and ``W_n`` of its
    neighbours, reached through relations ``rels [m, K]``): with ``[lo, hi]`` the range of
    ``x_d`` over the K neighbours, ``tanh`` is its secant ``tanh(lo) + beta (x - lo)`` within
    ``err = M (hi - lo)^2 / 8``, or, on a range too narrow for a stable secant, its tangent at
    ``lo`` within ``M (hi - lo)^2 / 2``. Neighbours reached through the same relation share
    their attention, so they are summed into groups (``D`` per item, the most distinct
    relations of any item; ``rel [m, D]``, ``count [m, D]``, 0 for padding). Returns ``c [m,
    d]`` and ``B [m D, d]`` (the secant is ``c + sum_g a_g B_g``), ``err``, the grouped inputs
    (``own``, ``neigh [m, D, d]``, for the exact scores), the counts per relation ``per_relation
    [m, R]``, ``dense [m, R d]`` (per relation, the sum of ``beta neigh_k + c`` over the
    neighbours it reaches: one product with every relation's ``exp(u . r) u`` gives the secant
    times the softmax's sum; None above ``_DENSE_ELEMENTS`` or where R exceeds 2 D + 2, when the
    grouped form costs less) and ``margin``, the rounding allowance per unit of ``|u|_1``."""
    own, neigh = own.detach(), neigh.detach()  # bounds for ranking: never differentiated
    m, K, d = neigh.shape
    lo = own + neigh.min(1).values
    hi = own + neigh.max(1).values
    width = hi - lo
    t_lo = torch.tanh(lo)
    narrow = width < 1e-3
    beta = torch.where(narrow, 1.0 - t_lo * t_lo,
                       (torch.tanh(hi) - t_lo) / torch.where(narrow, 1.0, width))
    err = _TANH_CURVATURE * width * width * torch.where(narrow, 0.5, 0.125)
    c = t_lo - beta * neigh.min(1).values  # the secant at x = own + sum_k a_k neigh_k
    sorted_rels, order = rels.sort(1)
    first = torch.ones_like(sorted_rels, dtype=torch.bool)
    first[:, 1:] = sorted_rels[:, 1:] != sorted_rels[:, :-1]
    group = first.long().cumsum(1) - 1  # [m, K]: each neighbour's group
    D = int(group.max()) + 1 if m else 1
    rel = sorted_rels[:, :1].repeat(1, D).scatter_(1, group, sorted_rels)
    count = torch.zeros(m, D, dtype=own.dtype, device=own.device).scatter_add_(
        1, group, torch.ones_like(sorted_rels, dtype=own.dtype))
    summed = torch.zeros(m, D, d, dtype=own.dtype, device=own.device).scatter_add_(
        1, group.unsqueeze(-1).expand(-1, -1, d), neigh.gather(1, order.unsqueeze(-1).expand(
            -1, -1, d)))
    per_relation = torch.zeros(m, n_relations, dtype=own.dtype, device=own.device).scatter_add_(
        1, rels, torch.ones_like(rels, dtype=own.dtype))
    B = beta.unsqueeze(1) * summed
    dense = None  # [m, R d]: per relation, the sum over its neighbours of beta * neigh + c
    if _dense_table(m, n_relations, d, D):
        dense = torch.zeros(m, n_relations, d, dtype=own.dtype, device=own.device).scatter_add_(
            1, rels.unsqueeze(-1).expand(-1, -1, d), beta.unsqueeze(1) * neigh + c.unsqueeze(1))
        dense = dense.flatten(1)
    scale = 1.0 + float(torch.maximum(lo.abs().max(), hi.abs().max())) if m else 1.0
    return {"c": c.contiguous(), "B": B.reshape(-1, d).contiguous(), "err": err,
            "own": own.contiguous(), "neigh": summed, "rel": rel, "count": count,
            "per_relation": per_relation, "dense": dense, "margin": 3e-5 * K * scale}


def _dense_table(m: int, n_relations: int, d: int, groups: int) -> bool:
    """Whether the one-hop bound takes one product over every relation (``R d`` per pair)
    rather than the grouped form (``(D + 2) d`` and some passes over ``[m, D, b]``): where the
    table fits in ``_DENSE_ELEMENTS`` and R is at most about twice the groups."""
    return m * n_relations * d <= _DENSE_ELEMENTS and n_relations <= 2 * groups + 2


def _relation_weights(ur: torch.Tensor) -> torch.Tensor | None:
    """``exp(ur - max_r ur)`` ``[R, b]`` for users' relation scores ``ur [b, R]`` (softmax
    numerators shared by every item), or None where a user's scores span more than 60 (they could
    underflow: the softmax then runs per item)."""
    if bool((ur.max(1).values - ur.min(1).values > 60).any()):
        return None
    return (ur - ur.max(1, keepdim=True).values).exp().T


def _attention(ur: torch.Tensor, p: torch.Tensor | None, rel: torch.Tensor, count: torch.Tensor,
               per_relation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of users (relation scores ``ur [b, R]``, :func:`_relation_weights` ``p``) over
    items' neighbour groups (``rel [m, D]``, ``count [m, D]`` neighbours each): a softmax over
    each item's K neighbours, as one weight per group and user ``w [m, D, b]`` and the sums ``z
    [m, b]`` (a neighbour's attention is ``w / z``), per item from its own largest score where
    ``p`` is None."""
    if p is None:
        x = ur.T[rel]  # [m, D, b]
        w = (x - x.max(1, keepdim=True).values).exp_()
        return w, (w * count.unsqueeze(-1)).sum(1)
    w = torch.index_select(p, 0, rel.reshape(-1)).view(*rel.shape, -1)
    return w, per_relation @ p
