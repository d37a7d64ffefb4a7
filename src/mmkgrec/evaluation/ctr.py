"""Click-through-rate evaluation (KGCN's protocol): the labelled pairs of a
:class:`~mmkgrec.data.ctr.CTRSplit` part are scored with ``model.score(users, items)``; the
probability of a click is ``sigmoid(score)``.

Pooled over all the part's pairs (*global*): ``auc`` (ROC AUC), ``f1`` (binary F1 of the
positive class, as scikit-learn's ``f1_score`` that KGCN reports) and ``accuracy``, both at
probability threshold 0.5, plus any of ``f1_micro`` / ``f1_macro`` asked for.

As KGCN's reference code computes them (*batch mean*): ``auc_batch`` and ``f1_batch``, the mean
over evaluation batches of ``ctr_batch_size`` pairs (null: ``train_batch_size``, the batch the
reference code evaluates with) of each batch's AUC and F1 (:func:`batch_mean_metrics`). Published
KGCN-style figures are batch means; they differ from the global figures (a batch's AUC ranks only
its own pairs), so a table says which it shows.

Per user (for the run's ``per_user_test.npz`` and significance tests): ``auc`` over the user's own
pairs (NaN when they hold a single class, which the accumulator counts as excluded) and
``accuracy``.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError
from .. import distributed
from .common import EvalMode
from .metrics import CLASSIFICATION_METRICS, MetricAccumulator, classification_metrics, parse_metric

CTR_METRICS = ("auc", "f1", "accuracy")
#: KGCN's figures: the mean over evaluation batches (:func:`batch_mean_metrics`)
BATCH_METRICS = ("auc_batch", "f1_batch")


def binary_f1(labels: np.ndarray, pred: np.ndarray) -> float:
    """F1 of the positive class (0 when there is no true positive)."""
    labels, pred = np.asarray(labels).astype(bool), np.asarray(pred).astype(bool)
    tp = float((labels & pred).sum())
    denom = 2 * tp + float((~labels & pred).sum()) + float((labels & ~pred).sum())
    return 2 * tp / denom if denom else 0.0


def group_f1(groups: np.ndarray, labels: np.ndarray, pred: np.ndarray, n_groups: int) -> np.ndarray:
    """:func:`binary_f1` within each group ``0..n_groups-1``, vectorised."""
    labels, pred = np.asarray(labels).astype(bool), np.asarray(pred).astype(bool)
    tp = np.bincount(groups, weights=labels & pred, minlength=n_groups)
    wrong = np.bincount(groups, weights=labels != pred, minlength=n_groups)
    denom = 2 * tp + wrong
    return np.divide(2 * tp, denom, out=np.zeros(n_groups), where=denom > 0)


def batch_mean_metrics(labels: np.ndarray, scores: np.ndarray, pred: np.ndarray,
                       batch_size: int, seed: int | None = 0) -> dict:
    """AUC and F1 as KGCN's reference code reports them: the pairs in a fixed random order
    (``seed``; the reference draws its test pairs in random order; ``None``: the order given),
    cut into consecutive batches
    of ``batch_size``; the last incomplete batch is dropped, as the reference loop drops it (a
    part smaller than one batch is one batch); each batch's AUC (of the scores) and F1 (at
    ``sigmoid(score) >= 0.5``) are averaged over batches. A batch holding one class only has no
    AUC and is left out of the AUC mean. Returns ``auc_batch``, ``f1_batch`` and ``batches``."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    labels = np.asarray(labels, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    n = len(labels)
    n_batches = max(n // batch_size, 1 if n else 0)
    if not n_batches:
        return {"auc_batch": float("nan"), "f1_batch": float("nan"), "batches": 0}
    size = batch_size if n >= batch_size else n
    order = np.arange(n) if seed is None else np.random.default_rng(seed).permutation(n)
    rows = order[:n_batches * size]
    batch = np.arange(len(rows)) // size
    _, auc = per_user_auc(batch, labels[rows], scores[rows])
    f1 = group_f1(batch, labels[rows], np.asarray(pred)[rows], n_batches)
    auc = auc[np.isfinite(auc)]
    return {"auc_batch": float(auc.mean()) if len(auc) else float("nan"),
            "f1_batch": float(f1.mean()), "batches": int(n_batches)}


def per_user_auc(users: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted user ids, AUC of each user's pairs), vectorised: Mann-Whitney with average ranks
    for tied scores within a user; NaN for a user whose pairs hold one class only."""
    users = np.asarray(users, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.lexsort((scores, users))
    u, y, s = users[order], labels[order], scores[order]
    ids, start, count = np.unique(u, return_index=True, return_counts=True)
    slot = np.searchsorted(ids, u)
    rank = np.arange(len(u)) - start[slot] + 1.0  # 1-based rank within the user
    new = np.ones(len(u), dtype=bool)
    new[1:] = (u[1:] != u[:-1]) | (s[1:] != s[:-1])
    tie = np.cumsum(new) - 1
    avg = (np.bincount(tie, weights=rank) / np.bincount(tie))[tie]
    n_pos = np.bincount(slot, weights=y, minlength=len(ids))
    n_neg = count - n_pos
    r_pos = np.bincount(slot, weights=avg * y, minlength=len(ids))
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (r_pos - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
    auc[(n_pos == 0) | (n_neg == 0)] = np.nan
    return ids, auc


class CTREvaluator:
    """Evaluate the labelled pairs of ``part`` ("valid" or "test") of a CTR split: the global
    metrics and, in batches of ``batch_size`` pairs, KGCN's batch means (``auc_batch``,
    ``f1_batch``)."""

    def __init__(self, split, part: str, metrics=CTR_METRICS, chunk: int = 8192,
                 batch_size: int = 128):
        if not hasattr(split, "labelled"):
            raise ConfigError("eval_protocol", "'ctr' needs the labelled pairs of a CTR split "
                              "(mmkgrec.data.ctr.ctr_split, made by split_from_config)")
        self.split, self.part, self.chunk = split, part, chunk
        self.batch_size = batch_size
        self.metrics = list(CTR_METRICS)
        for m in metrics:
            self._add(m)
        pairs = split.labelled[part]
        self.users = torch.from_numpy(pairs.user)
        self.items = torch.from_numpy(pairs.item)
        self.labels = np.asarray(pairs.rating, dtype=np.int64)

    def _add(self, name: str) -> None:
        if name not in CTR_METRICS and parse_metric(name)[0] not in CLASSIFICATION_METRICS:
            raise ConfigError("valid_metric", f"eval_protocol 'ctr' computes {CTR_METRICS} and "
                              f"{CLASSIFICATION_METRICS}, not {name!r}")
        if name not in self.metrics:
            self.metrics.append(name)

    @torch.no_grad()
    def scores(self, model, device="cpu") -> np.ndarray:
        """``model.score`` of every labelled pair (the model already in eval mode); in a
        distributed run each process scores its block and every process gets all the scores."""
        mine = distributed.shard(len(self.users))  # this process's block of pairs
        out = [model.score(self.users[s:min(s + self.chunk, mine.stop)].to(device),
                           self.items[s:min(s + self.chunk, mine.stop)].to(device)).float().cpu()
               for s in range(mine.start, mine.stop, self.chunk)]
        local = torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)
        # every pair's score in order: AUC and F1 are computed over all of them, never per process
        return distributed.gather_concat(local)

    def evaluate(self, model, device="cpu") -> tuple[dict, MetricAccumulator, float]:
        """Returns (pooled metrics, per-user accumulator, seconds)."""
        for m in self.metrics:  # the trainer may have appended its valid_metric
            self._add(m)
        with EvalMode(model) as mode:
            scores = self.scores(model, device)
        prob = torch.sigmoid(torch.from_numpy(scores)).numpy()
        pred = (prob >= 0.5).astype(np.int64)
        y = self.labels
        others = [m for m in self.metrics if m != "f1"]
        # AUC from the raw scores: the same order as the probabilities, without saturation ties
        out = classification_metrics(torch.from_numpy(y), torch.from_numpy(pred),
                                     torch.from_numpy(scores), others)
        out["f1"] = binary_f1(y, pred)
        batched = batch_mean_metrics(y, scores, pred, self.batch_size)
        ids, auc = per_user_auc(self.users.numpy(), y, scores)
        slot = np.searchsorted(ids, self.users.numpy())
        correct = np.bincount(slot, weights=(pred == y), minlength=len(ids))
        acc = MetricAccumulator()
        acc.update({"auc": torch.from_numpy(auc),
                    "accuracy": torch.from_numpy(correct / np.bincount(slot, minlength=len(ids)))},
                   torch.from_numpy(ids))
        return ({**{m: out[m] for m in self.metrics}, **{m: batched[m] for m in BATCH_METRICS}},
                acc, mode.seconds)
