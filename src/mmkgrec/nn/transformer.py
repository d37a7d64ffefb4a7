"""Post-layer-norm Transformer blocks (the SASRec / BERT4Rec encoder, and the blocks of
Multi-KG4Rec's cross-modal fusion, :mod:`mmkgrec.nn.fusion`), one attention function, and the
BERT-style initialisation.

A block (:class:`SelfAttentionBlock`) is multi-head attention, dropout, residual, layer norm, then
a position-wise feed-forward network (``inner_size``, GELU or ReLU), dropout, residual, layer norm
(Vaswani et al. 2017; SASRec eq. 4-6, BERT4Rec eq. 2-5, Multi-KG4Rec 4.2.2). The block's
projections (:meth:`~SelfAttentionBlock.project`) and its tail after attention
(:meth:`~SelfAttentionBlock.tail`: output projection, residual, layer norm, feed-forward network)
are written once; :class:`~mmkgrec.nn.fusion.CrossModalBlock` uses them with keys of several
modalities. Attention always runs through :func:`attention`.

Two modes of self-attention:

* ``causal=True`` (SASRec): inputs are right-padded, so a causal mask alone keeps every real
  position away from padding; no key mask is needed.
* ``causal=False`` (BERT4Rec, the fusion): bidirectional with a key-padding mask.

``query_index`` (the last block of a model that reads a few positions per sequence): queries
are computed only at those positions, keys and values at all positions. The outputs equal the
full block's outputs there, for about half the work of a whole block.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

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


def mask_bias(mask: torch.Tensor) -> torch.Tensor:
    """The additive form (0 / -inf, float) of a bool attention mask (True = attend)."""
    return torch.zeros(mask.shape, device=mask.device).masked_fill_(~mask, float("-inf"))


def attention(q, k, v, mask=None, causal: bool = False, dropout: float = 0.0,
              training: bool = False, kernel: str = "sdpa", return_probs: bool = False):
    """Scaled dot-product attention ``softmax(q k^T / sqrt(d_h) + M) v`` for ``[B, h, Lq, d_h]``
    queries and ``[B, h, L, d_h]`` keys and values. ``mask`` is broadcastable to ``[B, h, Lq, L]``:
    bool (True = attend) or its additive form ``M`` (0 = attend, -inf = masked; see
    :func:`mask_bias`); every row must keep one key. ``causal`` without a mask: query ``i`` sees
    keys up to ``i + L - Lq``. ``dropout`` on the probabilities in training (drawn by
    :func:`fast_dropout`); ``return_probs``: also return the probabilities (before dropout).

    ``kernel`` changes the speed, not the formula: ``"sdpa"`` is
    ``F.scaled_dot_product_attention``; ``"matmul"`` is plain matrix products, which for short
    sequences with narrow heads beat the fused CPU kernel, forward and backward; under 16 keys its
    scores are laid out keys-first (``[.., L, Lq]``, softmax over dim -2): PyTorch's CPU softmax
    along a last dimension of 8 is several times slower per element than along 16. With dropout
    in training, or ``return_probs``, the probabilities are formed explicitly in either case."""
    explicit = return_probs or (training and dropout > 0.0)
    if not explicit and kernel == "sdpa":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                              is_causal=causal and mask is None)
    if mask is None and causal:
        lq, lk = q.shape[-2], k.shape[-2]
        mask = torch.ones(lq, lk, dtype=torch.bool, device=q.device).tril(lk - lq)
    scale = q.shape[-1] ** -0.5
    if not explicit and k.shape[-2] < 16:
        scores = torch.matmul(k, q.transpose(-1, -2)).mul_(scale)
        if mask is not None:
            bias = mask_bias(mask) if mask.dtype == torch.bool else mask
            scores = scores.add_(bias.transpose(-1, -2))
        return torch.matmul(torch.softmax(scores, -2).transpose(-1, -2), v)
    scores = torch.matmul(q, k.transpose(-1, -2)).mul_(scale)
    if mask is not None:
        scores = (scores.masked_fill_(~mask, float("-inf")) if mask.dtype == torch.bool
                  else scores.add_(mask))
    probs = torch.softmax(scores, -1)
    out = torch.matmul(fast_dropout(probs, dropout, training), v)
    return (out, probs) if return_probs else out


def init_bert_style(module: nn.Module, std: float) -> None:
    """RecBole's initialisation of Transformer models (BERT's): N(0, std) weights of every linear
    and embedding layer, zero biases and padding rows, unit layer norms."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, std)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
            if isinstance(m, nn.Embedding) and m.padding_idx is not None:
                with torch.no_grad():
                    m.weight[m.padding_idx].zero_()
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _query(x: torch.Tensor, query_index):
    """``(rows, positions)`` of the outputs asked for: ``query_index`` is either positions
    ``[B]`` (one per row of ``x``) or a pair ``(rows [M], positions [M])``."""
    if isinstance(query_index, (tuple, list)):
        return query_index
    return torch.arange(len(x), device=x.device), query_index


