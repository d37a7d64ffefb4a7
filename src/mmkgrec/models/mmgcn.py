"""MMGCN: one graph convolution per modality over the user-item graph (Wei et al., ACM MM 2019,
"MMGCN: Multi-modal Graph Convolution Network for Personalized Recommendation of Micro-video")."""

from __future__ import annotations

from torch import nn

from ..errors import ConfigError
from ..graph.adjacency import bipartite_adjacency, row_normalize, to_torch_csr
from ..nn.propagation import ModalityGCN
from .base import ModelInputs, configured_modalities, modality_features, register
from .factor_base import FactorModel

AGGREGATIONS = ("mean", "sum")
COMBINATIONS = ("concat", "add")


@register
class MMGCN(FactorModel):
    """MMGCN: a :class:`~mmkgrec.nn.propagation.ModalityGCN` (aggregation eq. 1-2, combination
    eq. 5-7) per configured modality, all on the same graph (the training interactions), sharing
    the user/item ID embeddings ``id`` (``embedding_size``).
    Final vectors (Eq. (8)): ``u* = sum_m x_u^(m, L)``, ``i* = sum_m x_i^(m, L)``; score
    ``u* . i*`` (Eq. (9)).

    Aggregation ``mean`` uses the row-normalised adjacency ``D^-1 A`` (the paper's mean
    aggregator; the max-pooling one is not implemented), ``sum`` the binary ``A`` (MMGCN's code's
    ``add`` mode). Nodes without training interactions aggregate nothing (``h = LeakyReLU(b_1)``).

    Loss (Eq. (10)): BPR plus ``reg_weight`` times the squared L2 norm of the batch's ID
    embeddings and the batch users' preference embeddings of every modality, divided by the batch
    size (as MMGCN's code); the linear layers are not in it (``weight_decay`` shrinks them).
    Propagation is full-graph inside every training batch, with gradients, and once per
    evaluation in ``prepare_eval``.

    SPEC.md "MM-RACL-KAL": a baseline; no SPEC.md resolution beyond the shared ones."""

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
            self.branches[m] = ModalityGCN(feat.shape[1], self.n_users, latent, emb,
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
