"""VBPR: BPR-MF with a content-based part (He & McAuley, AAAI 2016, "VBPR: Visual Bayesian
Personalized Ranking from Implicit Feedback")."""

from __future__ import annotations

import torch
from torch import nn

from ..config import config_value
from ..errors import ConfigError
from ..nn.losses import bpr_loss, l2_per_batch
from .base import (ModelInputs, VectorModel, configured_modalities, modality_features, register,
                   standardised_content)


@register
class VBPR(VectorModel):
    """VBPR, the paper's Eq. (2) with the user bias and global offset dropped (they cancel in the
    pairwise loss)::

        x_ui = beta_i + gamma_u . gamma_i + theta_u . (E f_i) + beta' . f_i

    ``f_i`` is the item's content: the features of the configured ``modalities`` (text, image or
    both, concatenated in the order text, image), used as given by the feature store (the paper's
    4096-d CNN features become whatever the encoders produce; ``feature_norm: standard``
    standardises every feature dimension over the items that have that content). ``E`` is a learned linear map
    ``[F -> visual_size]`` without bias, ``beta'`` a learned content-bias vector ``[F]``.
    An item without some content has zero rows there, so that part contributes nothing; an item
    with no content at all is scored by the ID part ``beta_i + gamma_u . gamma_i`` alone.

    Sizes (the paper's K and K', stated as config): ``gamma`` has ``embedding_size`` dims, as in
    BPR, and ``theta`` / ``E f_i`` have ``visual_size`` dims (``null``: ``embedding_size``), as in
    RecBole's VBPR (which has no ``beta_i``/``beta'``). An earlier default split
    ``embedding_size`` between the two parts, which left the collaborative part half of BPR's
    capacity and cost accuracy on ML-100K (see docs/BENCHMARKS.md).

    Loss (paper Eq. (5)): BPR ``-mean log sigmoid(x_ui - x_uj)`` plus ``reg_weight`` times the
    squared L2 norm of the batch's ``gamma_u, theta_u, gamma_i, gamma_j, beta_i, beta_j`` divided
    by the batch size. ``E`` and ``beta'`` are not in this term: the paper gives ``E`` its own
    ``lambda_E``, here ``content_reg_weight`` times ``||E||^2 + ||beta'||^2`` once per step.

    ``user_vectors``/``item_vectors`` are the augmented ``[gamma_u, theta_u, 1]`` and
    ``[gamma_i, E f_i, beta_i + beta' . f_i]``, whose inner product is ``x_ui``.

    SPEC.md "MM-RACL-KAL": the Visual BPR baseline (its citation there names it wrongly); no
    SPEC.md resolution beyond the shared ones (full ranking, training items masked)."""

    name = "VBPR"

    @classmethod
    def requirements(cls, config) -> frozenset:
        return frozenset(configured_modalities(config))

    def __init__(self, config, inputs: ModelInputs):
        super().__init__(config, inputs)
        self.modalities = configured_modalities(config)
        k1 = int(config["embedding_size"])
        k2 = config["visual_size"]
        k2 = k1 if k2 is None else k2
        if not isinstance(k2, int) or isinstance(k2, bool) or k2 < 1:
            raise ConfigError("visual_size", f"expected null or a positive integer, got "
                              f"{config['visual_size']!r}")
        norm = config_value(config, "feature_norm")
        if norm not in ("none", "standard"):
            raise ConfigError("feature_norm", f"expected none or standard, got {norm!r}")
        read = standardised_content if norm == "standard" else modality_features
        content = torch.cat([read(inputs, m, self.name)[0] for m in self.modalities], 1)
        self.register_buffer("content", content, persistent=False)  # rebuilt from inputs, not saved
        f_dim = content.shape[1]
        self.gamma_user = nn.Embedding(self.n_users, k1)
        self.gamma_item = nn.Embedding(self.n_items, k1)
        self.theta_user = nn.Embedding(self.n_users, k2)
        self.item_bias = nn.Embedding(self.n_items, 1)
        self.proj = nn.Linear(f_dim, k2, bias=False)            # E
        self.content_bias = nn.Linear(f_dim, 1, bias=False)     # beta'
        for emb in (self.gamma_user, self.gamma_item, self.theta_user):
            nn.init.xavier_normal_(emb.weight)
        nn.init.zeros_(self.item_bias.weight)
        nn.init.zeros_(self.content_bias.weight)
        self.reg_weight = float(config["reg_weight"])
        self.content_reg = float(config_value(config, "content_reg_weight"))

    # ---- scoring ------------------------------------------------------------------------
    def _pair_scores(self, users, items):
        """``x_ui`` for ``users [B]`` and ``items [B]`` or ``[B, n]``."""
        gu, tu = self.gamma_user(users), self.theta_user(users)
        if items.dim() == 2:
            gu, tu = gu.unsqueeze(1), tu.unsqueeze(1)
        f = self.content[items]
        return (self.item_bias(items).squeeze(-1) + self.content_bias(f).squeeze(-1)
                + (gu * self.gamma_item(items)).sum(-1) + (tu * self.proj(f)).sum(-1))

    def loss(self, batch):
        users, pos, neg = batch["users"], batch["pos_items"], batch["neg_items"]
        loss = bpr_loss(self._pair_scores(users, pos), self._pair_scores(users, neg))
        if self.reg_weight:
            loss = loss + self.reg_weight * l2_per_batch(
                self.gamma_user(users), self.theta_user(users), self.gamma_item(pos),
                self.gamma_item(neg), self.item_bias(pos), self.item_bias(neg))
        if self.content_reg:  # the paper's lambda_E on E (and beta'), once per step
            loss = loss + self.content_reg * (self.proj.weight.square().sum()
                                              + self.content_bias.weight.square().sum())
        return loss

    def compute_vectors(self):
        ones = torch.ones(self.n_users, 1, device=self.content.device)
        u = torch.cat([self.gamma_user.weight, self.theta_user.weight, ones], 1)
        bias = self.item_bias.weight + self.content_bias(self.content)
        i = torch.cat([self.gamma_item.weight, self.proj(self.content), bias], 1)
        return u, i
