"""The contract every model honours, the inputs it may ask for, and the registry by name.

A model declares what it ``requires`` (``"graph"``, ``"kg"``, ``"text"``, ``"image"``,
``"sequence"``), receives exactly that in :class:`ModelInputs`, and never reads files. The trainer
and evaluator know a model only through ``loss``, ``score_all``, ``score`` and the optional
``user_vectors`` / ``item_vectors``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from ..data.dataset import Interactions

_REGISTRY: dict[str, type["Recommender"]] = {}


def register(cls):
    """Class decorator: make a model available by its ``name``."""
    _REGISTRY[cls.name] = cls
    return cls


def registered_models() -> list[str]:
    return sorted(_REGISTRY)


def get_model_class(name: str) -> type["Recommender"]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model '{name}'; registered: {registered_models()}") from None


@dataclass
class ModelInputs:
    """What a model is built from: sizes, the training interactions, and what it requires."""

    n_users: int
    n_items: int
    train: Interactions
    graph: torch.Tensor | None = None  # symmetric-normalised user-item adjacency (sparse CSR)
    extra: dict = field(default_factory=dict)


def build_inputs(split, requires: frozenset, device="cpu") -> ModelInputs:
    inputs = ModelInputs(split.n_users, split.n_items, split.train)
    if "graph" in requires:
        from ..graph.adjacency import bipartite_adjacency, sym_normalize, to_torch_csr

        adj = sym_normalize(bipartite_adjacency(split.train, split.n_users, split.n_items))
        inputs.graph = to_torch_csr(adj, device)
    unknown = set(requires) - {"graph"}
    if unknown:
        raise NotImplementedError(f"inputs {sorted(unknown)} are not available in this version")
    return inputs


class Recommender(nn.Module):
    """Base class. Subclasses set ``name``, ``requires`` and implement ``loss`` and ``score_all``.

    ``input_type``: ``"pairwise"`` (batches of users, positive and negative items) or ``"none"``
    (no gradient training, e.g. popularity). ``prepare_eval`` is called once before each
    evaluation (a graph model propagates there once instead of per chunk of users)."""

    name: ClassVar[str] = ""
    requires: ClassVar[frozenset] = frozenset()
    input_type: ClassVar[str] = "pairwise"

    def __init__(self, config, inputs: ModelInputs):
        super().__init__()
        self.config = config
        self.n_users = inputs.n_users
        self.n_items = inputs.n_items

    def loss(self, batch: dict) -> torch.Tensor:
        raise NotImplementedError

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of the pairs ``(users[k], items[k])``; default gathers from ``score_all``."""
        return self.score_all(users).gather(1, items.view(-1, 1)).view(-1)

    def prepare_eval(self) -> None:
        """Precompute whatever scoring needs (called under ``torch.no_grad`` in eval mode)."""

    def fit_closed_form(self, train: Interactions) -> None:
        """Models with ``input_type == "none"`` compute their parameters here."""

    def user_vectors(self) -> torch.Tensor | None:
        return None

    def item_vectors(self) -> torch.Tensor | None:
        return None


def l2_per_batch(*tensors: torch.Tensor) -> torch.Tensor:
    """RecBole's ``EmbLoss``: sum of squared L2 norms divided by the batch size."""
    n = tensors[0].shape[0]
    return sum(t.pow(2).sum() for t in tensors) / n


def bpr_loss(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """``-mean log sigmoid(pos - neg)``; ``neg`` may hold several negatives per positive."""
    if neg.dim() > pos.dim():
        pos = pos.unsqueeze(-1)
    return -torch.nn.functional.logsigmoid(pos - neg).mean()
