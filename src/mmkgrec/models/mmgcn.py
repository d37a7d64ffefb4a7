"""MMGCN: one graph convolution per modality over the user-item graph (Wei et al., ACM MM 2019,
"MMGCN: Multi-modal Graph Convolution Network for Personalized Recommendation of Micro-video")."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..graph.adjacency import bipartite_adjacency, row_normalize, spmm, to_torch_csr
from .base import ModelInputs, configured_modalities, modality_features, register
from .mf import _FactorModel

AGGREGATIONS = ("mean", "sum")
COMBINATIONS = ("concat", "add")


class _ModalityGCN(nn.Module):
    """The graph of one modality ``m``: layer-0 user nodes are a learned preference embedding
    ``[n_users, latent_size]``, item nodes ``W_0 f_i + b_0`` (the item's features of ``m``
    projected to ``latent_size``; zero for items without that content). Then ``n_layers`` of

    * aggregation (paper Eq. (1)-(2), mean aggregator):
      ``h_v = LeakyReLU(W_1 * mean_{j in N(v)} x_j + b_1)``
    * combination (Eq. (5)-(7)): ``x_hat_v = LeakyReLU(W_2 x_v + b_2) + id_v`` (the node's
      representation moved into the ID space plus its shared ID embedding), then
      ``concat``: ``x_v <- LeakyReLU(W_3 [h_v ; x_hat_v] + b_3)`` (Eq. 6) or
      ``add``: ``x_v <- LeakyReLU(W_3 h_v + b_3 + x_hat_v)`` (Eq. 7).

    Layer 1 works in ``latent_size`` dims and outputs ``embedding_size``; later layers stay in
    ``embedding_size``. Weights are shared by user and item nodes within a modality."""

    def __init__(self, feat_dim: int, n_users: int, latent: int, emb: int, n_layers: int,
                 combination: str):
        super().__init__()
        self.n_users = n_users
        self.combination = combination
        self.preference = nn.Embedding(n_users, latent)
        nn.init.xavier_normal_(self.preference.weight)
        self.project = nn.Linear(feat_dim, latent)
        dims = [latent] + [emb] * n_layers
        self.aggregate = nn.ModuleList(nn.Linear(dims[k], dims[k]) for k in range(n_layers))
        self.to_id = nn.ModuleList(nn.Linear(dims[k], emb) for k in range(n_layers))
        self.combine = nn.ModuleList(
            nn.Linear(dims[k] + emb if combination == "concat" else dims[k], emb)
            for k in range(n_layers))
        for lin in (self.project, *self.aggregate, *self.to_id, *self.combine):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, feat, mask, ids, adj, adj_t):
        x = torch.cat([self.preference.weight, self.project(feat) * mask.unsqueeze(1)])
        for agg, to_id, comb in zip(self.aggregate, self.to_id, self.combine):
            h = F.leaky_relu(agg(spmm(adj, adj_t, x)))
            x_hat = F.leaky_relu(to_id(x)) + ids
            if self.combination == "concat":
                x = F.leaky_relu(comb(torch.cat([h, x_hat], 1)))
            else:
                x = F.leaky_relu(comb(h) + x_hat)
        return x


@register
class MMGCN(_FactorModel):
    """MMGCN: a :class:`_ModalityGCN` per configured modality, all on the same graph (the
    training interactions), sharing the user/item ID embeddings ``id`` (``embedding_size``).
    Final vectors (Eq. (8)): ``u* = sum_m x_u^(m, L)``, ``i* = sum_m x_i^(m, L)``; score
    ``u* . i*`` (Eq. (9)).

    Aggregation ``mean`` uses the row-normalised adjacency ``D^-1 A`` (the paper's mean
    aggregator; the max-pooling one is not implemented), ``sum`` the binary ``A`` (MMGCN's code's
    ``add`` mode). Nodes without training interactions aggregate nothing (``h = LeakyReLU(b_1)``).

    Loss (Eq. (10)): BPR plus ``reg_weight`` times the squared L2 norm of the batch's ID
    embeddings and the batch users' preference embeddings of every modality, divided by the batch
    size (as MMGCN's code); the linear layers are not in it (``weight_decay`` shrinks them).
    Propagation is full-graph inside every training batch, with gradients, and once per
    evaluation in ``prepare_eval``."""

    name = "MMGCN"

    @classmethod
    def requirements(cls, config) -> frozenset:
        return frozenset(configured_modalities(config))

    def __init__(self, config, inputs: ModelInputs):
        super().__init__(config, inputs)
        self._init_factors(nn.init.xavier_normal_)
        self.modalities = configured_modalities(config)
        self.n_layers = int(config["n_layers"])
        self.aggregation = config["aggregation"]
        self.combination = config["combination"]
        latent = config["latent_size"]
        for key, val, choices in (("aggregation", self.aggregation, AGGREGATIONS),
                                  ("combination", self.combination, COMBINATIONS)):
            if val not in choices:
                raise ConfigError(key, f"expected one of {choices}, got {val!r}")
        if self.n_layers < 1:
            raise ConfigError("n_layers", f"MMGCN needs at least one layer, got {self.n_layers}")
        if not isinstance(latent, int) or latent < 1:
            raise ConfigError("latent_size", f"expected a positive integer, got {latent!r}")
        emb = int(config["embedding_size"])
        self.branches = nn.ModuleDict()
        device = None
        for m in self.modalities:
            feat, mask = modality_features(inputs, m, self.name)
            device = feat.device
            self.register_buffer(f"feat_{m}", feat, persistent=False)  # rebuilt from inputs
            self.register_buffer(f"mask_{m}", mask, persistent=False)
            self.branches[m] = _ModalityGCN(feat.shape[1], self.n_users, latent, emb,
                                            self.n_layers, self.combination)
        a = bipartite_adjacency(inputs.train, self.n_users, self.n_items)
        if self.aggregation == "mean":
            a = row_normalize(a)
        self.adj = to_torch_csr(a, device)
        self.adj_t = to_torch_csr(a.T, device) if self.aggregation == "mean" else self.adj

    def propagate(self):
        ids = self.node_emb.weight
        return sum(branch(getattr(self, f"feat_{m}"), getattr(self, f"mask_{m}"), ids, self.adj,
                          self.adj_t)
                   for m, branch in self.branches.items())

    def reg_terms(self, users, pos, neg):
        return super().reg_terms(users, pos, neg) + [b.preference(users)
                                                     for b in self.branches.values()]
