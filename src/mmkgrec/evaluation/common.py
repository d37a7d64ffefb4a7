"""What every evaluator shares: the model in evaluation mode for the duration of a pass, and the
subsets of items and users whose targets count (a long-tail analysis, :mod:`.popularity`; the
cold items or users of a cold-start split, :mod:`.cold`).

The evaluators (:mod:`.ranking`, :mod:`.sequential`, :mod:`.ctr`) import this module; the factory
that chooses among them (:mod:`.evaluator`) sits above them all.
"""

from __future__ import annotations

import logging
import sys
import time

import numpy as np

from .. import distributed

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
        self.model.prepare_eval()
        return self

    def __exit__(self, *exc):
        self.model.train(self._was_training)
        self.seconds = time.perf_counter() - self._t0
        return False


def shows_progress(enabled: bool = True) -> bool:
    """Whether :func:`progress` draws a bar: ``enabled``, standard error a terminal, rank 0."""
    return bool(enabled) and sys.stderr.isatty() and distributed.is_main()


def progress(iterable, desc: str, enabled: bool = True, total: int | None = None):
    """``iterable`` with a progress bar on standard error when ``enabled``, standard error is a
    terminal and this is the main process (rank 0); otherwise ``iterable`` itself, so logs and
    pipes stay quiet. The one place the training epochs and evaluation passes show progress."""
    if not shows_progress(enabled):
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False)


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
