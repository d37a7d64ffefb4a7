"""Fine-grained cross-modal fusion (Multi-KG4Rec 4.2.2): a self-attention transformer per
modality, then blocks of cross multi-head attention in which each modality's queries attend over
the keys and values of every modality, concatenated along the sequence.

Per block and head, modality ``m`` has its own projections ``Q_m = X_m W_Q^m``,
``K_m = X_m W_K^m``, ``V_m = X_m W_V^m`` and
``head_m = softmax(Q_m [K_1; ...; K_M]^T / sqrt(d_h)) [V_1; ...; V_M]`` (2n keys for two
modalities; padded positions masked in every modality's half). Heads are concatenated and
projected (``W_O^m``), then residual + layer norm, a ReLU feed-forward network, residual + layer
norm (post-norm, as :class:`~mmkgrec.nn.transformer.SelfAttentionBlock`, whose layers each block
reuses as its per-modality parameters).

``cross`` says which modalities' queries may attend across: a modality whose entry is false
attends to its own keys only (the other halves are masked, so their weight is exactly zero).

Speed (the fusion runs over every item in every CF step): without dropout, the queries of all
modalities are concatenated along the sequence and attend in one batched product against the
shared ``[K_1; ...; K_M]`` keys, with an additive ``0 / -inf`` mask (:func:`attention_bias`)
carrying both the padding and the cross permissions; attention is computed with plain matrix
products (:func:`biased_attention`), which on CPU is 2-3x faster, forward and backward, than
``scaled_dot_product_attention`` for these short sequences (n = 8, 8-wide heads). Softmax rows
are independent, so the outputs equal the per-modality computation. With attention or hidden
dropout in training, the per-modality path is kept, so the random masks are drawn as before.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .transformer import SelfAttentionBlock, SequenceTransformer, attention, fast_dropout

FUSION_MODES = ("both", "none", "t2v", "v2t")


def biased_attention(q, k, v, bias) -> torch.Tensor:
    """``softmax(q k^T / sqrt(d_h) + bias) v`` for ``[B, h, Lq, d_h]`` queries, ``[B, h, L, d_h]``
    keys and values and an additive float ``bias`` broadcastable to ``[B, h, Lq, L]`` (0 = attend,
    -inf = masked; every row must keep one finite entry). Plain matrix products: for short
    sequences with narrow heads they beat the fused CPU kernel, forward and backward. Under 16
    keys the scores are laid out keys-first (``[.., L, Lq]``, softmax over dim -2): PyTorch's CPU
    softmax along a last dimension of 8 is several times slower per element than along 16."""
    scale = q.shape[-1] ** -0.5
    if k.shape[-2] < 16:
        scores = torch.matmul(k, q.transpose(-1, -2)).mul_(scale).add_(bias.transpose(-1, -2))
        return torch.matmul(torch.softmax(scores, -2).transpose(-1, -2), v)
    scores = torch.matmul(q, k.transpose(-1, -2)).mul_(scale).add_(bias)
    return torch.matmul(torch.softmax(scores, -1), v)


def mask_bias(mask: torch.Tensor) -> torch.Tensor:
    """The additive form (0 / -inf, float) of a bool attention mask (True = attend)."""
    return torch.zeros(mask.shape, device=mask.device).masked_fill_(~mask, float("-inf"))


def self_attention_fast(blk: SelfAttentionBlock, x: torch.Tensor, bias: torch.Tensor):
    """``blk(x, False, key_mask)`` (bidirectional, no dropout) with :func:`biased_attention`;
    ``bias`` is the key mask's additive form ``[B, 1, 1, n]``."""
    q, k, v = F.linear(x, blk.qkv.weight, blk.qkv.bias).split(blk.hidden, dim=-1)
    att = biased_attention(blk._heads(q), blk._heads(k), blk._heads(v), bias)
    h = blk.ln_attn(blk.out(att.transpose(1, 2).reshape(x.shape)) + x)
    return blk.ln_ff(blk.ff_out(blk.act(blk.ff_in(h))) + h)


def cross_permissions(modalities, mode: str) -> dict[str, bool]:
    """Which modalities' queries attend across, for the ablations of Multi-KG4Rec Table 4:
    ``both``: all; ``t2v``: text only (visual queries see visual keys only); ``v2t``: image only."""
    if mode not in ("both", "t2v", "v2t"):
        raise ValueError(f"cross-modal mode must be both, t2v or v2t, got {mode!r}")
    allowed = {"both": set(modalities), "t2v": {"text"}, "v2t": {"image"}}[mode]
    return {m: m in allowed for m in modalities}


