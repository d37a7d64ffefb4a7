"""Normalised adjacency matrices of the user-item graph, as torch sparse CSR tensors."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch

from ..data.dataset import Interactions


def bipartite_adjacency(inter: Interactions, n_users: int, n_items: int) -> sp.csr_matrix:
    """Binary symmetric adjacency of the user-item graph over ``n_users + n_items`` nodes
    (users first, then items), duplicates collapsed."""
    n = n_users + n_items
    rows = np.concatenate([inter.user, inter.item + n_users])
    cols = np.concatenate([inter.item + n_users, inter.user])
    a = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n, n))
    a.sum_duplicates()
    a.data[:] = 1.0
    return a


def sym_normalize(a: sp.spmatrix) -> sp.csr_matrix:
    """``D^-1/2 A D^-1/2``; isolated nodes keep an all-zero row."""
    deg = np.asarray(a.sum(1)).ravel()
    inv = np.zeros_like(deg, dtype=np.float32)
    nz = deg > 0
    inv[nz] = deg[nz] ** -0.5
    d = sp.diags(inv)
    return (d @ a @ d).tocsr().astype(np.float32)


def to_torch_csr(a: sp.spmatrix, device="cpu") -> torch.Tensor:
    a = a.tocsr()
    a.sort_indices()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            torch.from_numpy(a.indptr.astype(np.int64)), torch.from_numpy(a.indices.astype(np.int64)),
            torch.from_numpy(a.data.astype(np.float32)), size=a.shape, device=device,
            check_invariants=False)


def without_edges(adj: torch.Tensor, node: int, others) -> torch.Tensor:
    """The symmetric-normalised adjacency ``adj`` (sparse CSR, one entry per edge of a binary
    graph, as :func:`sym_normalize` builds it) with the edges between ``node`` and each node of
    ``others`` removed in both directions and the graph normalised again: ``D'^-1/2 A' D'^-1/2``
    with the degrees of the graph left (those of ``node`` and of the nodes it lost an edge to
    change; so do all their entries). ``adj`` itself when no such edge exists."""
    crow, col = adj.crow_indices(), adj.col_indices()
    n = adj.shape[0]
    row = torch.repeat_interleave(torch.arange(n, device=crow.device), crow.diff())
    others = torch.as_tensor(list(others), dtype=col.dtype, device=col.device)
    cut = (((row == node) & torch.isin(col, others))
           | ((col == node) & torch.isin(row, others)))
    if not bool(cut.any()):
        return adj
    keep = ~cut
    row, col = row[keep], col[keep]
    counts = torch.bincount(row, minlength=n)
    deg = counts.to(torch.float32)
    inv = torch.where(deg > 0, deg.clamp_min(1).pow(-0.5), torch.zeros_like(deg))
    crow2 = torch.zeros(n + 1, dtype=crow.dtype, device=crow.device)
    torch.cumsum(counts, 0, out=crow2[1:])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow2, col, (inv[row] * inv[col]).to(adj.dtype),
                                       size=adj.shape, device=adj.device,
                                       check_invariants=False)


class _SymmetricSpMM(torch.autograd.Function):
    """``A @ X`` for a symmetric sparse ``A``: the backward pass reuses ``A`` (``A^T = A``)
    instead of transposing a CSR tensor on every call."""

    @staticmethod
    def forward(ctx, adj, x):
        ctx.adj = adj
        return adj @ x

    @staticmethod
    def backward(ctx, grad):
        return None, ctx.adj @ grad


def sym_spmm(adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Multiply by a symmetric sparse matrix with gradients to ``x``."""
    return _SymmetricSpMM.apply(adj, x)


def row_normalize(a: sp.spmatrix) -> sp.csr_matrix:
    """``D^-1 A``: each row averages over the node's neighbours (mean aggregation); isolated nodes
    keep an all-zero row."""
    deg = np.asarray(a.sum(1)).ravel()
    inv = np.zeros_like(deg, dtype=np.float32)
    nz = deg > 0
    inv[nz] = 1.0 / deg[nz]
    return (sp.diags(inv) @ a).tocsr().astype(np.float32)


class _SpMM(torch.autograd.Function):
    """``A @ X`` for a sparse ``A`` that is not symmetric: the backward pass multiplies by the
    precomputed transpose ``A^T`` (kept as its own CSR tensor) instead of transposing per call."""

    @staticmethod
    def forward(ctx, adj, adj_t, x):
        ctx.adj_t = adj_t
        return adj @ x

    @staticmethod
    def backward(ctx, grad):
        return None, None, ctx.adj_t @ grad


def spmm(adj: torch.Tensor, adj_t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Multiply by a sparse ``adj`` with gradients to ``x``; ``adj_t`` must be ``adj``'s
    transpose."""
    return _SpMM.apply(adj, adj_t, x)
