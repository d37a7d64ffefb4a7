"""Metric names: what each evaluator computes, parsing and canonical forms.

A leaf module (it imports nothing, not even torch) so that the configuration can check metric
names as it reads them, before any data or model is loaded.

Names are lowercase, spaces ignored: ``recall@k``, ``hit@k``, ``ndcg@k``, ``mrr@k``,
``precision@k`` (ranking, ``k`` a positive integer), ``mse``, ``rmse``, ``mae`` (rating) and
``accuracy``, ``f1_micro``, ``f1_macro``, ``auc`` (classification), ``subset_accuracy``,
``hamming_loss`` (multi-label classification).

A metric's direction is declared here once (:data:`LOWER_IS_BETTER`); whatever chooses on a
metric (early stopping, the choice of a tuning trial) asks :func:`is_better` (a tune's study
:func:`direction`).
"""

from __future__ import annotations

RANKING_METRICS: tuple[str, ...] = ("recall", "hit", "ndcg", "mrr", "precision")
SAMPLED_METRICS: tuple[str, ...] = ("hit", "ndcg", "mrr")
RATING_METRICS: tuple[str, ...] = ("mse", "rmse", "mae")
CLASSIFICATION_METRICS: tuple[str, ...] = ("accuracy", "f1_micro", "f1_macro", "auc")
MULTILABEL_METRICS: tuple[str, ...] = ("subset_accuracy", "hamming_loss")
#: the metrics where a smaller value is the better one; every other metric is better larger
LOWER_IS_BETTER: frozenset[str] = frozenset({"mse", "rmse", "mae", "hamming_loss"})

_VALID = ", ".join([f"{m}@k" for m in RANKING_METRICS] + list(RATING_METRICS)
                   + list(CLASSIFICATION_METRICS) + list(MULTILABEL_METRICS))


def parse_metric(name: str) -> tuple[str, int | None]:
    """Parse a metric name (any case, spaces ignored) into ``(base, k)``.

    ``"MRR@10" -> ("mrr", 10)``, ``"RMSE" -> ("rmse", None)``. Ranking metrics
    require a positive integer ``k``; other metrics must not have one.
    Raises ``ValueError`` naming the bad string and listing the valid names.
    """
    if not isinstance(name, str):
        raise ValueError(f"Metric name must be a string, got {name!r}; valid: {_VALID}")
    s = "".join(name.split()).lower()
    base, sep, kstr = s.partition("@")
    if base in RANKING_METRICS:
        if sep and kstr.isdigit() and kstr.isascii() and int(kstr) > 0:
            return base, int(kstr)
        raise ValueError(f"Bad metric {name!r}: {base}@k needs a positive integer k; valid: {_VALID}")
    if not sep and base in RATING_METRICS + CLASSIFICATION_METRICS + MULTILABEL_METRICS:
        return base, None
    raise ValueError(f"Unknown metric {name!r}; valid: {_VALID}")


def canonical(name: str) -> str:
    """Return the canonical (normalised) form of a metric name, e.g. ``"NDCG@ 20" -> "ndcg@20"``."""
    base, k = parse_metric(name)
    return base if k is None else f"{base}@{k}"


def metric_names(metrics, topk) -> list[str]:
    """Config ``metrics`` x ``topk`` as canonical ranking metric names:
    ``[recall, ndcg@5] x [10, 20]`` -> ``['recall@10', 'recall@20', 'ndcg@5']``. A name without
    ``@k`` is a ranking metric taken at every ``topk``; ``ValueError`` names anything else."""
    out = []
    for m in metrics:
        if isinstance(m, str) and "@" in m:
            out.append(canonical(m))
            continue
        base = "".join(str(m).split()).lower()
        if base not in RANKING_METRICS:
            raise ValueError(f"Unknown ranking metric {m!r}; valid: {', '.join(RANKING_METRICS)}, "
                             "each alone (taken at every topk) or as name@k")
        out += [canonical(f"{base}@{k}") for k in topk]
    return out


def lower_is_better(name: str) -> bool:
    """True for a metric where smaller is better (``rmse``, ``hamming_loss``, ...)."""
    return parse_metric(name)[0] in LOWER_IS_BETTER


def is_better(value: float, best: float, name: str) -> bool:
    """Whether ``value`` of metric ``name`` improves on ``best`` (strictly; NaN never does, and
    anything beats a NaN ``best``)."""
    if value != value:
        return False
    if best != best:
        return True
    return value < best if lower_is_better(name) else value > best


def worst_value(name: str) -> float:
    """The value every real value of ``name`` improves on: ``inf`` or ``-inf``."""
    return float("inf") if lower_is_better(name) else -float("inf")


def direction(name: str) -> str:
    """``"maximize"`` or ``"minimize"``: the direction in which the metric ``name`` improves
    (the Optuna study of a tune)."""
    return "minimize" if lower_is_better(name) else "maximize"
