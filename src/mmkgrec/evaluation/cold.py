"""Cold-start metrics: a model's accuracy on the items or users its training part did not know.

A ``cold_item`` split keeps some items out of training, a ``cold_user`` split cuts some users to
their earliest interactions (:mod:`mmkgrec.data.split`); the split records which. Their metrics
are those of the run's own protocol (full ranking, sampled, next-item) with only the targets on
the cold items, or of the cold users, counted (:func:`~.evaluator.evaluate_restricted` with ``items``
/ ``users``): every item is still ranked and masked as usual, so the figures sit beside the overall
ones of the same evaluation.
"""

from __future__ import annotations

import numpy as np

from ..data.split import Split
from .evaluator import evaluate_restricted


def cold_subsets(split: Split) -> dict[str, tuple[str, np.ndarray]]:
    """The cold subsets of ``split``: ``{"cold_items": ("items", mask)}`` and / or
    ``{"cold_users": ("users", mask)}`` (bool masks over the items or users); empty for a split
    without any."""
    out = {}
    for name, ids, n, kind in (("cold_items", split.cold_items, split.n_items, "items"),
                               ("cold_users", split.cold_users, split.n_users, "users")):
        if ids is not None:
            mask = np.zeros(n, dtype=bool)
            mask[ids] = True
            out[name] = (kind, mask)
    return out


def evaluate_cold(split: Split, model, config, part: str = "test",
                  device: str | None = None) -> dict[str, dict]:
    """``model``'s metrics on ``part`` restricted to each cold subset of ``split``
    (:func:`cold_subsets`): per subset, ``items`` or ``users`` (how many are cold), ``targets``
    (interactions of ``part`` that count), ``users_evaluated``, ``metrics`` (mean over those
    users; NaN without targets) and ``per_user`` (``user_ids`` and one array per metric)."""
    target = split.part(part)
    out = {}
    for name, (kind, mask) in cold_subsets(split).items():
        hits = mask[target.item] if kind == "items" else mask[target.user]
        res = evaluate_restricted(split, part, config, model, device, **{kind: mask})
        out[name] = {kind: int(mask.sum()), "targets": int(hits.sum()),
                     "users_evaluated": res.pop("users"), **res}
    return out
