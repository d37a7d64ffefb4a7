"""BPR-MF, LightGCN and the popularity baseline."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..graph.adjacency import sym_spmm
from .base import ModelInputs, Recommender, VectorModel, bpr_loss, l2_per_batch, register


class _FactorModel(VectorModel):
    """Users and items as ``embedding_size`` factors scored by inner product; BPR loss with an
    optional L2 term on the batch's ego embeddings (``reg_weight``). Subclasses may transform the
    factors in ``compute_vectors`` (graph propagation) and add terms in ``reg_terms``."""

    def __init__(self, config, inputs: ModelInputs):
        super().__init__(config, inputs)
        d = config["embedding_size"]
        self.user_emb = nn.Embedding(self.n_users, d)
        self.item_emb = nn.Embedding(self.n_items, d)
        self.reg_weight = float(config["reg_weight"])

    def compute_vectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.user_emb.weight, self.item_emb.weight

    def reg_terms(self, users, pos, neg) -> list[torch.Tensor]:
        return [self.user_emb(users), self.item_emb(pos), self.item_emb(neg)]

    def loss(self, batch):
        users, pos, neg = batch["users"], batch["pos_items"], batch["neg_items"]
        u_all, i_all = self.compute_vectors()
        # F.embedding's backward is a dense scatter-add several times faster than indexing's
        u, p, n = F.embedding(users, u_all), F.embedding(pos, i_all), F.embedding(neg, i_all)
        pos_s = (u * p).sum(-1)
        neg_s = (u.unsqueeze(1) * n).sum(-1) if n.dim() == 3 else (u * n).sum(-1)
        loss = bpr_loss(pos_s, neg_s)
        if self.reg_weight:
            loss = loss + self.reg_weight * l2_per_batch(*self.reg_terms(users, pos, neg))
        return loss


@register
class BPR(_FactorModel):
    """BPR-MF (Rendle et al., UAI 2009) with RecBole's defaults: Xavier-normal init, no L2."""

    name = "BPR"

    def __init__(self, config, inputs):
        super().__init__(config, inputs)
        nn.init.xavier_normal_(self.user_emb.weight)
        nn.init.xavier_normal_(self.item_emb.weight)


@register
class LightGCN(_FactorModel):
    """LightGCN (He et al., SIGIR 2020): ``E(k) = A_hat E(k-1)`` with the symmetric-normalised
    training graph, final embedding the mean over layers ``0..K`` (``n_layers``), BPR +
    ``reg_weight`` times the L2 of the batch's ego (layer-0) embeddings. The graph is propagated
    inside every batch, with gradients; at evaluation it is propagated once."""

    name = "LightGCN"
    requires = frozenset({"graph"})

    def __init__(self, config, inputs):
        super().__init__(config, inputs)
        nn.init.xavier_uniform_(self.user_emb.weight)
        nn.init.xavier_uniform_(self.item_emb.weight)
        self.n_layers = int(config["n_layers"])
        self.adj = inputs.graph

    def compute_vectors(self):
        x = torch.cat([self.user_emb.weight, self.item_emb.weight])
        acc = x
        for _ in range(self.n_layers):
            x = sym_spmm(self.adj, x)
            acc = acc + x
        out = acc / (self.n_layers + 1)
        return out[: self.n_users], out[self.n_users:]


@register
class Pop(Recommender):
    """Most-popular baseline: an item's score is its number of training interactions."""

    name = "Pop"
    input_type = "none"

    def __init__(self, config, inputs):
        super().__init__(config, inputs)
        self.register_buffer("counts", torch.zeros(self.n_items))
        self.fit_closed_form(inputs.train)

    def fit_closed_form(self, train):
        self.counts = torch.bincount(torch.as_tensor(train.item), minlength=self.n_items).float()

    def score_all(self, users):
        return self.counts.unsqueeze(0).expand(len(users), -1).clone()

    def score(self, users, items):
        return self.counts[items]
