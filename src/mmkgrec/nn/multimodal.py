"""Layers of a multimodal graph recommender (KGBM4Rec, :mod:`mmkgrec.models.kgbm4rec`):

* :class:`SumGraphConv`: one graph convolution with sum aggregation and a ReLU update (the
  message passing of eq. 1-2 of KGBM4Rec: ``m_v = sum_{u in N(v)} h_u``,
  ``h'_v = ReLU(W_self h_v + W_neigh m_v + c_v)``), ``c_v`` an optional extra term per node (the
  cross-modal attention's output);
* :class:`ModalityAttention`: cross-modal attention of a node over its own modality vectors
  (scaled dot product, eq. 4-5 with the node's state as query; absent modalities masked);
* :class:`BiLSTMAttention`: a bidirectional LSTM over token states with additive attention
  pooling (the "BiLSTM-Attention" head on BERT token embeddings);
* :class:`SwishMLP`: a multi-layer perceptron with the Swish activation ``x * sigmoid(x)``
  (eq. 6).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..graph.adjacency import sym_spmm


class SumGraphConv(nn.Module):
    """``ReLU(W_self h + W_neigh (A h) + extra)`` over a symmetric sparse adjacency ``A``
    (binary: ``A h`` sums the neighbours' states); with ``layer_norm``, the pre-activation is
    layer-normalised (``ReLU(LN(...))``): a sum over a node of degree 500 is 500 times the scale
    of a leaf's, which the bare update passes on layer after layer."""

    def __init__(self, dim: int, layer_norm: bool = False):
        super().__init__()
        self.self_lin = nn.Linear(dim, dim)
        self.neigh_lin = nn.Linear(dim, dim, bias=False)
        self.norm = nn.LayerNorm(dim) if layer_norm else None

    def forward(self, adj: torch.Tensor, h: torch.Tensor, extra: torch.Tensor | None = None):
        z = self.self_lin(h) + self.neigh_lin(sym_spmm(adj, h))
        if extra is not None:
            z = z + extra
        return F.relu(self.norm(z) if self.norm is not None else z)


class ModalityAttention(nn.Module):
    """``softmax_k(q . k_k / sqrt(d)) v_k`` for a query ``h`` ``[n, d]`` over ``[n, M, d]``
    modality vectors, ``mask`` ``[n, M]`` (1 where present); rows without any modality give 0.
    Queries, keys and values are linear maps of their inputs; an output map follows."""

    def __init__(self, dim: int):
        super().__init__()
        self.q, self.k, self.v = (nn.Linear(dim, dim, bias=False) for _ in range(3))
        self.out = nn.Linear(dim, dim, bias=False)
        self.scale = dim ** -0.5

    def forward(self, h: torch.Tensor, mods: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = torch.einsum("nd,nmd->nm", self.q(h), self.k(mods)) * self.scale
        scores = scores.masked_fill(mask <= 0, float("-inf"))
        has = (mask > 0).any(1, keepdim=True)
        probs = torch.softmax(torch.where(has, scores, torch.zeros_like(scores)), 1)
        probs = probs * has
        return self.out(torch.einsum("nm,nmd->nd", probs, self.v(mods)))


class BiLSTMAttention(nn.Module):
    """A bidirectional LSTM over ``[n, L, d_in]`` token states (``lengths`` >= 1 valid positions
    each), then attention pooling ``a_t = softmax_t(w . tanh(W o_t))``, ``sum_t a_t o_t``:
    ``[n, 2 hidden]``."""

    def __init__(self, d_in: int, hidden: int):
        super().__init__()
        self.lstm = nn.LSTM(d_in, hidden, batch_first=True, bidirectional=True)
        self.att = nn.Linear(2 * hidden, 2 * hidden)
        self.att_w = nn.Linear(2 * hidden, 1, bias=False)
        self.out_dim = 2 * hidden

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        scores = self.att_w(torch.tanh(self.att(out))).squeeze(-1)
        pos = torch.arange(x.shape[1], device=x.device)
        scores = scores.masked_fill(pos[None, :] >= lengths.to(x.device)[:, None], float("-inf"))
        return (torch.softmax(scores, 1).unsqueeze(-1) * out).sum(1)


class SwishMLP(nn.Sequential):
    """``Linear -> Swish -> Dropout`` per hidden width, then a ``Linear`` to ``d_out``."""

    def __init__(self, d_in: int, hidden: list[int], d_out: int, dropout: float = 0.0):
        layers: list[nn.Module] = []
        for w in hidden:
            layers += [nn.Linear(d_in, w), nn.SiLU(), nn.Dropout(dropout)]
            d_in = w
        layers.append(nn.Linear(d_in, d_out))
        super().__init__(*layers)
