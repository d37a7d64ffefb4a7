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
Softmax rows are independent, so the outputs equal the per-modality computation. Each
modality's projections are copied once, head-major, into the shared queries, keys and values (no
further copy in the attention products), and the additive masks, which
depend on the BFS mask only, are formed once and kept (:meth:`ModalFusion.masks`). With attention
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
                return_weights: bool = False, bias: torch.Tensor | None = None):
        """``bias``: :meth:`attention_bias` of ``key_mask`` for these queries, when the caller
        has it already (it depends on the mask only: :class:`ModalFusion` forms it once per
        pass)."""
        lq = 1 if first_only else key_mask.shape[1]
        if bias is None:
            bias = self.attention_bias(key_mask, lq)
        # random masks or weights: one modality at a time (masks drawn in modality order)
        if not (return_weights or self.uses_dropout()):
            return self._fused(xs, bias, first_only)
        qs, ks, vs = [], [], []
        for m in self.modalities:
            q, k, v = self.layers[m].project(xs[m])  # every query projected, then those asked for
            qs.append(q[:, :1] if first_only else q)
            ks.append(k)
            vs.append(v)
        heads = self.layers[self.modalities[0]].heads
        k, v = heads(torch.cat(ks, 1)), heads(torch.cat(vs, 1))
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

    def _fused(self, xs: dict, bias: torch.Tensor, first_only: bool) -> dict:
        """The block without dropout: the queries of every modality attend in one product
        against the shared keys (see the module docstring). Each modality's joined projections
        are viewed head-major and written by one copy (a concatenation of strided views) into
        the queries ``[B, h, M * Lq, d_h]`` and the keys and values ``[2, B, h, M * n, d_h]``,
        which the attention products read without further copies (concatenating ``[B, L, d]``
        first and splitting heads after cost a second copy in each direction; assigning into
        preallocated slices a clone of the buffer's gradient per slice). The output is laid out
        modality-major ``[M, B, Lq, d]`` by one copy, so that each modality's tail reads a
        contiguous block."""
        mods = self.modalities
        b, n, d = xs[mods[0]].shape
        lq, n_mod = (1 if first_only else n), len(mods)
        h = self.layers[mods[0]].n_heads
        dh = d // h
        qs, kvs = [], []
        for m in mods:
            x, blk = xs[m], self.layers[m]
            if first_only:  # queries at position 0 only
                qm, kvm = blk.project(x, x[:, :1], split=False)
                qs.append(qm.view(b, 1, h, dh).transpose(1, 2))
                kvs.append(kvm.view(b, n, 2, h, dh).permute(2, 0, 3, 1, 4))
            else:
                qkv = blk.project(x, split=False).view(b, n, 3, h, dh).permute(2, 0, 3, 1, 4)
                qm, kvm = qkv.split([1, 2])
                qs.append(qm.squeeze(0))
                kvs.append(kvm)
        q, kv = torch.cat(qs, 2), torch.cat(kvs, 3)
        # unbind and split rather than indexing: their backward passes stack or concatenate the
        # parts' gradients, where an index's fills a zero tensor of the whole per part (the
        # same values: the parts are disjoint)
        att = attention(q, *kv.unbind(0), bias, kernel="matmul")  # [B, h, M * Lq, dh]
        att = att.view(b, h, n_mod, lq, dh).permute(2, 0, 3, 1, 4).reshape(n_mod, b, lq, d)
        # (the queries' inputs for the residuals are sliced after attention, as they always
        # were: the order in which autograd sums a tensor's gradients follows it)
        return {m: self.layers[m].tail(att_m, xs[m][:, :1] if first_only else xs[m])
                for att_m, m in zip(att.unbind(0), mods)}


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

    def masks(self, key_mask: torch.Tensor) -> tuple:
        """The additive masks a pass over ``key_mask`` uses: the self-attention's ``[B, n]``, the
        cross blocks' for all queries and for the last block's position-0 queries
        (:meth:`CrossModalBlock.attention_bias`). They depend on the mask only, which is the
        same buffer in every training step: formed once and kept while that tensor (same object,
        same version) is passed."""
        hit = self.__dict__.get("_mask_cache")
        if hit is not None and hit[0] is key_mask and hit[1] == key_mask._version:
            return hit[2]
        blk = self.blocks[0] if len(self.blocks) else None
        n = key_mask.shape[1]
        masks = (mask_bias(key_mask), blk and blk.attention_bias(key_mask, n),
                 blk and blk.attention_bias(key_mask, 1))
        self.__dict__["_mask_cache"] = (key_mask, key_mask._version, masks)
        return masks

    def forward(self, xs: dict, key_mask: torch.Tensor, return_weights: bool = False):
        if return_weights:  # reading the weights keeps the fused kernel (Fig. 4's case study)
            xs = {m: self.self_attn[m](xs[m], False, key_mask) for m in self.modalities}
            weights = []
            for k, blk in enumerate(self.blocks):
                xs, w = blk(xs, key_mask, first_only=k == len(self.blocks) - 1,
                            return_weights=True)
                weights.append(w)
            return {m: x[:, 0] for m, x in xs.items()}, weights
        # scoring: the "matmul" kernel (faster here) and the additive masks formed once
        self_bias, bias_all, bias_first = self.masks(key_mask)
        xs = {m: self.self_attn[m](xs[m], False, self_bias, kernel="matmul")
              for m in self.modalities}
        for k, blk in enumerate(self.blocks):
            last = k == len(self.blocks) - 1
            xs = blk(xs, key_mask, first_only=last, bias=bias_first if last else bias_all)
        return {m: x[:, 0] for m, x in xs.items()}

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
