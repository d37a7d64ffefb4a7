"""What every evaluator shares: the model in evaluation mode for the duration of a pass, and the
subsets of items and users whose targets count (a long-tail analysis, :mod:`.popularity`; the
cold items or users of a cold-start split, :mod:`.cold`).

The evaluators (:mod:`.ranking`, :mod:`.sequential`, :mod:`.ctr`) import this module; the factory
that chooses among them (:mod:`.evaluator`) sits above them all.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from ..errors import NonFiniteError

log = logging.getLogger("mmkgrec.evaluation")


class EvalMode:
    """``with EvalMode(model) as mode``: the model in eval mode with ``prepare_eval`` done; its
    training flag is restored on exit and ``mode.seconds`` holds the time spent inside."""

    def __init__(self, model):
        self.model = model
        self.seconds = 0.0

    def __enter__(self):
        self._t0 = time.perf_counter()
        self._was_training = self.model.training
        self.model.eval()
        check_finite_model(self.model)
        self.model.prepare_eval()
        return self

    def __exit__(self, *exc):
        self.model.train(self._was_training)
        self.seconds = time.perf_counter() - self._t0
        return False


def first_non_finite(model) -> str | None:
    """The name of ``model``'s first parameter holding a NaN or infinity, or of its first
    buffer holding a NaN (buffers may hold -inf on purpose, e.g. attention masks); ``None`` when
    every value is finite."""
    import torch

    for name, p in model.named_parameters():
        if p.is_floating_point() and not bool(torch.isfinite(p).all()):
            return f"parameter '{name}'"
    for name, b in model.named_buffers():
        if b.is_floating_point() and bool(torch.isnan(b).any()):
            return f"buffer '{name}'"
    return None


def check_finite_model(model, where: str = "") -> None:
    """NonFiniteError naming ``model``'s first non-finite tensor (:func:`first_non_finite`);
    ``where`` (e.g. ``"epoch 3"``) starts the message."""
    bad = first_non_finite(model)
    if bad is not None:
        raise NonFiniteError(f"{where + ': ' if where else ''}{type(model).__name__}'s {bad} is "
                             "not finite (NaN or inf); nothing is reported from a non-finite "
                             "model (lower learning_rate, set clip_grad_norm, or check the "
                             "item features)")


def check_finite_scores(scores, what: str = "scores") -> None:
    """NonFiniteError when ``scores`` (a tensor, before any item is masked out) hold a NaN or
    +inf: the model's inputs (e.g. features) or computation are not finite."""
    import torch

    bad = ~torch.isfinite(scores) & ~(scores == -torch.inf)
    if bool(bad.any()):
        row, col = (int(x) for x in bad.nonzero()[0])
        raise NonFiniteError(f"the model's {what} are not finite (row {row}, item {col} is "
                             f"{float(scores[row, col])}); nothing is reported from a non-finite "
                             "model (check the item features and learning_rate)")


def subset_mask(mask, n: int, what: str = "items") -> np.ndarray:
    """``mask`` checked as a bool mask over the ``n`` ``what`` (items or users)."""
    mask = np.asarray(mask)
    if mask.dtype != bool or mask.shape != (n,):
        raise ValueError(f"{what} must be a bool mask of shape ({n},), got "
                         f"{mask.dtype} {mask.shape}")
    return mask


def counted(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int,
            item_subset=None, user_subset=None) -> np.ndarray | None:
    """Which targets ``(users[j], items[j])`` count: those on ``item_subset`` (bool
    ``[n_items]``) by users of ``user_subset`` (bool ``[n_users]``); ``None`` when neither
    subset is given (all of them count)."""
    if item_subset is None and user_subset is None:
        return None
    keep = np.ones(len(users), dtype=bool)
    if item_subset is not None:
        keep &= subset_mask(item_subset, n_items, "items")[items]
    if user_subset is not None:
        keep &= subset_mask(user_subset, n_users, "users")[users]
    return keep


def restrict_targets(target, items, n_items: int, users=None, n_users: int | None = None):
    """The interactions of ``target`` on ``items`` by ``users`` (bool masks; ``None``: all)."""
    keep = counted(target.user, target.item, n_users if n_users is not None else 0, n_items,
                   items, users)
    return target if keep is None else target.take(keep)


def cold_start_note(split, model, config) -> None:
    """One log line when a model without item content or KG meets a split's cold items: it scores
    them from their untrained initial parameters (an ID embedding, a popularity of 0)."""
    if model is None or split.cold_items is None:
        return
    requires = model.requirements(config) if hasattr(model, "requirements") else frozenset()
    if requires & {"kg", "text", "image"}:
        return
    known = np.zeros(split.n_items, dtype=bool)
    known[split.train.item] = True
    blind = int((~known[split.cold_items]).sum())
    log.info("%s uses no item content or KG: it scores the %d cold items (no training "
             "interaction) from their untrained initial parameters", type(model).__name__, blind)
