"""The base of factor models (BPR-MF, LightGCN, MMGCN): users and items as vectors in one node
table, scored by inner product and trained with BPR (:mod:`mmkgrec.nn.losses`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.losses import bpr_loss, l2_per_batch, pair_scores
from .base import ModelInputs, VectorModel


class FactorModel(VectorModel):
    """Users and items as ``embedding_size`` factors scored by inner product; BPR loss with an
    optional L2 term on the batch's ego embeddings (``reg_weight``).

    All factors live in one table ``node_emb`` (users ``0..n_users-1``, then items), the node
    order of the user-item graph, so graph models propagate it without copying. Subclasses may
    transform the table in ``propagate`` and add terms in ``reg_terms``."""

    def __init__(self, config, inputs: ModelInputs, item_rows: bool = True):
        super().__init__(config, inputs)
        rows = self.n_users + (self.n_items if item_rows else 0)
        self.node_emb = nn.Embedding(rows, config["embedding_size"])
        self.reg_weight = float(config["reg_weight"])

    def _init_factors(self, init) -> None:
        """Initialise users and items as two tables would be (fan computed per part)."""
        with torch.no_grad():
            init(self.node_emb.weight[: self.n_users])
            if len(self.node_emb.weight) > self.n_users:
                init(self.node_emb.weight[self.n_users:])

    def propagate(self) -> torch.Tensor:
        """Final node vectors ``[n_users + n_items, d]``."""
        return self.node_emb.weight

    def compute_vectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.propagate()
        return out[: self.n_users], out[self.n_users:]

    def batch_nodes(self, users, pos, neg) -> torch.Tensor:
        """Node-table rows of a batch: its users, positives, then negatives (flattened)."""
        return torch.cat([users, pos + self.n_users, neg.reshape(-1) + self.n_users])

    def reg_terms(self, users, pos, neg) -> list[torch.Tensor]:
        return [self.node_emb(self.batch_nodes(users, pos, neg))]

    def loss(self, batch):
        users, pos, neg = batch["users"], batch["pos_items"], batch["neg_items"]
        out = self.propagate()
        b = len(users)
        # one gather over the node table: F.embedding's backward is a dense scatter-add several
        # times faster than indexing's, and one call avoids splitting the gradient
        e = F.embedding(self.batch_nodes(users, pos, neg), out)
        u, p, n = e[:b], e[b:2 * b], e[2 * b:]
        loss = bpr_loss(*pair_scores(u, p, n.view(b, neg.shape[1], -1) if neg.dim() == 2 else n))
        if self.reg_weight:
            loss = loss + self.reg_weight * l2_per_batch(*self.reg_terms(users, pos, neg), n=b)
        return loss
