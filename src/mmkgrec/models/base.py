"""The contract every model honours, the inputs it may ask for, and the registry by name.

A model declares what it ``requires`` (``"graph"``, ``"kg"``, ``"text"``, ``"image"``,
``"sequence"``, ``"labels"``, ``"item_embeddings"``), receives exactly that in
:class:`ModelInputs`, and never reads files, and the ``tasks`` it supports; a run of another
task is refused before training (:meth:`Recommender.check_task`). The trainer
and evaluator know a model only through ``loss``, ``score_all``, ``score`` and the optional
``user_vectors`` / ``item_vectors``.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from ..data.dataset import Interactions
from ..config import config_value, task_of
from ..errors import ConfigError, UnknownNameError
# ModelInputs and build_inputs live in mmkgrec.inputs; re-exported here for existing imports
from ..inputs import (CONTENT_INPUTS, MODALITIES, ModelInputs, build_inputs,  # noqa: F401
                      shuffle_item_rows)

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
        raise UnknownNameError(f"unknown model '{name}'; registered: {registered_models()}") from None


def configured_modalities(config) -> tuple[str, ...]:
    """The config's ``modalities`` (a non-empty subset of ``text``/``image``), in the fixed
    order ``text, image`` whatever the order written."""
    mods = config_value(config, "modalities")
    if isinstance(mods, str):
        mods = [mods]
    if not mods or not isinstance(mods, (list, tuple)) or any(m not in MODALITIES for m in mods):
        raise ConfigError("modalities", f"expected a non-empty list drawn from {list(MODALITIES)}, "
                          f"got {mods!r}")
    return tuple(m for m in MODALITIES if m in mods)


def modality_features(inputs: "ModelInputs", modality: str, model: str = "model"):
    """``(matrix * mask, mask)`` for ``modality`` as float32 tensors; rows of items without that
    content are forced to zero."""
    if modality not in inputs.features:
        raise ValueError(f"{model} is configured with modality '{modality}' but the inputs hold "
                         f"{sorted(inputs.features)}; build them with "
                         "build_inputs(split, Model.requirements(config), device, config)")
    mat, mask = inputs.features[modality]
    mask = mask.to(torch.float32)
    return mat.to(torch.float32) * mask.unsqueeze(1), mask


def content_moments(mat: torch.Tensor, mask: torch.Tensor):
    """Per-dimension mean and standard deviation (floored at 1e-6) of ``mat``'s rows where
    ``mask`` is set; zeros and ones when no row is."""
    has = mask > 0
    if not has.any():
        return mat.new_zeros(mat.shape[1]), mat.new_ones(mat.shape[1])
    return mat[has].mean(0), mat[has].std(0, unbiased=False).clamp_min(1e-6)


def standardise(mat: torch.Tensor, mask: torch.Tensor, mu: torch.Tensor, sd: torch.Tensor):
    """``(mat - mu) / sd`` on the rows where ``mask`` is set, zero rows elsewhere."""
    return torch.where((mask > 0).unsqueeze(1), (mat - mu) / sd, torch.zeros_like(mat))


def standardised_content(inputs: ModelInputs, modality: str, model: str = "model"):
    """``(features, mask)`` of ``modality`` with every dimension standardised over the items that
    have that content (**resolution**: the scales of different encoders differ by orders of
    magnitude); rows of items without it stay zero."""
    mat, mask = modality_features(inputs, modality, model)
    return standardise(mat, mask, *content_moments(mat, mask)).contiguous(), mask


class Recommender(nn.Module):
    """Base class. Subclasses set ``name``, ``requires`` (or override ``requirements(config)``)
    and implement ``loss`` and ``score_all``.

    ``input_type``: ``"pairwise"`` (batches from ``make_batches``, by default users with positive
    and negative items), ``"sequence"`` (next-item models) or ``"none"``
    (no gradient training, e.g. popularity). ``prepare_eval`` is called once before each
    evaluation (a graph model propagates there once instead of per chunk of users)."""

    name: ClassVar[str] = ""
    requires: ClassVar[frozenset] = frozenset()
    input_type: ClassVar[str] = "pairwise"
    #: the tasks (config ``task``) this model can be trained and evaluated for
    tasks: ClassVar[tuple[str, ...]] = ("ranking", "next_item", "ctr")
    #: what taking history items away from a user means for this model, in words, when its
    #: score can be read back to the user's history (``scores_without_history``, the model's
    #: own reasons of :mod:`mmkgrec.explain.reasons`); ``None``: it cannot (a free user
    #: vector, say), so the model has no such reasons
    history_reasons: ClassVar[str | None] = None

    @classmethod
    def check_task(cls, config) -> None:
        """ConfigError naming the task and the model when ``config``'s task is not one of
        ``tasks``."""
        task = task_of(config)
        if task not in cls.tasks:
            raise ConfigError("task", f"model {cls.name} does not support task '{task}'; it "
                              f"supports {', '.join(cls.tasks)}")

    @classmethod
    def requirements(cls, config) -> frozenset:
        """What this model needs for ``config`` (e.g. the modalities it is configured with);
        by default the class's fixed ``requires``."""
        return frozenset(cls.requires)

    def __init__(self, config, inputs: ModelInputs):
        super().__init__()
        self.check_task(config)
        self.config = config
        self.n_users = inputs.n_users
        self.n_items = inputs.n_items
        present = {"graph": inputs.graph is not None, "kg": inputs.kg is not None,
                   **{m: m in inputs.features for m in CONTENT_INPUTS}}
        missing = sorted(r for r in self.requirements(config) if not present.get(r, True))
        if missing:
            raise ValueError(f"{self.name} needs inputs {missing}; build them with "
                             f"build_inputs(split, {self.name}.requirements(config), device, config)")

    def loss(self, batch: dict) -> torch.Tensor:
        raise NotImplementedError

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def score_all_for_top(self, users: torch.Tensor, k: int, exclude) -> torch.Tensor:
        """Scores ``[len(users), n_items]`` for a top-``k`` ranking (full-ranking evaluation):
        ``score_all``'s (to rounding) wherever an item can be among the user's ``k`` best once
        the entries ``exclude = (rows, cols)`` (positions in ``users``, items) are removed; any
        other entry may hold any finite value strictly below the user's ``k``-th best score. The
        default is ``score_all``; a model whose exact scores cost much more than bounds on them
        overrides it (KGCN)."""
        return self.score_all(users)

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of the pairs ``(users[k], items[k])``; default gathers from ``score_all``."""
        return self.score_all(users).gather(1, items.view(-1, 1)).view(-1)

    def pointwise_loss(self, batch: dict) -> torch.Tensor:
        """``train_loss: bce``: the log loss of ``sigmoid(score(users, items))`` against
        ``labels`` (0/1). L2 regularisation comes from ``weight_decay`` (Adam's coupled decay is
        KGCN's ``l2_weight`` times ``tf.nn.l2_loss`` of the parameters)."""
        logits = self.score(batch["users"], batch["items"]).float()
        return nn.functional.binary_cross_entropy_with_logits(logits, batch["labels"].float())

    def prepare_eval(self) -> None:
        """Precompute whatever scoring needs (called under ``torch.no_grad`` in eval mode)."""

    def optimizer_groups(self, config):
        """What the trainer's Adam updates: every parameter at ``learning_rate``; a model with a
        part that trains at a rate of its own returns parameter groups (``torch.optim``'s)."""
        return self.parameters()

    def make_batches(self, split, config):
        """The training batches of one model family: an object with ``__len__`` (batches per
        epoch) and ``epoch(rng, device)`` yielding dicts that ``loss`` understands. ``None`` (the
        default) means pairwise (user, positive, negatives) batches. Models with several phases
        (a CF phase and a KG phase, say) yield batches tagged with the phase."""
        return None

    def on_epoch_start(self, epoch: int) -> None:
        """Called before each training epoch (after seeding), e.g. to refresh attention."""

    def fit_closed_form(self, train: Interactions) -> None:
        """Models with ``input_type == "none"`` compute their parameters here."""

    def user_vectors(self) -> torch.Tensor | None:
        return None

    def item_vectors(self) -> torch.Tensor | None:
        return None

    # ---- the model's own reasons (explanations: post-processing, never part of training) ---
    def reads_history(self) -> bool:
        """Whether this model, as configured, scores from the user's history in a way
        ``scores_without_history`` can redo (its class declares ``history_reasons``; a
        configuration may still turn the path off)."""
        return self.history_reasons is not None

    def history_items(self, user: int) -> list[int]:
        """The dense items of ``user``'s training history this model's score reads."""
        raise NotImplementedError(f"{self.name} has no history reasons")

    def scores_without_history(self, user: int, item: int,
                               removals: list[list[int]]) -> torch.Tensor:
        """``[len(removals)]``: the score of ``item`` for ``user`` with each list of dense
        history items in ``removals`` taken away (an empty list: the score as it is). Called
        in eval mode after ``prepare_eval``, without gradients; changes no weight."""
        raise NotImplementedError(f"{self.name} has no history reasons")


class VectorModel(Recommender):
    """A model whose scores are inner products of user and item vectors.

    Subclasses implement ``compute_vectors() -> (users [n_users, d], items [n_items, d])``
    (with gradients: graph models propagate there). Evaluation computes them once per
    ``prepare_eval``; switching back to training drops the cache."""

    _cache = None

    def compute_vectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def train(self, mode: bool = True):
        self._cache = None
        return super().train(mode)

    def prepare_eval(self):
        self._cache = self.compute_vectors()

    def _vectors(self):
        return self._cache if self._cache is not None else self.compute_vectors()

    def score_all(self, users):
        u, i = self._vectors()
        return u[users] @ i.T

    def score(self, users, items):
        u, i = self._vectors()
        return (u[users] * i[items]).sum(-1)

    def user_vectors(self):
        return self._vectors()[0]

    def item_vectors(self):
        return self._vectors()[1]