class CrossModalBlock(nn.Module):
    """One cross multi-head attention block over the sequences of ``modalities`` (see the module
    docstring). ``forward(xs, key_mask, first_only, return_weights)``: ``xs[m] [B, n, d]``,
    ``key_mask [B, n]`` bool (True = real node); with ``first_only`` queries are computed at
    position 0 only and ``[B, 1, d]`` is returned per modality. With ``return_weights`` the
    attention probabilities ``[B, h, Lq, M * n]`` per query modality are returned too (keys in
    the order of ``modalities``)."""

    def __init__(self, modalities, hidden: int, n_heads: int, inner: int, dropout: float,
                 cross: dict[str, bool]):
        super().__init__()
        self.modalities = tuple(modalities)
        self.cross = dict(cross)
        self.attn_dropout = dropout
        self.layers = nn.ModuleDict({m: SelfAttentionBlock(hidden, n_heads, inner, dropout, dropout,
                                                           act="relu")
                                     for m in self.modalities})

    def key_masks(self, key_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per query modality, the bool mask ``[B, M * n]`` over the concatenated keys."""
        off = torch.zeros_like(key_mask)
        return {m: torch.cat([key_mask if (o == m or self.cross[m]) else off
                              for o in self.modalities], 1) for m in self.modalities}

    def attention_bias(self, key_mask: torch.Tensor, n_queries: int) -> torch.Tensor:
        """The additive mask of :meth:`fast_forward`: ``[B, 1, 1, M * n]`` when every modality's
        queries see the same keys, else ``[B, 1, M * n_queries, M * n]`` (the queries of each
        modality, ``n_queries`` each, in the order of ``modalities``)."""
        masks = self.key_masks(key_mask)
        if all(self.cross.values()):
            return mask_bias(masks[self.modalities[0]][:, None, None, :])
        rows = torch.stack([masks[m] for m in self.modalities], 1)  # [B, M, M * n]
        rows = rows[:, :, None, :].expand(-1, -1, n_queries, -1).flatten(1, 2)
        return mask_bias(rows[:, None])

    def uses_dropout(self) -> bool:
        """True when a training forward draws random masks (attention or hidden dropout)."""
        return self.training and (self.attn_dropout > 0 or any(
            blk.drop.p > 0 for blk in self.layers.values()))

    def fast_forward(self, xs: dict, bias: torch.Tensor, first_only: bool = False) -> dict:
        """:meth:`forward` without dropout: one attention product for the queries of every
        modality (concatenated along the sequence) against the shared keys; ``bias`` from
        :meth:`attention_bias` (``n_queries`` = 1 with ``first_only``, else ``n``)."""
        x0 = xs[self.modalities[0]]
        b, n, d = x0.shape
        qs, ks, vs = [], [], []
        for m in self.modalities:
            w, bias_ = self.layers[m].qkv.weight, self.layers[m].qkv.bias
            if first_only:  # queries at position 0 only
                qs.append(F.linear(xs[m][:, :1], w[:d], bias_[:d]))
                k, v = F.linear(xs[m], w[d:], bias_[d:]).split(d, dim=-1)
            else:
                q, k, v = F.linear(xs[m], w, bias_).split(d, dim=-1)
                qs.append(q)
            ks.append(k)
            vs.append(v)
        heads = self.layers[self.modalities[0]]._heads
        att = biased_attention(heads(torch.cat(qs, 1)), heads(torch.cat(ks, 1)),
                               heads(torch.cat(vs, 1)), bias)
        lq = qs[0].shape[1]
        att = att.transpose(1, 2).reshape(b, len(self.modalities) * lq, d)
        out = {}
        for m, a in zip(self.modalities, att.split(lq, 1)):
            blk = self.layers[m]
            xq = xs[m][:, :1] if first_only else xs[m]
            h = blk.ln_attn(blk.out(a) + xq)
            out[m] = blk.ln_ff(blk.ff_out(blk.act(blk.ff_in(h))) + h)
        return out

    def forward(self, xs: dict, key_mask: torch.Tensor, first_only: bool = False,
                return_weights: bool = False):
        if not (return_weights or self.uses_dropout()):
            n_queries = 1 if first_only else key_mask.shape[1]
            return self.fast_forward(xs, self.attention_bias(key_mask, n_queries), first_only)
        d = next(iter(xs.values())).shape[-1]
        qs, ks, vs = {}, {}, {}
        for m in self.modalities:
            blk = self.layers[m]
            q, ks[m], vs[m] = F.linear(xs[m], blk.qkv.weight, blk.qkv.bias).split(d, dim=-1)
            qs[m] = q[:, :1] if first_only else q
        layer0 = self.layers[self.modalities[0]]
        k = layer0._heads(torch.cat([ks[m] for m in self.modalities], 1))
        v = layer0._heads(torch.cat([vs[m] for m in self.modalities], 1))
        masks = self.key_masks(key_mask)
        out, weights = {}, {}
        for m in self.modalities:
            blk = self.layers[m]
            q = blk._heads(qs[m])
            mask = masks[m][:, None, None, :]
            if return_weights:
                scores = torch.matmul(q, k.transpose(-1, -2)) * (q.shape[-1] ** -0.5)
                probs = torch.softmax(scores.masked_fill(~mask, float("-inf")), -1)
                weights[m] = probs
                att = torch.matmul(fast_dropout(probs, self.attn_dropout, self.training), v)
            else:
                att = attention(q, k, v, mask, False, self.attn_dropout, self.training)
            xq = xs[m][:, :1] if first_only else xs[m]
            att = att.transpose(1, 2).reshape(xq.shape)
            h = blk.ln_attn(blk.drop(blk.out(att)) + xq)
            out[m] = blk.ln_ff(blk.drop(blk.ff_out(blk.act(blk.ff_in(h)))) + h)
        return (out, weights) if return_weights else out


class ModalFusion(nn.Module):
    """Multi-KG4Rec's fusion module: per modality a :class:`SequenceTransformer` of ``self_layers``
    bidirectional blocks with a key-padding mask (the "text transformer" and "visual transformer"),
    then ``n_blocks`` :class:`CrossModalBlock` s. ``forward(xs, key_mask)`` returns each
    modality's output at position 0 (the item itself), ``[B, d]``; the last block computes that
    position's queries only."""

    def __init__(self, modalities, hidden: int, n_blocks: int, n_heads: int, self_layers: int,
                 inner: int, dropout: float, mode: str = "both"):
        super().__init__()
        self.modalities = tuple(modalities)
        cross = cross_permissions(self.modalities, mode)
        self.self_attn = nn.ModuleDict({m: SequenceTransformer(self_layers, hidden, n_heads, inner,
                                                               dropout, dropout, act="relu")
                                        for m in self.modalities})
        self.blocks = nn.ModuleList(CrossModalBlock(self.modalities, hidden, n_heads, inner,
                                                    dropout, cross) for _ in range(n_blocks))

    def forward(self, xs: dict, key_mask: torch.Tensor, return_weights: bool = False):
        if not (return_weights or self.uses_dropout()):
            return self.fast_forward(xs, key_mask)
        xs = {m: self.self_attn[m](xs[m], False, key_mask) for m in self.modalities}
        weights = []
        for k, blk in enumerate(self.blocks):
            last = k == len(self.blocks) - 1
            if return_weights:
                xs, w = blk(xs, key_mask, first_only=last, return_weights=True)
                weights.append(w)
            else:
                xs = blk(xs, key_mask, first_only=last)
        out = {m: x[:, 0] for m, x in xs.items()}
        return (out, weights) if return_weights else out

    def uses_dropout(self) -> bool:
        """True when a training forward draws random masks (then the per-modality path runs, so
        the masks are drawn in the same order as ever)."""
        return self.training and (any(b.uses_dropout() for b in self.blocks) or any(
            blk.attn_dropout > 0 or blk.drop.p > 0
            for t in self.self_attn.values() for blk in t.blocks))

    def fast_forward(self, xs: dict, key_mask: torch.Tensor) -> dict:
        """:meth:`forward` without dropout (:func:`self_attention_fast`,
        :meth:`CrossModalBlock.fast_forward`); the masks' additive forms are built once."""
        bias = mask_bias(key_mask[:, None, None, :])
        for m in self.modalities:
            for blk in self.self_attn[m].blocks:
                xs = {**xs, m: self_attention_fast(blk, xs[m], bias)}
        n = key_mask.shape[1]
        for k, blk in enumerate(self.blocks):
            last = k == len(self.blocks) - 1
            xs = blk.fast_forward(xs, blk.attention_bias(key_mask, 1 if last else n), last)
        return {m: x[:, 0] for m, x in xs.items()}

    @torch.no_grad()
    def modality_mass(self, xs: dict, key_mask: torch.Tensor) -> torch.Tensor:
        """``[B, M]``: the share of cross-attention the item's own position (query 0) puts on
        each modality's keys, averaged over heads, blocks and query modalities (rows sum to 1;
        columns in the order of ``modalities``)."""
        _, weights = self.forward(xs, key_mask, return_weights=True)
        n, parts = key_mask.shape[1], []
        for w in weights:
            for p in w.values():  # [B, h, Lq, M * n]
                q0 = p[:, :, 0].mean(1)  # [B, M * n]
                parts.append(q0.view(len(q0), len(self.modalities), n).sum(-1))
        return torch.stack(parts).mean(0)
