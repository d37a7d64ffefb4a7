"""What every evaluator shares: the model in evaluation mode for the duration of a pass, and the
bool mask of items whose targets count (a long-tail analysis, :mod:`.popularity`).

The evaluators (:mod:`.ranking`, :mod:`.sequential`, :mod:`.ctr`) import this module; the factory
that chooses among them (:mod:`.evaluator`) sits above them all.
"""

from __future__ import annotations

import time

import numpy as np


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
        self.model.prepare_eval()
        return self

    def __exit__(self, *exc):
        self.model.train(self._was_training)
        self.seconds = time.perf_counter() - self._t0
        return False


def item_mask(items, n_items: int) -> np.ndarray:
    """``items`` checked as a bool mask over the ``n_items`` items."""
    items = np.asarray(items)
    if items.dtype != bool or items.shape != (n_items,):
        raise ValueError(f"items must be a bool mask of shape ({n_items},), got "
                         f"{items.dtype} {items.shape}")
    return items


def restrict_targets(target, items, n_items: int):
    """The interactions of ``target`` on ``items`` (a bool mask; ``None``: all of them)."""
    return target if items is None else target.take(item_mask(items, n_items)[target.item])
