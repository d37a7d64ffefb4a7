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
import torch

from ..data.sampling import KnownPairs, sample_negatives
from .metrics import MetricAccumulator, canonical, parse_metric

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


def ranking_metric_plan(metrics, sampled: bool = False) -> tuple[list[str], int]:
    """``(canonical metric names, largest cut-off)``; under a sampled protocol only the metrics
    one positive among sampled candidates defines (hit, ndcg, mrr) are kept."""
    names = [canonical(m) for m in metrics]
    if sampled:
        names = [m for m in names if parse_metric(m)[0] in ("hit", "ndcg", "mrr")]
    return names, max((parse_metric(m)[1] for m in names), default=0)


def sampled_candidates(split, users: np.ndarray, n_negatives: int, seed: int) -> np.ndarray:
    """``[len(users), n_negatives]`` items drawn uniformly, per row, among the items its user never
    interacted with in any part of ``split`` (a fixed seed: every model sees the same ones)."""
    parts = [split.part(p) for p in ("train", "valid", "test")]
    known = KnownPairs(np.concatenate([p.user for p in parts]),
                       np.concatenate([p.item for p in parts]), split.n_users, split.n_items)
    return sample_negatives(users, split.n_items, known, np.random.default_rng(seed),
                            int(n_negatives))


def per_user_means(sample_users: torch.Tensor, per_sample: dict):
    """A :class:`~.metrics.MetricAccumulator` holding, for each user, the mean of each metric
    over that user's samples (``per_sample``: metric -> list of per-sample value tensors, in the
    order of ``sample_users``)."""
    acc = MetricAccumulator()
    if len(sample_users):
        users, inv = torch.unique(sample_users, return_inverse=True)
        counts = torch.bincount(inv, minlength=len(users)).double()
        acc.update({m: torch.zeros(len(users), dtype=torch.float64).index_add_(
            0, inv, torch.cat(v).double()) / counts for m, v in per_sample.items()}, users)
    return acc
