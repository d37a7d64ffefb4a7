"""LightGCN (He et al., SIGIR 2020, "LightGCN: Simplifying and Powering Graph Convolution
Network for Recommendation")."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import config_value
from ..errors import ConfigError
from ..nn.propagation import light_propagate, light_propagate_without
from .base import register, standardised_content
from .factor_base import FactorModel


@register
class LightGCN(FactorModel):
    """LightGCN (He et al., SIGIR 2020).

    * Light graph convolution (eq. 3, matrix form eq. 7): ``E(k) = A_hat E(k-1)`` with the
      symmetric-normalised training graph (:func:`~mmkgrec.nn.propagation.light_propagate`).
    * Layer combination (eq. 4, 8): the final embedding is the mean over layers ``0..K``
      (``n_layers``, ``alpha_k = 1 / (K + 1)``); score ``e_u . e_i`` (eq. 5).
    * Loss (eq. 15): BPR + ``reg_weight`` times the squared L2 of the batch's ego (layer-0)
      embeddings divided by the batch size (the paper's term; RecBole's default uses unsquared
      norms). The graph is propagated inside every batch, with gradients; at evaluation it is
      propagated once.

    ``item_content: text|image`` (Text-/Image-LightGCN, MM-RACL-KAL's Table 4): an item's layer-0
    embedding is ``W f_i + b`` with ``f_i`` its feature standardised per dimension (as
    Text-SASRec's, **resolution**: the scales of different encoders differ by orders of
    magnitude; items without that content get ``f_i = 0``); users keep ID embeddings and the L2
    term covers the batch's layer-0 vectors. ``null`` (default): ID embeddings for items.

    Reasons (explanations, post-processing): a user's vector is propagated from their edges, so
    ``scores_without_history`` drops the user's edges to the removed items from the training
    graph, normalises it again (eq. 7's ``A_hat`` with the new degrees), reruns the propagation
    and rescores: exactly the score of these weights on a training graph without those
    interactions.

    SPEC.md "MM-RACL-KAL": a baseline (with Text-/Image-LightGCN, Table 4); the same propagation
    is MM-RACL-KAL's static interest. No SPEC.md resolution beyond the shared ones."""

    name = "LightGCN"
    requires = frozenset({"graph"})
    history_reasons = ("the user's edges to the items leave the normalised training graph, which "
                       "is propagated again")

    @classmethod
    def requirements(cls, config) -> frozenset:
        content = config_value(config, "item_content")
        if content not in (None, "text", "image"):
            raise ConfigError("item_content", f"expected null, text or image, got {content!r}")
        return cls.requires | ({content} if content else set())

    def __init__(self, config, inputs):
        self.requirements(config)
        content = config_value(config, "item_content")
        super().__init__(config, inputs, item_rows=content is None)
        self.content = content
        self._init_factors(nn.init.xavier_uniform_)
        self.n_layers = int(config["n_layers"])
        self.adj = inputs.graph
        if content:
            mat, _ = standardised_content(inputs, content, self.name)
            self.register_buffer("content_features", mat, persistent=False)
            self.content_proj = nn.Linear(mat.shape[1], self.node_emb.weight.shape[1])
            nn.init.xavier_uniform_(self.content_proj.weight)
            nn.init.zeros_(self.content_proj.bias)

    def ego(self) -> torch.Tensor:
        """Layer-0 vectors of every node (users, then items)."""
        if not self.content:
            return self.node_emb.weight
        return torch.cat([self.node_emb.weight, self.content_proj(self.content_features)])

    def propagate(self):
        return light_propagate(self.adj, self.ego(), self.n_layers)

    def reg_terms(self, users, pos, neg):
        if not self.content:
            return super().reg_terms(users, pos, neg)
        return [F.embedding(self.batch_nodes(users, pos, neg), self.ego())]

    # ---- the model's own reasons (re-propagation) -------------------------------------------
    def history_items(self, user: int) -> list[int]:
        a, b = int(self.adj.crow_indices()[user]), int(self.adj.crow_indices()[user + 1])
        return sorted(int(j) - self.n_users for j in self.adj.col_indices()[a:b].tolist())

    def scores_without_history(self, user, item, removals):
        ego = self.ego()
        out = []
        for items in removals:
            z = light_propagate_without(self.adj, ego, self.n_layers, user, items, self.n_users,
                                        [user, self.n_users + item])
            out.append(z[0] @ z[1])
        return torch.stack(out)
