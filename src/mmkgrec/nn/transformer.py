"""Post-layer-norm Transformer blocks for item sequences (the SASRec / BERT4Rec encoder).

A block is multi-head self-attention, dropout, residual, layer norm, then a position-wise
feed-forward network (``inner_size``, GELU or ReLU), dropout, residual, layer norm (Vaswani et al.
2017; SASRec eq. 4-6, BERT4Rec eq. 2-5). Attention runs through
``torch.nn.functional.scaled_dot_product_attention``.

Two modes:

* ``causal=True`` (SASRec): inputs are right-padded, so a causal mask alone keeps every real
  position away from padding; no key mask is needed.
* ``causal=False`` (BERT4Rec): bidirectional with a key-padding mask.

``query_index`` (the last block of a model that reads a few positions per sequence): queries
are computed only at those positions, keys and values at all positions. The outputs equal the
full block's outputs there, for about half the work of a whole block.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu}


def fast_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout (zero with probability ``p``, scale the rest by ``1 / (1 - p)``), the
    same distribution as ``F.dropout``. The mask comes from ``torch.rand_like``, which on CPU
    is several times faster than the Bernoulli sampler ``F.dropout`` uses (dropout was a fifth of
    SASRec's training time)."""
    if not training or p <= 0.0:
        return x
    if p >= 1.0:
        return torch.zeros_like(x)
    keep = torch.rand_like(x).ge_(p).mul_(1.0 / (1.0 - p))  # 0 or 1 / (1 - p)
    return x * keep


class FastDropout(nn.Module):
    """:func:`fast_dropout` as a module (active in training mode only)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = float(p)

    def forward(self, x):
        return fast_dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


def attention(q, k, v, mask, causal: bool, dropout: float, training: bool) -> torch.Tensor:
    """Scaled dot-product attention (``[B, h, Lq, dh]`` queries, ``[B, h, L, dh]`` keys and
    values, bool ``mask`` broadcastable to ``[B, h, Lq, L]``, True = attend). Without dropout it
    is ``F.scaled_dot_product_attention``; with dropout it is computed here so the dropout mask
    is drawn by :func:`fast_dropout`."""
    if not training or dropout <= 0.0:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                              is_causal=causal and mask is None)
    scores = torch.matmul(q, k.transpose(-1, -2)) * (q.shape[-1] ** -0.5)
    if mask is None and causal:
        lq, lk = q.shape[-2], k.shape[-2]
        mask = torch.ones(lq, lk, dtype=torch.bool, device=q.device).tril(lk - lq)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    probs = fast_dropout(torch.softmax(scores, -1), dropout, True)
    return torch.matmul(probs, v)


def _query(x: torch.Tensor, query_index):
    """``(rows, positions)`` of the outputs asked for: ``query_index`` is either positions
    ``[B]`` (one per row of ``x``) or a pair ``(rows [M], positions [M])``."""
    if isinstance(query_index, (tuple, list)):
        return query_index
    return torch.arange(len(x), device=x.device), query_index


class SelfAttentionBlock(nn.Module):
    def __init__(self, hidden: int, n_heads: int, inner: int, hidden_dropout: float,
                 attn_dropout: float, act: str = "gelu", eps: float = 1e-12):
        super().__init__()
        if hidden % n_heads:
            raise ValueError(f"hidden_size {hidden} is not a multiple of n_heads {n_heads}")
        if act not in ACTIVATIONS:
            raise ValueError(f"hidden_act must be one of {sorted(ACTIVATIONS)}, got {act!r}")
        self.n_heads, self.hidden = n_heads, hidden
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.ln_attn = nn.LayerNorm(hidden, eps=eps)
        self.ff_in = nn.Linear(hidden, inner)
        self.ff_out = nn.Linear(inner, hidden)
        self.ln_ff = nn.LayerNorm(hidden, eps=eps)
        self.drop = FastDropout(hidden_dropout)
        self.attn_dropout = attn_dropout
        self.act = ACTIVATIONS[act]

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        b, length, _ = t.shape
        return t.view(b, length, self.n_heads, -1).transpose(1, 2)

    def forward(self, x: torch.Tensor, causal: bool, key_mask: torch.Tensor | None = None,
                query_index: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` ``[B, L, d]``; ``key_mask`` bool ``[B, L]`` (True = real item), used when not
        causal; ``query_index``: positions ``[B]`` or ``(rows [M], positions [M])``: return
        ``[M, d]``, the outputs at those positions only (keys and values of each query's row are
        gathered, so several queries may share a row)."""
        d = self.hidden
        w, b = self.qkv.weight, self.qkv.bias
        mask = None
        if query_index is None:
            q, k, v = F.linear(x, w, b).split(d, dim=-1)
            xq = x
            if not causal and key_mask is not None:
                mask = key_mask[:, None, None, :]
        else:
            rows, qpos = _query(x, query_index)
            xq = x[rows, qpos].unsqueeze(1)
            q = F.linear(xq, w[:d], b[:d])
            k, v = F.linear(x, w[d:], b[d:]).split(d, dim=-1)
            if not (len(rows) == len(x) and torch.equal(rows, torch.arange(len(x), device=x.device))):
                k, v = k[rows], v[rows]
            pos = torch.arange(x.shape[1], device=x.device)
            if causal:
                mask = (pos[None, :] <= qpos[:, None])[:, None, None, :]
            elif key_mask is not None:
                mask = key_mask[rows][:, None, None, :]
        att = attention(self._heads(q), self._heads(k), self._heads(v), mask, causal,
                        self.attn_dropout, self.training)
        att = att.transpose(1, 2).reshape(xq.shape)
        h = self.ln_attn(self.drop(self.out(att)) + xq)
        h = self.ln_ff(self.drop(self.ff_out(self.act(self.ff_in(h)))) + h)
        return h if query_index is None else h.squeeze(1)


class SequenceTransformer(nn.Module):
    """``n_layers`` :class:`SelfAttentionBlock` s. ``forward(x, causal, key_mask, query_index)``:
    with ``query_index`` the last block computes only that position and ``[B, d]`` is returned."""

    def __init__(self, n_layers: int, hidden: int, n_heads: int, inner: int,
                 hidden_dropout: float, attn_dropout: float, act: str = "gelu",
                 eps: float = 1e-12):
        super().__init__()
        self.blocks = nn.ModuleList(
            SelfAttentionBlock(hidden, n_heads, inner, hidden_dropout, attn_dropout, act, eps)
            for _ in range(n_layers))

    def forward(self, x, causal: bool, key_mask=None, query_index=None):
        for i, block in enumerate(self.blocks):
            last = i == len(self.blocks) - 1
            x = block(x, causal, key_mask, query_index if last else None)
        if query_index is not None and not len(self.blocks):
            x = x[_query(x, query_index)]
        return x