class SelfAttentionBlock(nn.Module):
    """One post-LN Transformer block (see the module docstring). ``forward(x, causal, key_mask,
    query_index, kernel)`` is self-attention; :meth:`project` and :meth:`tail` are the parts
    before and after attention, for blocks whose queries attend to other keys."""

    def __init__(self, hidden: int, n_heads: int, inner: int, hidden_dropout: float,
                 attn_dropout: float, act: str = "gelu", eps: float = 1e-12):
        super().__init__()
        if hidden % n_heads:
            raise ConfigError("n_heads", f"the width {hidden} (hidden_size, or embedding_size) is "
                              f"not a multiple of n_heads {n_heads}")
        if act not in ACTIVATIONS:
            raise ConfigError("hidden_act", f"must be one of {sorted(ACTIVATIONS)}, got {act!r}")
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

    def heads(self, t: torch.Tensor) -> torch.Tensor:
        """``[B, L, d] -> [B, h, L, d / h]``."""
        b, length, _ = t.shape
        return t.view(b, length, self.n_heads, -1).transpose(1, 2)

    def project(self, x: torch.Tensor, xq: torch.Tensor | None = None, split: bool = True):
        """``(q, k, v)``, each ``[B, L, d]``: queries, keys and values of ``x``; with ``xq``, the
        queries are those of ``xq`` only (computed with the query part of the weights). With
        ``split=False`` the projections stay joined: ``[B, L, 3d]`` (q, k, v), or with ``xq``
        ``(q, [B, L, 2d])`` (k, v)."""
        d, w, b = self.hidden, self.qkv.weight, self.qkv.bias
        if xq is None:
            qkv = F.linear(x, w, b)
            return qkv.split(d, dim=-1) if split else qkv
        kv = F.linear(x, w[d:], b[d:])
        return (F.linear(xq, w[:d], b[:d]), *(kv.split(d, dim=-1) if split else (kv,)))

    def tail(self, att: torch.Tensor, xq: torch.Tensor) -> torch.Tensor:
        """The block after attention: ``att [B, Lq, d]`` (heads concatenated) is projected
        (``W_O``), dropped out, added to the queries' input ``xq`` and layer-normed, then the
        feed-forward network, dropout, residual and layer norm."""
        h = self.ln_attn(self.drop(self.out(att)) + xq)
        return self.ln_ff(self.drop(self.ff_out(self.act(self.ff_in(h)))) + h)

    def forward(self, x: torch.Tensor, causal: bool, key_mask: torch.Tensor | None = None,
                query_index: torch.Tensor | None = None, kernel: str = "sdpa") -> torch.Tensor:
        """``x`` ``[B, L, d]``; ``key_mask`` bool ``[B, L]`` (True = real item) or its additive
        form (:func:`mask_bias`, formed once by a caller that runs many blocks), used when not
        causal; ``query_index``: positions ``[B]`` or ``(rows [M], positions [M])``: return
        ``[M, d]``, the outputs at those positions only (keys and values of each query's row are
        gathered, so several queries may share a row). ``kernel``: :func:`attention`'s."""
        mask = None
        if query_index is None:
            q, k, v = self.project(x)
            xq = x
            if not causal and key_mask is not None:
                mask = key_mask[:, None, None, :]
        else:
            rows, qpos = _query(x, query_index)
            xq = x[rows, qpos].unsqueeze(1)
            q, k, v = self.project(x, xq)
            if not (len(rows) == len(x) and torch.equal(rows, torch.arange(len(x), device=x.device))):
                k, v = k[rows], v[rows]
            pos = torch.arange(x.shape[1], device=x.device)
            if causal:
                mask = (pos[None, :] <= qpos[:, None])[:, None, None, :]
            elif key_mask is not None:
                mask = key_mask[rows][:, None, None, :]
        att = attention(self.heads(q), self.heads(k), self.heads(v), mask, causal,
                        self.attn_dropout, self.training, kernel)
        h = self.tail(att.transpose(1, 2).reshape(xq.shape), xq)
        return h if query_index is None else h.squeeze(1)


class SequenceTransformer(nn.Module):
    """``n_layers`` :class:`SelfAttentionBlock` s. ``forward(x, causal, key_mask, query_index,
    kernel)``: with ``query_index`` the last block computes only that position and ``[B, d]`` is
    returned."""

    def __init__(self, n_layers: int, hidden: int, n_heads: int, inner: int,
                 hidden_dropout: float, attn_dropout: float, act: str = "gelu",
                 eps: float = 1e-12):
        super().__init__()
        self.blocks = nn.ModuleList(
            SelfAttentionBlock(hidden, n_heads, inner, hidden_dropout, attn_dropout, act, eps)
            for _ in range(n_layers))

    def forward(self, x, causal: bool, key_mask=None, query_index=None, kernel: str = "sdpa"):
        for i, block in enumerate(self.blocks):
            last = i == len(self.blocks) - 1
            x = block(x, causal, key_mask, query_index if last else None, kernel)
        if query_index is not None and not len(self.blocks):
            x = x[_query(x, query_index)]
        return x
