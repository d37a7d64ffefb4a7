"""BPR-MF, LightGCN and the popularity baseline."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import config_value
from ..errors import ConfigError
from ..graph.adjacency import sym_spmm
from .base import (ModelInputs, Recommender, VectorModel, bpr_loss, l2_per_batch, register,
                   standardised_content)


def light_propagate(adj: torch.Tensor, ego: torch.Tensor, n_layers: int) -> torch.Tensor:
    """LightGCN's propagation: ``E(k) = A_hat E(k-1)`` from ``E(0) = ego`` and the mean of the
    layers ``0..n_layers`` (with gradients to ``ego``)."""
    if n_layers == 0:
        return ego
    x, acc = ego, None
    for _ in range(n_layers):
        x = sym_spmm(adj, x)
        # in place on fresh sums: addition's backward needs none of its inputs
        acc = x + ego if acc is None else acc.add_(x)
    return acc.mul_(1.0 / (n_layers + 1))


class _FactorModel(VectorModel):
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

    def reg_terms(self, users, pos, neg) -> list[torch.Tensor]:
        nodes = torch.cat([users, pos + self.n_users, neg.reshape(-1) + self.n_users])
        return [self.node_emb(nodes)]

    def loss(self, batch):
        users, pos, neg = batch["users"], batch["pos_items"], batch["neg_items"]
        out = self.propagate()
        b = len(users)
        # one gather over the node table: F.embedding's backward is a dense scatter-add several
        # times faster than indexing's, and one call avoids splitting the gradient
        e = F.embedding(torch.cat([users, pos + self.n_users, neg.reshape(-1) + self.n_users]), out)
        u, p, n = e[:b], e[b:2 * b], e[2 * b:]
        pos_s = (u * p).sum(-1)
        if neg.dim() == 2:
            neg_s = (u.unsqueeze(1) * n.view(b, neg.shape[1], -1)).sum(-1)
        else:
            neg_s = (u * n).sum(-1)
        loss = bpr_loss(pos_s, neg_s)
        if self.reg_weight:
            loss = loss + self.reg_weight * l2_per_batch(*self.reg_terms(users, pos, neg), n=b)
        return loss


@register
class BPR(_FactorModel):
    """BPR-MF (Rendle et al., UAI 2009) with RecBole's defaults: Xavier-normal init, no L2."""

    name = "BPR"

    def __init__(self, config, inputs):
        super().__init__(config, inputs)
        self._init_factors(nn.init.xavier_normal_)


@register
class LightGCN(_FactorModel):
    """LightGCN (He et al., SIGIR 2020): ``E(k) = A_hat E(k-1)`` with the symmetric-normalised
    training graph, final embedding the mean over layers ``0..K`` (``n_layers``), BPR +
    ``reg_weight`` times the squared L2 of the batch's ego (layer-0) embeddings divided by the
    batch size (the paper's term; RecBole's default uses unsquared norms). The graph is
    propagated inside every batch, with gradients; at evaluation it is propagated once.

    ``item_content: text|image`` (Text-/Image-LightGCN, MM-RACL-KAL's Table 4): an item's layer-0
    embedding is ``W f_i + b`` with ``f_i`` its feature standardised per dimension (as
    Text-SASRec's; items without that content get ``f_i = 0``); users keep ID embeddings and the
    L2 term covers the batch's layer-0 vectors. ``null`` (default): ID embeddings for items."""

    name = "LightGCN"
    requires = frozenset({"graph"})

    @classmethod
    def requirements(cls, config) -> frozenset:
        content = config_value(config, "item_content", None)
        if content not in (None, "text", "image"):
            raise ConfigError("item_content", f"expected null, text or image, got {content!r}")
        return cls.requires | ({content} if content else set())

    def __init__(self, config, inputs):
        self.requirements(config)
        content = config_value(config, "item_content", None)
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
        nodes = torch.cat([users, pos + self.n_users, neg.reshape(-1) + self.n_users])
        return [F.embedding(nodes, self.ego())]


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
