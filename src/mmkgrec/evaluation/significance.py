"""Paired significance tests over per-user metric values.

Pairs where either value is NaN (e.g. users without relevant items) are dropped;
``n`` in the result is the number of pairs actually used. Degenerate inputs never
raise or warn: all-zero differences give ``p = 1.0``; too few pairs give ``p = NaN``.

Two systems compared over several seeds (or folds) are compared per user on each user's mean
over the seeds (``paired_ttest_user_means``): the same users recur in every seed and their
differences correlate across seeds, so pooling (user, seed) pairs as if independent overstates
significance. The seed-level test (``paired_ttest`` on the seeds' means) goes beside it, and
``holm`` adjusts the p-values of a table of comparisons for their number.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats

__all__ = ["paired_ttest", "wilcoxon", "align_per_user", "user_means", "paired_ttest_user_means",
           "holm"]


def _diffs(a, b) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"paired arrays must have equal length, got {a.size} and {b.size}")
    keep = ~(np.isnan(a) | np.isnan(b))
    return a[keep] - b[keep]


def paired_ttest(a, b) -> dict[str, float]:
    """Paired Student t-test of ``a`` vs ``b`` (``scipy.stats.ttest_rel``, two-sided).

    Returns ``{"t", "p", "mean_diff", "n"}`` with ``mean_diff = mean(a - b)``.
    All differences zero -> ``t = NaN, p = 1.0``; ``n < 2`` otherwise -> ``t = p = NaN``;
    constant non-zero differences (zero variance) -> ``t = ±inf, p = 0.0``.
    """
    d = _diffs(a, b)
    n = int(d.size)
    mean_diff = float(d.mean()) if n else float("nan")
    if n and np.all(d == 0):
        return {"t": float("nan"), "p": 1.0, "mean_diff": 0.0, "n": n}
    if n < 2:
        return {"t": float("nan"), "p": float("nan"), "mean_diff": mean_diff, "n": n}
    if np.all(d == d[0]):
        return {"t": float(np.copysign(np.inf, d[0])), "p": 0.0, "mean_diff": mean_diff, "n": n}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.ttest_rel(d, np.zeros_like(d))
    return {"t": float(res.statistic), "p": float(res.pvalue), "mean_diff": mean_diff, "n": n}


def wilcoxon(a, b) -> dict[str, float]:
    """Wilcoxon signed-rank test of ``a`` vs ``b`` (``scipy.stats.wilcoxon``, two-sided).

    Zero differences are discarded (scipy's default ``zero_method="wilcox"``).
    Returns ``{"stat", "p", "mean_diff", "n"}``; ``n`` counts all non-NaN pairs.
    All differences zero -> ``stat = NaN, p = 1.0``; no pairs -> ``p = NaN``.
    """
    d = _diffs(a, b)
    n = int(d.size)
    mean_diff = float(d.mean()) if n else float("nan")
    if n == 0:
        return {"stat": float("nan"), "p": float("nan"), "mean_diff": mean_diff, "n": 0}
    if np.all(d == 0):
        return {"stat": float("nan"), "p": 1.0, "mean_diff": 0.0, "n": n}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.wilcoxon(d)
    return {"stat": float(res.statistic), "p": float(res.pvalue), "mean_diff": mean_diff, "n": n}


def align_per_user(ids_a, vals_a, ids_b, vals_b) -> tuple[np.ndarray, np.ndarray]:
    """Restrict two per-user value arrays to their common user ids, in ascending id order.

    Ids must be unique within each array (``ValueError`` otherwise). Returns
    ``(vals_a_common, vals_b_common)`` where position ``i`` of both refers to the same user.
    """
    ids_a, ids_b = np.asarray(ids_a).reshape(-1), np.asarray(ids_b).reshape(-1)
    vals_a, vals_b = np.asarray(vals_a), np.asarray(vals_b)
    if len(ids_a) != len(vals_a) or len(ids_b) != len(vals_b):
        raise ValueError("ids and values must have equal length")
    if np.unique(ids_a).size != ids_a.size or np.unique(ids_b).size != ids_b.size:
        raise ValueError("user ids must be unique within each array")
    _, ia, ib = np.intersect1d(ids_a, ids_b, assume_unique=True, return_indices=True)
    return vals_a[ia], vals_b[ib]


def user_means(replicates) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each user's mean over the replicates (seeds, or folds) of two systems' per-user values.

    ``replicates``: an iterable of ``(ids_a, vals_a, ids_b, vals_b)``, one per seed or fold, both
    systems evaluated on that replicate. Within a replicate only the users both evaluated with a
    value (not NaN) count; a user's means are over the replicates where they count. Returns
    ``(ids, means_a, means_b)`` in ascending id order (empty arrays without any pair).
    """
    ids, a_all, b_all = [], [], []
    for ids_a, vals_a, ids_b, vals_b in replicates:
        ids_a, ids_b = np.asarray(ids_a).reshape(-1), np.asarray(ids_b).reshape(-1)
        a, b = align_per_user(ids_a, np.asarray(vals_a, dtype=np.float64),
                              ids_b, np.asarray(vals_b, dtype=np.float64))
        common = np.intersect1d(ids_a, ids_b, assume_unique=True)
        keep = ~(np.isnan(a) | np.isnan(b))
        ids.append(common[keep])
        a_all.append(a[keep])
        b_all.append(b[keep])
    if not ids:
        return np.array([]), np.array([]), np.array([])
    uniq, inv = np.unique(np.concatenate(ids), return_inverse=True)
    count = np.bincount(inv, minlength=len(uniq))
    return (uniq, np.bincount(inv, np.concatenate(a_all), len(uniq)) / count,
            np.bincount(inv, np.concatenate(b_all), len(uniq)) / count)


def paired_ttest_user_means(replicates) -> dict[str, float]:
    """Paired t-test over users of each user's mean over the replicates (``user_means``): the
    user, not the (user, seed) pair, is the unit. Returns ``paired_ttest``'s dict (``n``: users)
    with ``replicates``, how many seeds or folds were given. One replicate is the plain paired
    t-test over users."""
    replicates = list(replicates)
    _, a, b = user_means(replicates)
    return {**paired_ttest(a, b), "replicates": len(replicates)}


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (a table of comparisons).

    The i-th smallest of the m p-values is multiplied by m - i + 1 (i from 1), kept at least as
    large as every smaller one's adjusted value, and capped at 1. NaN entries (comparisons that
    could not be tested) stay NaN and do not count in m. Returned in the input order.
    """
    p = np.asarray(pvalues, dtype=np.float64).reshape(-1)
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(~np.isnan(p))
    if idx.size == 0:
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    m = order.size
    adjusted = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    out[order] = adjusted
    return out
