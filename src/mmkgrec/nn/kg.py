"""Knowledge-graph layers: TransR scoring and loss, knowledge-aware attention with an edge softmax,
and the neighbourhood aggregators of KGAT (Bi-Interaction, GCN, GraphSAGE) and KGCN (sum, concat,
neighbour).

References: TransR (Lin et al., AAAI 2015); KGAT (Wang et al., KDD 2019, Eqs. 1-8); KGCN (Wang et
al., WWW 2019, Sec. 3.2); Multi-KG4Rec 4.2.3 uses the same attention and Bi-Interaction as KGAT.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .losses import bpr_loss, l2_per_batch


class _GroupedProjection(torch.autograd.Function):
    """``e W_r`` for rows ``e [N, ..., d]`` in runs of one relation (``rels[g]`` for the next
    ``counts[g]`` rows): one matrix product per run, forward and backward, written into one
    output (the same products as a split, per-run ``@`` and concatenation, without an autograd
    node per run)."""

    @staticmethod
    def forward(ctx, e, proj, rels, counts):
        rows = e.reshape(-1, e.shape[-1])
        per = rows.shape[0] // max(1, e.shape[0])  # rows per entry (the middle dims)
        out = rows.new_empty(rows.shape[0], proj.shape[2])
        start = 0
        for k, n in zip(rels, counts):
            sl = slice(start * per, (start + n) * per)
            torch.mm(rows[sl], proj[k], out=out[sl])
            start += n
        ctx.save_for_backward(rows, proj)
        ctx.plan = (rels, counts, per, e.shape)
        return out.view(*e.shape[:-1], proj.shape[2])

    @staticmethod
    def backward(ctx, grad):
        rows, proj = ctx.saved_tensors
        rels, counts, per, shape = ctx.plan
        go = grad.reshape(-1, proj.shape[2])
        g_rows = rows.new_empty(rows.shape) if ctx.needs_input_grad[0] else None
        g_proj = torch.zeros_like(proj) if ctx.needs_input_grad[1] else None
        start = 0
        for k, n in zip(rels, counts):
            sl = slice(start * per, (start + n) * per)
            if g_rows is not None:
                torch.mm(go[sl], proj[k].T, out=g_rows[sl])
            if g_proj is not None:
                torch.mm(rows[sl].T, go[sl], out=g_proj[k])
            start += n
        return (None if g_rows is None else g_rows.view(shape)), g_proj, None, None


class TransR(nn.Module):
    """TransR relation space: relation ``r`` has an embedding ``e_r`` (``relation_dim``) and a
    projection ``W_r`` (``entity_dim x relation_dim``; entities are row vectors, ``e W_r``).

    Plausibility (KGAT Eq. 1, Multi-KG4Rec 4.2): ``g(h, r, t) = ||W_r e_h + e_r - W_r e_t||^2``
    (lower is more plausible). Loss (KGAT Eq. 2, CKE Sec. 4.1): for a corrupted tail ``t'``,
    ``-ln sigmoid(g(h, r, t') - g(h, r, t))``, averaged over the batch (the papers write a sum;
    a mean only rescales the learning rate), plus ``reg_weight`` times the squared L2 norms of
    ``W_r e_h, e_r, W_r e_t, W_r e_t'`` divided by the batch size."""

    def __init__(self, n_relations: int, entity_dim: int, relation_dim: int):
        super().__init__()
        self.relation = nn.Embedding(n_relations, relation_dim)
        self.proj = nn.Parameter(torch.empty(n_relations, entity_dim, relation_dim))
        nn.init.xavier_uniform_(self.relation.weight)
        nn.init.xavier_uniform_(self.proj)

    def project(self, e: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """``e W_r`` for entity vectors ``e [B, ..., d]`` and relations ``r [B]``.

        Rows are grouped by relation and each group multiplied by its ``W_r`` (one matrix product
        per relation present): on CPU this is ~10x faster, forward and backward, than gathering a
        ``[B, d, k]`` stack of matrices for a batched product."""
        order = torch.argsort(r, stable=True)
        # index_select, not e[order]: its backward (index_add) is deterministic on several CPU
        # threads, an advanced-index gather's (index_put with accumulate) is not
        out = self._project_sorted(e.index_select(0, order), r[order])
        return out.index_select(0, torch.argsort(order))

    def _project_sorted(self, e: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """``e W_r`` for rows already sorted by relation ``r`` (one product per relation)."""
        rel, counts = torch.unique_consecutive(r, return_counts=True)
        return _GroupedProjection.apply(e, self.proj, rel.tolist(), counts.tolist())

    def project_relation(self, e: torch.Tensor, r: int) -> torch.Tensor:
        """``e W_r`` for entity vectors ``e [B, d]`` that all share relation ``r``."""
        return e @ self.proj[r]

    def distance(self, h, r, t) -> torch.Tensor:
        """``g(h, r, t)`` for entity vectors ``h, t [B, d]`` and relations ``r [B]``."""
        p = self.project(torch.stack([h, t], 1), r)
        return (p[:, 0] + self.relation(r) - p[:, 1]).pow(2).sum(-1)

    def loss(self, h, r, t, t_neg, reg_weight: float = 0.0) -> torch.Tensor:
        """TransR's pairwise loss for entity vectors ``h, t, t_neg [B, d]`` and relations ``r``.

        Without the L2 term (``reg_weight`` 0) only the differences are projected, ``g(h, r, t)
        = ||(e_h - e_t) W_r + e_r||^2`` (the same value: the projection is linear), two products
        per triple instead of three, and the batch's mean is taken in relation order (no
        permutation back); rows already sorted by relation are not permuted at all."""
        if reg_weight:
            p = self.project(torch.stack([h, t, t_neg], 1), r)  # one bmm for all three
            er = self.relation(r)
            pos = (p[:, 0] + er - p[:, 1]).pow(2).sum(-1)
            neg = (p[:, 0] + er - p[:, 2]).pow(2).sum(-1)
            loss = bpr_loss(neg, pos)  # BPR on distances: the corrupted triple ranked below
            return loss + reg_weight * l2_per_batch(p[:, 0], er, p[:, 1], p[:, 2])
        diff = torch.stack([h - t, h - t_neg], 1)
        if len(r) > 1 and not bool((r[1:] >= r[:-1]).all()):
            order = torch.argsort(r, stable=True)
            diff, r = diff.index_select(0, order), r[order]
        dist = (self._project_sorted(diff, r) + self.relation(r).unsqueeze(1)).pow(2).sum(-1)
        return bpr_loss(dist[:, 1], dist[:, 0])


class TransE(TransR):
    """TransE (Bordes et al., NIPS 2013) as the special case ``W_r = I`` of :class:`TransR`:
    ``g(h, r, t) = ||e_h + e_r - e_t||^2``, with the same pairwise loss; entity and relation
    vectors share one dimension. MKGAT (Sun et al., CIKM 2020) trains its KG embeddings so."""

    def __init__(self, n_relations: int, dim: int):
        nn.Module.__init__(self)
        self.relation = nn.Embedding(n_relations, dim)
        nn.init.xavier_uniform_(self.relation.weight)

    def project(self, e, r):
        return e

    def _project_sorted(self, e, r):
        return e

    def project_relation(self, e, r: int):
        return e


def edge_softmax(scores: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    """Softmax of edge ``scores`` within each group of edges sharing ``index`` (the head):
    ``pi_e = exp(s_e) / sum_{e' : index[e'] = index[e]} exp(s_e')`` (KGAT Eq. 5). Vectorised with
    a scatter max (for stability) and ``index_add_``; every group sums to 1."""
    m = torch.full((n,), float("-inf"), dtype=scores.dtype, device=scores.device)
    m = m.scatter_reduce(0, index, scores, reduce="amax", include_self=True)
    e = torch.exp(scores - m[index])
    denom = torch.zeros(n, dtype=scores.dtype, device=scores.device).index_add_(0, index, e)
    return e / denom[index]


def knowledge_attention(transr: TransR, emb: torch.Tensor, heads: torch.Tensor,
                        relations: torch.Tensor, tails: torch.Tensor, n_nodes: int,
                        chunk: int = 1 << 16) -> torch.Tensor:
    """Knowledge-aware attention (KGAT Eqs. 4-5, Multi-KG4Rec 4.2.3):
    ``pi(h, r, t) = (W_r e_t)^T tanh(W_r e_h + e_r)``, normalised by :func:`edge_softmax` over the
    triples of each head (``W_r = I`` for :class:`TransE`). ``emb [n_nodes, d]`` holds the node vectors. The projections are done per
    relation (one matrix product per relation over its edges, never a per-node loop), in chunks
    of ``chunk`` edges."""
    scores = torch.empty(len(heads), dtype=emb.dtype, device=emb.device)
    order = torch.argsort(relations, stable=True)
    rel_sorted = relations[order]
    present, counts = torch.unique_consecutive(rel_sorted, return_counts=True)
    start = 0
    for r, c in zip(present.tolist(), counts.tolist()):
        idx_all = order[start:start + c]
        start += c
        er = transr.relation.weight[r]
        for s in range(0, c, chunk):
            idx = idx_all[s:s + chunk]
            ph = transr.project_relation(emb[heads[idx]], r)
            pt = transr.project_relation(emb[tails[idx]], r)
            scores[idx] = (pt * torch.tanh(ph + er)).sum(-1)
    return edge_softmax(scores, heads, n_nodes)


class BiInteraction(nn.Module):
    """KGAT Eq. 8 / Multi-KG4Rec 4.2.3:
    ``f = LeakyReLU(W1 (e_h + e_N)) + LeakyReLU(W2 (e_h * e_N))``."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.w1, self.w2 = nn.Linear(d_in, d_out), nn.Linear(d_in, d_out)
        for lin in (self.w1, self.w2):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, e, e_n):
        return F.leaky_relu(self.w1(e + e_n)) + F.leaky_relu(self.w2(e * e_n))


class GCNAggregator(nn.Module):
    """KGAT Eq. 6: ``f = LeakyReLU(W (e_h + e_N))``."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.w = nn.Linear(d_in, d_out)
        nn.init.xavier_uniform_(self.w.weight)
        nn.init.zeros_(self.w.bias)

    def forward(self, e, e_n):
        return F.leaky_relu(self.w(e + e_n))


class GraphSAGEAggregator(nn.Module):
    """KGAT Eq. 7: ``f = LeakyReLU(W (e_h || e_N))``."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.w = nn.Linear(2 * d_in, d_out)
        nn.init.xavier_uniform_(self.w.weight)
        nn.init.zeros_(self.w.bias)

    def forward(self, e, e_n):
        return F.leaky_relu(self.w(torch.cat([e, e_n], -1)))


AGGREGATORS = {"bi": BiInteraction, "gcn": GCNAggregator, "graphsage": GraphSAGEAggregator}


class KGCNAggregator(nn.Module):
    """KGCN's aggregators (Wang et al., WWW 2019, Sec. 3.2) of an entity ``v`` and its
    user-specific neighbourhood ``v_N``: ``sum``: ``act(W (v + v_N) + b)``; ``concat``:
    ``act(W (v || v_N) + b)``; ``neighbor``: ``act(W v_N + b)``. ``act`` is ReLU except in the last
    iteration, where it is tanh (as in the paper's implementation)."""

    KINDS = ("sum", "concat", "neighbor")

    def __init__(self, kind: str, dim: int):
        super().__init__()
        if kind not in self.KINDS:
            raise ValueError(f"KGCN aggregator must be one of {self.KINDS}, got {kind!r}")
        self.kind = kind
        self.w = nn.Linear(2 * dim if kind == "concat" else dim, dim)
        nn.init.xavier_uniform_(self.w.weight)
        nn.init.zeros_(self.w.bias)

    def _weights(self):
        """``(W_v, W_n)``: the aggregator is ``act(W_v v + W_n v_N + b)`` for every kind."""
        w, d = self.w.weight, self.w.out_features
        if self.kind == "sum":
            return w, w
        if self.kind == "concat":
            return w[:, :d], w[:, d:]
        return None, w

    def project_shared(self, v, neigh):
        """The user-independent half of :meth:`forward` when the entity vectors ``v [n, h, d]``
        and their neighbours ``neigh [n, h, K, d]`` are the same for every user and only the
        attention differs (full ranking): ``(W_v v + b, W_n neigh)``, ``W_n`` applied to the K
        neighbours once, before the weighted sum (it is linear), instead of once per user."""
        w_v, w_n = self._weights()
        own = self.w.bias.expand(*v.shape) if w_v is None else v @ w_v.T + self.w.bias
        return own, neigh @ w_n.T

    @staticmethod
    def combine_shared(own, neigh_w, a, last: bool):
        """:meth:`forward` of every user from :meth:`project_shared`'s parts (items sliced
        alike): ``act(W_v v + b + sum_k a_k W_n neigh_k)`` with ``a [b, n, h, K]`` normalised."""
        x = torch.einsum("bnhk,nhkd->bnhd", a, neigh_w) + own
        return torch.tanh(x) if last else torch.relu(x)

    def forward(self, v, v_n, last: bool):
        if self.kind == "sum":
            x = self.w(v + v_n)
        elif self.kind == "concat":
            v = v.expand_as(v_n) if v.shape != v_n.shape else v
            x = self.w(torch.cat([v, v_n], -1))
        else:
            x = self.w(v_n)
        return torch.tanh(x) if last else torch.relu(x)
