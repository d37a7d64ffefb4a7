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
import torch

from ..data.sampling import KnownPairs, sample_negatives
from ..errors import NonFiniteError
from .metrics import MetricAccumulator, canonical, parse_metric

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
        check_finite_model(self.model)
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
def first_non_finite(model) -> str | None:
    """The name of ``model``'s first parameter holding a NaN or infinity, or of its first
    buffer holding a NaN (buffers may hold -inf on purpose, e.g. attention masks); ``None`` when
    every value is finite."""
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
    +inf: the model's inputs (e.g. features) or computation are not finite. The maximum is
    NaN if any score is, +inf if any is: one reduction answers for the usual case (a full
    ranking's ``[users, items]``), the element-wise search runs only to name a bad one."""
    if not scores.numel():
        return
    top = scores.max()
    if not (bool(top.isnan()) or bool(top == torch.inf)):
        return
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


def ranking_metric_plan(metrics, sampled: bool = False) -> tuple[list[str], int]:
    """``(canonical metric names, largest cut-off)``; under a sampled protocol only the metrics
    one positive among sampled candidates defines (hit, ndcg, mrr) are kept."""
    names = [canonical(m) for m in metrics]
    if sampled:
        names = [m for m in names if parse_metric(m)[0] in ("hit", "ndcg", "mrr")]
    return names, max((parse_metric(m)[1] for m in names), default=0)


def sampled_candidates(split, users: np.ndarray, n_negatives: int, seed: int) -> np.ndarray:
    """``[len(users), n_negatives]`` items drawn uniformly, per row, among the items its user never
    interacted with in any part of ``split`` (a fixed seed: every model sees the same ones);
    LimitError naming the maximum when a user has fewer such items than ``n_negatives``."""
    parts = [split.part(p) for p in ("train", "valid", "test")]
    known = KnownPairs(np.concatenate([p.user for p in parts]),
                       np.concatenate([p.item for p in parts]), split.n_users, split.n_items)
    known.check_room(users, int(n_negatives))
    return sample_negatives(users, split.n_items, known, np.random.default_rng(seed),
                            int(n_negatives))


def per_user_means(sample_users: torch.Tensor, per_sample: dict):
    """A :class:`~.metrics.MetricAccumulator` holding, for each user, the mean of each metric
    over that user's samples (``per_sample``: metric -> list of per-sample value tensors, in the
    order of ``sample_users``). In a distributed run each process holds the values of its own
    block of the samples (:func:`mmkgrec.distributed.shard`): they are gathered in rank order,
    the undivided per-sample values, before the means."""
    acc = MetricAccumulator()
    if len(sample_users):
        users, inv = torch.unique(sample_users, return_inverse=True)
        counts = torch.bincount(inv, minlength=len(users)).double()
        acc.update({m: torch.zeros(len(users), dtype=torch.float64).index_add_(
            0, inv, distributed.gather_concat(torch.cat(v).double() if v else
                                              torch.zeros(0, dtype=torch.float64))) / counts
            for m, v in per_sample.items()}, users)
    return acc
