"""Evaluation metrics: top-k ranking, sampled ranking, rating and classification.

All ranking functions are vectorised over users (no per-user Python loops) and
return per-user ``float64`` tensors so that callers can average, run significance
tests, or slice by user group.

Conventions
-----------
* Metric names are canonical lowercase strings: ``recall@k``, ``hit@k``,
  ``ndcg@k``, ``mrr@k``, ``precision@k``, ``mse``, ``rmse``, ``mae``,
  ``accuracy``, ``f1_micro``, ``f1_macro``, ``auc`` (see :func:`parse_metric`).
* Ranking ties are broken deterministically: higher score first, and among equal
  scores the LOWER item index first (see :func:`topk_with_ties`).
* Users without any relevant item get NaN for every ranking metric; average with
  ``nanmean`` (:class:`MetricAccumulator` does this and counts the exclusions).
* Labels (classification) are boolean item x label matrices, one True per row in the
  single-label mode: :func:`label_metrics` and :func:`per_class_table` serve both modes.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from .metric_names import (  # the name grammar lives in a leaf module, re-exported here
    CLASSIFICATION_METRICS,
    MULTILABEL_METRICS,
    RANKING_METRICS,
    RATING_METRICS,
    SAMPLED_METRICS,
    canonical,
    parse_metric,
)

__all__ = [
    "RANKING_METRICS",
    "SAMPLED_METRICS",
    "RATING_METRICS",
    "CLASSIFICATION_METRICS",
    "parse_metric",
    "canonical",
    "topk_with_ties",
    "ranking_metrics_from_hits",
    "full_ranking_metrics",
    "relevant_from_csr",
    "sampled_ranking_metrics",
    "rating_metrics",
    "classification_metrics",
    "label_counts",
    "label_metrics",
    "per_class_table",
    "MetricAccumulator",
]

def _parse_ranking(metrics: Sequence[str], allowed: tuple[str, ...]) -> list[tuple[str, str, int]]:
    """Parse ranking metric names into ``(canonical, base, k)``, rejecting others."""
    if isinstance(metrics, str):
        metrics = [metrics]
    out = []
    for m in metrics:
        base, k = parse_metric(m)
        if k is None or base not in allowed:
            raise ValueError(f"Metric {m!r} is not allowed here; allowed: {', '.join(a + '@k' for a in allowed)}")
        out.append((f"{base}@{k}", base, k))
    if not out:
        raise ValueError("No metrics requested")
    return out


# --------------------------------------------------------------------------- top-k
def topk_with_ties(scores: Tensor, k: int) -> Tensor:
    """Indices of the top-``k`` items per row, deterministic under ties.

    Tie rule: items are ordered by descending score and, among equal scores, by
    ascending item index (the lower index ranks first). This is exactly the order
    of ``torch.sort(scores, descending=True, stable=True)`` truncated to ``k``.

    Implementation: ``torch.topk`` with ``k + 1`` candidates, which are reordered by
    (score desc, index asc). Only rows where the k-th and (k+1)-th candidate scores
    are equal (a tie straddling the cut, where topk's choice is arbitrary) are
    recomputed with a full stable sort. ``-inf`` (masked) scores are fine; NaN
    scores are not supported. Returns a ``LongTensor[B, min(k, n)]``.
    """
    if scores.dim() != 2:
        raise ValueError(f"scores must be 2-D [B, n], got shape {tuple(scores.shape)}")
    if k < 1:
        raise ValueError(f"k must be a positive int, got {k}")
    n = scores.shape[1]
    if k >= n:
        return torch.sort(scores, dim=1, descending=True, stable=True).indices
    vals, idx = torch.topk(scores, k + 1, dim=1, largest=True, sorted=True)
    order = torch.argsort(idx, dim=1)  # index asc ...
    idx, vals = idx.gather(1, order), vals.gather(1, order)
    order = torch.sort(vals, dim=1, descending=True, stable=True).indices  # ... then score desc, stable
    idx, vals = idx.gather(1, order), vals.gather(1, order)
    out = idx[:, :k].contiguous()
    tie = vals[:, k - 1] == vals[:, k]
    if bool(tie.any()):
        rows = tie.nonzero(as_tuple=True)[0]
        out[rows] = torch.sort(scores[rows], dim=1, descending=True, stable=True).indices[:, :k]
    return out


# --------------------------------------------------------------------------- ranking
def ranking_metrics_from_hits(hits: Tensor, n_relevant: Tensor, metrics: Sequence[str]) -> dict[str, Tensor]:
    """Per-user ranking metrics from a hit matrix (RecBole-compatible definitions).

    ``hits[b, j]``: whether the item at 0-based rank ``j`` of user ``b`` is relevant;
    ``n_relevant[b]``: number of relevant items of user ``b`` (all of them, not only
    those in the top K). If ``K < k`` the missing ranks count as misses (right when
    the ranked list is shorter than ``k``, e.g. fewer items than ``k``).

    * ``hit@k``: 1 if any hit in the first k; ``recall@k``: #hits@k / n_relevant;
      ``precision@k``: #hits@k / k; ``mrr@k``: 1/(rank+1) of the first hit in k, else 0;
    * ``ndcg@k``: DCG@k / IDCG@k, DCG = sum over hits of 1/log2(rank+2), IDCG over
      the first min(n_relevant, k) positions.

    Users with ``n_relevant == 0`` get NaN for every metric. Returns ``float64``
    tensors of shape ``[B]`` keyed by canonical name.
    """
    parsed = _parse_ranking(metrics, RANKING_METRICS)
    if hits.dim() != 2:
        raise ValueError(f"hits must be 2-D [B, K], got shape {tuple(hits.shape)}")
    kmax = max(k for _, _, k in parsed)
    h = hits.to(torch.float64)
    if h.shape[1] < kmax:
        h = torch.nn.functional.pad(h, (0, kmax - h.shape[1]))
    h = h[:, :kmax]
    dev = h.device
    nrel = torch.as_tensor(n_relevant, device=dev).reshape(-1).to(torch.float64)
    if nrel.shape[0] != h.shape[0]:
        raise ValueError(f"n_relevant has {nrel.shape[0]} rows, hits has {h.shape[0]}")
    ranks = torch.arange(kmax, device=dev, dtype=torch.float64)
    disc = 1.0 / torch.log2(ranks + 2.0)
    cum_hits = h.cumsum(1)
    cum_disc = torch.cat([torch.zeros(1, device=dev, dtype=torch.float64), disc.cumsum(0)])
    empty = nrel <= 0
    nan = torch.tensor(float("nan"), device=dev, dtype=torch.float64)
    out: dict[str, Tensor] = {}
    for name, base, k in parsed:
        nh = cum_hits[:, k - 1]
        if base == "hit":
            v = (nh > 0).to(torch.float64)
        elif base == "recall":
            v = nh / nrel.clamp(min=1.0)
        elif base == "precision":
            v = nh / k
        elif base == "mrr":  # 1/(rank+1) decreases with rank, so the max over hits is the first hit
            v = (h[:, :k] / (ranks[:k] + 1.0)).amax(1)
        else:  # ndcg
            dcg = (h[:, :k] * disc[:k]).sum(1)
            idcg = cum_disc[nrel.clamp(0, k).long()]
            v = dcg / idcg.clamp(min=1e-12)
        out[name] = torch.where(empty, nan, v)
    return out


def relevant_from_csr(indptr, indices, rows, n_items: int) -> Tensor:
    """Dense ``BoolTensor[len(rows), n_items]`` of relevant items for a chunk of users.

    ``indptr``/``indices`` are CSR arrays (numpy or torch) of the user-item relevance
    matrix; ``rows`` are the user (row) ids of the chunk, in output order.
    """
    indptr = torch.as_tensor(np.asarray(indptr) if not isinstance(indptr, Tensor) else indptr).long()
    indices = torch.as_tensor(np.asarray(indices) if not isinstance(indices, Tensor) else indices).long()
    rows = torch.as_tensor(np.asarray(rows) if not isinstance(rows, Tensor) else rows).long().reshape(-1)
    starts, ends = indptr[rows], indptr[rows + 1]
    lengths = ends - starts
    out = torch.zeros(rows.shape[0], n_items, dtype=torch.bool)
    total = int(lengths.sum())
    if total:
        r = torch.repeat_interleave(torch.arange(rows.shape[0]), lengths)
        offsets = torch.arange(total) - torch.repeat_interleave(lengths.cumsum(0) - lengths, lengths)
        cols = indices[torch.repeat_interleave(starts, lengths) + offsets]
        out[r, cols] = True
    return out


def full_ranking_metrics(scores: Tensor, relevant: Tensor, metrics: Sequence[str]) -> dict[str, Tensor]:
    """Full-ranking metrics: rank all ``n`` items per user and score against ``relevant``.

    ``relevant`` is a ``BoolTensor[B, n]`` (a torch sparse tensor is densified).
    Callers must mask already-seen items themselves (e.g. set their scores to
    ``-inf``). Ties follow :func:`topk_with_ties`; NaN for users with no relevant item.
    """
    parsed = _parse_ranking(metrics, RANKING_METRICS)
    if relevant.is_sparse:
        relevant = relevant.to_dense()
    relevant = relevant.to(device=scores.device, dtype=torch.bool)
    if relevant.shape != scores.shape:
        raise ValueError(f"relevant shape {tuple(relevant.shape)} != scores shape {tuple(scores.shape)}")
    top = topk_with_ties(scores, max(k for _, _, k in parsed))
    return ranking_metrics_from_hits(relevant.gather(1, top), relevant.sum(1), [p[0] for p in parsed])


def sampled_ranking_metrics(pos_scores: Tensor, neg_scores: Tensor, metrics: Sequence[str]) -> dict[str, Tensor]:
    """Sampled ranking: each positive ranked among itself and its ``N`` negatives.

    ``rank = #(neg > pos) + #(neg == pos)`` — ties count AGAINST the positive
    (pessimistic). ``hit@k = rank < k``; ``ndcg@k = 1/log2(rank+2)`` and
    ``mrr@k = 1/(rank+1)`` if ``rank < k`` else 0. Only hit/ndcg/mrr are valid.
    Returns ``float64`` tensors of shape ``[P]`` (one value per positive).
    """
    parsed = _parse_ranking(metrics, SAMPLED_METRICS)
    pos = pos_scores.reshape(-1, 1)
    if neg_scores.dim() != 2 or neg_scores.shape[0] != pos.shape[0]:
        raise ValueError(f"neg_scores must be [P, N] with P={pos.shape[0]}, got {tuple(neg_scores.shape)}")
    rank = (neg_scores >= pos).sum(1).to(torch.float64)
    out: dict[str, Tensor] = {}
    for name, base, k in parsed:
        inside = (rank < k).to(torch.float64)
        if base == "hit":
            out[name] = inside
        elif base == "ndcg":
            out[name] = inside / torch.log2(rank + 2.0)
        else:
            out[name] = inside / (rank + 1.0)
    return out


# --------------------------------------------------------------------------- rating / classification
def _as64(x) -> Tensor:
    return torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x).detach().reshape(-1).to(torch.float64)


def rating_metrics(pred, target, metrics: Sequence[str] = RATING_METRICS) -> dict[str, float]:
    """``mse``, ``rmse``, ``mae`` between predictions and targets, as Python floats."""
    p = _as64(pred)
    t = _as64(target).to(p.device)
    if p.shape != t.shape or p.numel() == 0:
        raise ValueError(f"pred and target must be non-empty and equally sized, got {p.numel()} and {t.numel()}")
    err = p - t
    out: dict[str, float] = {}
    for m in [metrics] if isinstance(metrics, str) else metrics:
        base, _ = parse_metric(m)
        if base not in RATING_METRICS:
            raise ValueError(f"Metric {m!r} is not a rating metric; allowed: {', '.join(RATING_METRICS)}")
        mse = float((err * err).mean())
        out[base] = {"mse": mse, "rmse": mse**0.5, "mae": float(err.abs().mean())}[base]
    return out


def _binary_auc(y: Tensor, s: Tensor) -> float:
    """ROC AUC via the Mann-Whitney rank statistic with average ranks for ties."""
    uy = torch.unique(y)
    if not bool(((uy == 0) | (uy == 1)).all()):
        raise ValueError(f"auc needs binary labels in {{0, 1}}, got {uy.tolist()}")
    pos = y == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("auc is undefined when only one class is present in y_true")
    _, inv, counts = torch.unique(s, sorted=True, return_inverse=True, return_counts=True)
    c = counts.to(torch.float64)
    avg_rank = (c.cumsum(0) - c) + (c + 1.0) / 2.0  # 1-based average rank of each distinct score
    r_pos = avg_rank[inv][pos].sum()
    return float((r_pos - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def classification_metrics(
    y_true, y_pred=None, y_score=None, metrics: Sequence[str] | None = None
) -> dict[str, float]:
    """``accuracy``, ``f1_micro``, ``f1_macro`` (need ``y_pred``) and binary ``auc`` (needs ``y_score``).

    Labels may be any integers (multi-class). Macro F1 averages over the classes
    present in ``y_true`` or ``y_pred``; a class with no true positive has F1 0.
    For binary tasks pass e.g. ``y_pred = score > 0.5``. ``auc`` needs labels in
    {0, 1} and raises ``ValueError`` if only one class is present. With
    ``metrics=None`` every metric computable from the given inputs is returned.
    """
    if metrics is None:
        metrics = (["accuracy", "f1_micro", "f1_macro"] if y_pred is not None else []) + (
            ["auc"] if y_score is not None else []
        )
        if not metrics:
            raise ValueError("classification_metrics needs y_pred and/or y_score")
    yt = _as64(y_true)
    out: dict[str, float] = {}
    for m in [metrics] if isinstance(metrics, str) else metrics:
        base, _ = parse_metric(m)
        if base not in CLASSIFICATION_METRICS:
            raise ValueError(f"Metric {m!r} is not a classification metric; allowed: {', '.join(CLASSIFICATION_METRICS)}")
        if base == "auc":
            if y_score is None:
                raise ValueError("auc needs y_score")
            ys = _as64(y_score).to(yt.device)
            if ys.shape != yt.shape or yt.numel() == 0:
                raise ValueError("y_true and y_score must be non-empty and equally sized")
            out["auc"] = _binary_auc(yt, ys)
            continue
        if y_pred is None:
            raise ValueError(f"{base} needs y_pred")
        yp = _as64(y_pred).to(yt.device)
        if yp.shape != yt.shape or yt.numel() == 0:
            raise ValueError("y_true and y_pred must be non-empty and equally sized")
        if base == "accuracy":
            out[base] = float((yp == yt).to(torch.float64).mean())
            continue
        _, inv = torch.unique(torch.cat([yt, yp]), return_inverse=True)
        ti, pi = inv[: yt.numel()], inv[yt.numel():]
        n_cls = int(inv.max()) + 1
        tp = torch.bincount(ti[ti == pi], minlength=n_cls).to(torch.float64)
        fp = torch.bincount(pi, minlength=n_cls).to(torch.float64) - tp
        fn = torch.bincount(ti, minlength=n_cls).to(torch.float64) - tp
        if base == "f1_micro":
            out[base] = float(2 * tp.sum() / (2 * tp.sum() + fp.sum() + fn.sum()))
        else:  # every class here occurs in y_true or y_pred, so the denominator is > 0
            out[base] = float((2 * tp / (2 * tp + fp + fn)).mean())
    return out


def label_counts(y_true, y_pred) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-label true positives, false positives and false negatives of two boolean
    ``[n, n_labels]`` matrices (one True per row for single-label predictions)."""
    t, p = np.asarray(y_true, dtype=bool), np.asarray(y_pred, dtype=bool)
    if t.shape != p.shape or t.ndim != 2:
        raise ValueError(f"y_true and y_pred must be boolean [n, n_labels] matrices of one shape, "
                         f"got {t.shape} and {p.shape}")
    tp = (t & p).sum(0).astype(np.float64)
    return tp, (~t & p).sum(0).astype(np.float64), (t & ~p).sum(0).astype(np.float64)


def label_metrics(y_true, y_pred, metrics: Sequence[str] = ("accuracy", "f1_micro", "f1_macro")
                  ) -> dict[str, float]:
    """Classification metrics of boolean ``[n, n_labels]`` label matrices:

    * ``accuracy`` and ``subset_accuracy``: the share of rows predicted exactly (single-label:
      the share of correct labels; multi-label: scikit-learn's ``accuracy_score``);
    * ``f1_micro``: ``2 TP / (2 TP + FP + FN)`` summed over labels (single-label: the accuracy);
    * ``f1_macro``: the mean over labels of ``2 tp / (2 tp + fp + fn)``, over the labels that
      occur in ``y_true`` or ``y_pred`` (scikit-learn's convention);
    * ``hamming_loss``: the share of (row, label) cells predicted wrongly.
    """
    t, p = np.asarray(y_true, dtype=bool), np.asarray(y_pred, dtype=bool)
    tp, fp, fn = label_counts(t, p)
    if t.shape[0] == 0:
        raise ValueError("label metrics of no rows")
    out: dict[str, float] = {}
    for m in [metrics] if isinstance(metrics, str) else metrics:
        base, _ = parse_metric(m)
        if base in ("accuracy", "subset_accuracy"):
            out[base] = float((t == p).all(1).mean())
        elif base == "f1_micro":
            denom = 2 * tp.sum() + fp.sum() + fn.sum()
            out[base] = float(2 * tp.sum() / denom) if denom else 0.0
        elif base == "f1_macro":
            denom = 2 * tp + fp + fn
            seen = denom > 0
            out[base] = float((2 * tp[seen] / denom[seen]).mean()) if seen.any() else 0.0
        elif base == "hamming_loss":
            out[base] = float((t != p).mean())
        else:
            raise ValueError(f"Metric {m!r} is not a label metric; allowed: accuracy, f1_micro, "
                             f"f1_macro, {', '.join(MULTILABEL_METRICS)}")
    return out


def per_class_table(y_true, y_pred, classes) -> list[dict]:
    """One row per label: ``label``, ``precision`` = tp / (tp + fp), ``recall`` = tp / (tp + fn),
    ``f1`` = 2 tp / (2 tp + fp + fn) (each 0 where its denominator is) and ``support`` (rows
    that truly have the label)."""
    tp, fp, fn = label_counts(y_true, y_pred)

    def ratio(a, b):
        return np.divide(a, b, out=np.zeros_like(a), where=b > 0)

    prec, rec, f1 = ratio(tp, tp + fp), ratio(tp, tp + fn), ratio(2 * tp, 2 * tp + fp + fn)
    return [{"label": str(c), "precision": float(prec[k]), "recall": float(rec[k]),
             "f1": float(f1[k]), "support": int(tp[k] + fn[k])} for k, c in enumerate(classes)]


# --------------------------------------------------------------------------- accumulation
class MetricAccumulator:
    """Collect per-user metric tensors over chunks and average them.

    ``update`` appends a chunk (CPU copies); ``compute`` returns the NaN-ignoring
    mean per metric (NaN if all values are NaN); ``per_user`` returns the
    concatenated arrays in update order, aligned with ``user_ids``; ``n_excluded``
    counts users with NaN in any metric (e.g. no relevant item). ``unit``: what the ids are,
    ``"user"``, or ``"item"`` where items are what is evaluated (classification).
    """

    def __init__(self, unit: str = "user") -> None:
        self._vals: dict[str, list[np.ndarray]] = {}
        self._ids: list[np.ndarray] = []
        self.unit = unit

    def update(self, per_user: Mapping[str, Tensor], user_ids) -> None:
        ids = np.asarray(user_ids.detach().cpu() if isinstance(user_ids, Tensor) else user_ids).reshape(-1)
        if self._vals and set(per_user) != set(self._vals):
            raise ValueError(f"metric keys changed: {sorted(per_user)} vs {sorted(self._vals)}")
        for name, v in per_user.items():
            arr = np.asarray(v.detach().cpu().to(torch.float64) if isinstance(v, Tensor) else v, dtype=np.float64)
            arr = arr.reshape(-1)
            if arr.shape[0] != ids.shape[0]:
                raise ValueError(f"{name}: {arr.shape[0]} values for {ids.shape[0]} user ids")
            self._vals.setdefault(name, []).append(arr)
        self._ids.append(ids)

    @property
    def user_ids(self) -> np.ndarray:
        return np.concatenate(self._ids) if self._ids else np.zeros(0, dtype=np.int64)

    def per_user(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v) for k, v in self._vals.items()}

    @property
    def n_excluded(self) -> int:
        pu = self.per_user()
        if not pu:
            return 0
        return int(np.any(np.isnan(np.stack(list(pu.values()))), axis=0).sum())

    def gathered(self) -> "MetricAccumulator":
        """The values of every process of a distributed run, concatenated in rank order
        (:func:`mmkgrec.distributed.gather_concat`): each process evaluated its own block of
        users, so the result is the single-process accumulator (``self`` with one process)."""
        from .. import distributed

        if not distributed.active():
            return self
        parts = distributed.all_gather_objects((self.user_ids, self.per_user()))
        out = MetricAccumulator(self.unit)
        names = [k for k in parts[0][1]] or [k for _, vals in parts for k in vals]
        out._ids = [ids for ids, _ in parts]
        out._vals = {k: [vals.get(k, np.zeros(len(ids))) for ids, vals in parts]
                     for k in dict.fromkeys(names)}
        return out

    def compute(self) -> dict[str, float]:
        out = {}
        for k, v in self.per_user().items():
            ok = v[~np.isnan(v)]
            out[k] = float(ok.mean()) if ok.size else float("nan")
        return out
