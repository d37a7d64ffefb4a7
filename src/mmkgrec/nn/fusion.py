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
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .transformer import SelfAttentionBlock, SequenceTransformer, attention, fast_dropout

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

    def forward(self, xs: dict, key_mask: torch.Tensor, first_only: bool = False,
                return_weights: bool = False):
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
