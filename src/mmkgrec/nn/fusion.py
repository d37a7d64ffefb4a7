"""Fusion of representations: Multi-KG4Rec's fine-grained cross-modal fusion (4.2.2) and
MM-RACL-KAL's gated fusion (3.3.3, eq. 11-12).

**Cross-modal fusion** (:class:`ModalFusion`): a self-attention transformer per modality, then
blocks of cross multi-head attention in which each modality's queries attend over the keys and
values of every modality, concatenated along the sequence (SPEC.md "Multi-KG4Rec",
fine-grained fusion).

Per block and head, modality ``m`` has its own projections ``Q_m = X_m W_Q^m``,
``K_m = X_m W_K^m``, ``V_m = X_m W_V^m`` and
``head_m = softmax(Q_m [K_1; ...; K_M]^T / sqrt(d_h)) [V_1; ...; V_M]`` (2n keys for two
modalities; padded positions masked in every modality's half). Heads are concatenated and
projected (``W_O^m``), then residual + layer norm, a ReLU feed-forward network, residual + layer
norm: each modality's parameters are a :class:`~mmkgrec.nn.transformer.SelfAttentionBlock`, whose
projections and tail the block uses, and attention is :func:`~mmkgrec.nn.transformer.attention`
with an additive mask (:meth:`CrossModalBlock.attention_bias`) carrying both the padding and the
cross permissions.

``cross`` says which modalities' queries may attend across: a modality whose entry is false
attends to its own keys only (the other halves are masked, so their weight is exactly zero).

Speed (the fusion runs over every item in every CF step): without dropout, the queries of all
modalities are concatenated along the sequence and attend in one product against the shared
``[K_1; ...; K_M]`` keys, with the ``"matmul"`` kernel, which on CPU is 2-3x faster, forward and
backward, than ``scaled_dot_product_attention`` for these short sequences (n = 8, 8-wide heads).
Softmax rows are independent, so the outputs equal the per-modality computation. With attention
or hidden dropout in training (or when the weights are read), the modalities attend one after
another, so the random masks are drawn in the same order as ever.

**Gated fusion** (:class:`GatedFusion`): ``g = sigmoid(W_g [a; b] + b_g)``,
``out = g a + (1 - g) b`` (MM-RACL-KAL eq. 11-12: the dynamic and static user interests).
"""

from __future__ import annotations

import torch
from torch import nn

from .transformer import SelfAttentionBlock, SequenceTransformer, attention, mask_bias

FUSION_MODES = ("both", "none", "t2v", "v2t")


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
        """The additive mask of the concatenated queries: ``[B, 1, 1, M * n]`` when every
        modality's queries see the same keys, else ``[B, 1, M * n_queries, M * n]`` (the queries
        of each modality, ``n_queries`` each, in the order of ``modalities``)."""
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

    def forward(self, xs: dict, key_mask: torch.Tensor, first_only: bool = False,
                return_weights: bool = False):
        lq = 1 if first_only else key_mask.shape[1]
        bias = self.attention_bias(key_mask, lq)
        # random masks or weights: one modality at a time (masks drawn in modality order)
        one_by_one = return_weights or self.uses_dropout()
        qs, ks, vs = [], [], []
        for m in self.modalities:
            x = xs[m]
            if one_by_one:  # every query projected, then those asked for (as this path always did)
                q, k, v = self.layers[m].project(x)
                q = q[:, :1] if first_only else q
            else:  # queries at the positions asked for only
                q, k, v = self.layers[m].project(x, x[:, :1] if first_only else None)
            qs.append(q)
            ks.append(k)
            vs.append(v)
        heads = self.layers[self.modalities[0]].heads
        k, v = heads(torch.cat(ks, 1)), heads(torch.cat(vs, 1))
        # (the queries' inputs for the residuals are sliced after attention, as they always
        # were: the order in which autograd sums a tensor's gradients follows it)
        if not one_by_one:
            att = attention(heads(torch.cat(qs, 1)), k, v, bias, kernel="matmul")
            att = att.transpose(1, 2).reshape(len(att), len(self.modalities) * lq, -1)
            return {m: self.layers[m].tail(a, xs[m][:, :1] if first_only else xs[m])
                    for m, a in zip(self.modalities, att.split(lq, 1))}
        out, weights = {}, {}
        for j, (m, q) in enumerate(zip(self.modalities, qs)):
            blk = self.layers[m]
            bias_m = bias if bias.shape[2] == 1 else bias[:, :, j * lq:(j + 1) * lq]
            att = attention(blk.heads(q), k, v, bias_m, dropout=self.attn_dropout,
                            training=self.training, return_probs=return_weights)
            if return_weights:
                att, weights[m] = att
            xq = xs[m][:, :1] if first_only else xs[m]
            out[m] = blk.tail(att.transpose(1, 2).reshape(xq.shape), xq)
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
        # scoring runs the self-attention with the "matmul" kernel (faster here); reading the
        # weights keeps the fused kernel, with which Fig. 4's case study has been computed
        kernel = "sdpa" if return_weights else "matmul"
        xs = {m: self.self_attn[m](xs[m], False, key_mask, kernel=kernel) for m in self.modalities}
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
        """True when a training forward draws random masks (in its self-attention or in a cross
        block)."""
        return self.training and (any(b.uses_dropout() for b in self.blocks) or any(
            blk.attn_dropout > 0 or blk.drop.p > 0
            for t in self.self_attn.values() for blk in t.blocks))

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


class GatedFusion(nn.Linear):
    """MM-RACL-KAL's gate (3.3.3, eq. 11-12): ``g = sigmoid(W_g [a; b] + b_g)``,
    ``out = g a + (1 - g) b``, elementwise. The module is the gate's linear map ``W_g``
    (``[2d -> d]``, parameters ``weight`` and ``bias``) with this two-input ``forward``."""

    def __init__(self, dim: int):
        super().__init__(2 * dim, dim)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        g = torch.sigmoid(super().forward(torch.cat([a, b], -1)))
        return g * a + (1.0 - g) * b
