"""Propagation over graphs: LightGCN's light graph convolution, KGAT's knowledge-aware attentive
propagation over the collaborative KG, and MMGCN's per-modality graph convolution.

References: LightGCN (He et al., SIGIR 2020, eq. 3-4 and their matrix form eq. 7-8; also
MM-RACL-KAL's static interest, eq. 9-10); KGAT (Wang et al., KDD 2019, eq. 3-8 and 11;
Multi-KG4Rec 4.2.3 uses the same propagation per modality); MMGCN (Wei et al., ACM MM 2019,
eq. 1-7).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..graph.adjacency import spmm, sym_spmm, without_edges
from .kg import AGGREGATORS, TransE, TransR, edge_softmax, knowledge_attention


def light_propagate(adj: torch.Tensor, ego: torch.Tensor, n_layers: int) -> torch.Tensor:
    """LightGCN's propagation: ``E(k) = A_hat E(k-1)`` from ``E(0) = ego`` and the mean of the
    layers ``0..n_layers`` (with gradients to ``ego``)."""
    if n_layers == 0:
        return ego
    x, acc = ego, None
    for _ in range(n_layers):
        x = sym_spmm(adj, x)
        # in place on fresh sums: addition's backward needs none of its inputs
        acc = x + ego if acc is None else acc.add_(x)
    return acc.mul_(1.0 / (n_layers + 1))


def light_propagate_rows(adj: torch.Tensor, ego: torch.Tensor, n_layers: int,
                         rows) -> torch.Tensor:
    """``light_propagate(adj, ego, n_layers)[rows]`` for a symmetric ``adj``, computed from the
    rows' side: ``e_r = 1/(K+1) sum_k (A^k ego)[r] = (1/(K+1) sum_k A^k 1_r)^T ego``, so each layer
    multiplies ``adj`` by one column per row instead of ``d`` (the explanation module re-runs
    the propagation once per graph it edits: :func:`~mmkgrec.graph.adjacency.without_edges`)."""
    rows = torch.as_tensor(rows, dtype=torch.long, device=ego.device)
    x = ego.new_zeros(ego.shape[0], len(rows))
    x[rows, torch.arange(len(rows), device=ego.device)] = 1.0
    acc = x
    for _ in range(n_layers):
        x = adj @ x
        acc = acc + x
    return (acc.T @ ego) / (n_layers + 1)


def light_propagate_without(adj: torch.Tensor, ego: torch.Tensor, n_layers: int, user: int,
                            items, n_users: int, rows) -> torch.Tensor:
    """``light_propagate_rows`` of ``rows`` on the user-item graph ``adj`` (users first, then
    items) without ``user``'s edges to the dense ``items``, normalised again
    (:func:`~mmkgrec.graph.adjacency.without_edges`): the layer mean a graph without those
    interactions gives (the model's reasons of LightGCN and of MM-RACL-KAL's static interest)."""
    return light_propagate_rows(without_edges(adj, user, [i + n_users for i in items]), ego,
                                n_layers, rows)


def rows_at(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """``x[pos]``, as ``x`` itself or a slice when ``pos`` is ``0, 1, ..., k-1`` (the layer plans'
    usual case: rows and columns are sorted node ids starting with the users and items), which
    spares the gather and its scatter (or zero-filled slice gradient) in the backward pass. The
    gather is an ``index_select``, whose backward is deterministic on several CPU threads (an
    advanced-index gather's is not)."""
    k = len(pos)
    if k <= len(x) and (k == 0 or int(pos[-1]) == k - 1) and torch.equal(
            pos, torch.arange(k, device=pos.device, dtype=pos.dtype)):
        return x if k == len(x) else x[:k]
    return x.index_select(0, pos)


class KnowledgePropagation(nn.Module):
    """One graph's knowledge-aware attentive propagation (KGAT eq. 1-8 and 11, Multi-KG4Rec
    4.2.3) over a graph of ``n_nodes`` nodes whose edges have heads ``edge_heads``.

    Owns the relation space ``transr`` (:class:`~mmkgrec.nn.kg.TransR` with ``relation_dim``, or
    :class:`~mmkgrec.nn.kg.TransE` under ``relation_space="transe"``), one aggregator per layer
    (``aggregator`` in :data:`~mmkgrec.nn.kg.AGGREGATORS`, widths ``dims[0] -> dims[1] -> ...``),
    the message dropout and the per-edge attention buffer ``attention`` (uniform ``1/|N_h|`` until
    the first :meth:`refresh_attention`)."""

    def __init__(self, n_relations: int, dims: list[int], aggregator: str, mess_dropout: float,
                 edge_heads: torch.Tensor, n_nodes: int, relation_space: str = "transr",
                 relation_dim: int | None = None):
        super().__init__()
        if relation_space == "transe":
            self.transr = TransE(n_relations, dims[0])
        else:
            self.transr = TransR(n_relations, dims[0], relation_dim)
        self.aggregators = nn.ModuleList(AGGREGATORS[aggregator](dims[k], dims[k + 1])
                                         for k in range(len(dims) - 1))
        self.dropout = nn.Dropout(mess_dropout)
        self.register_buffer("attention", edge_softmax(torch.zeros(len(edge_heads)), edge_heads,
                                                       n_nodes))

    @torch.no_grad()
    def refresh_attention(self, table, heads, relations, tails, n_nodes) -> None:
        """Recompute ``pi(h, r, t)`` (eq. 4-5) for every edge from node vectors
        ``table [n_nodes, d]``."""
        self.attention.copy_(knowledge_attention(self.transr, table, heads, relations, tails,
                                                 n_nodes))

    def layer_csr(self, layer):
        """``layer.torch_csr(self.attention)``, cached while the attention buffer is unchanged
        (it is a constant of the CF phase: rebuilding the matrices gathered every edge's weight
        twice per layer and step). The cache holds the buffer itself and its version counter, so
        a refresh, a ``load_state_dict`` or a move to another device rebuilds it."""
        att = self.attention
        cache = self.__dict__.setdefault("_csr_cache", {})
        hit = cache.get(id(layer))
        if hit is None or hit[0] is not att or hit[1] != att._version or hit[2] is not layer:
            hit = cache[id(layer)] = (att, att._version, layer, *layer.torch_csr(att))
        return hit[3], hit[4]

    def forward(self, x, plan, self_pos, n_out: int) -> torch.Tensor:
        """Eq. 3-8 and 11: ``x`` holds the layer-0 vectors of the plan's input nodes; returns
        ``e(0) || ... || e(L)`` of its first ``n_out`` rows (each layer's output L2-normalised).
        Layer ``l`` is computed only on the nodes the output depends on
        (:meth:`~mmkgrec.graph.kg.CollaborativeKG.layer_plan`)."""
        outs = [x[:n_out]]
        for agg, layer, pos in zip(self.aggregators, plan, self_pos):
            a, a_t = self.layer_csr(layer)
            x = self.dropout(agg(rows_at(x, pos), spmm(a, a_t, x)))
            outs.append(F.normalize(x[:n_out], dim=1))
        return torch.cat(outs, 1)


class ModalityGCN(nn.Module):
    """MMGCN's graph of one modality ``m`` (Wei et al., ACM MM 2019): layer-0 user nodes are a
    learned preference embedding ``[n_users, latent_size]``, item nodes ``W_0 f_i + b_0`` (the
    item's features of ``m`` projected to ``latent_size``; zero for items without that content).
    Then ``n_layers`` of

    * aggregation (eq. 1-2, mean aggregator): ``h_v = LeakyReLU(W_1 * mean_{j in N(v)} x_j + b_1)``
    * combination (eq. 5-7): ``x_hat_v = LeakyReLU(W_2 x_v + b_2) + id_v`` (the node's
      representation moved into the ID space plus its shared ID embedding), then
      ``concat``: ``x_v <- LeakyReLU(W_3 [h_v ; x_hat_v] + b_3)`` (eq. 6) or
      ``add``: ``x_v <- LeakyReLU(W_3 h_v + b_3 + x_hat_v)`` (eq. 7).

    Layer 1 works in ``latent`` dims and outputs ``emb``; later layers stay in ``emb``. Weights
    are shared by user and item nodes within a modality. ``forward(feat, mask, ids, adj, adj_t)``
    takes the aggregation matrix and its transpose (:func:`~mmkgrec.graph.adjacency.spmm`)."""

    def __init__(self, feat_dim: int, n_users: int, latent: int, emb: int, n_layers: int,
                 combination: str):
        super().__init__()
        self.n_users = n_users
        self.combination = combination
        self.preference = nn.Embedding(n_users, latent)
        nn.init.xavier_normal_(self.preference.weight)
        self.project = nn.Linear(feat_dim, latent)
        dims = [latent] + [emb] * n_layers
        self.aggregate = nn.ModuleList(nn.Linear(dims[k], dims[k]) for k in range(n_layers))
        self.to_id = nn.ModuleList(nn.Linear(dims[k], emb) for k in range(n_layers))
        self.combine = nn.ModuleList(
            nn.Linear(dims[k] + emb if combination == "concat" else dims[k], emb)
            for k in range(n_layers))
        for lin in (self.project, *self.aggregate, *self.to_id, *self.combine):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, feat, mask, ids, adj, adj_t):
        x = torch.cat([self.preference.weight, self.project(feat) * mask.unsqueeze(1)])
        for agg, to_id, comb in zip(self.aggregate, self.to_id, self.combine):
            h = F.leaky_relu(agg(spmm(adj, adj_t, x)))
            x_hat = F.leaky_relu(to_id(x)) + ids
            if self.combination == "concat":
                x = F.leaky_relu(comb(torch.cat([h, x_hat], 1)))
            else:
                x = F.leaky_relu(comb(h) + x_hat)
        return x
