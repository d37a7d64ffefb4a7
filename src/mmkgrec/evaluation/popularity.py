"""Accuracy by item popularity: where in the catalogue a model earns its average.

Items are cut into groups by their number of training interactions (group 0 the most popular);
each group is evaluated under the model's own protocol (full ranking, sampled, next-item), every
item ranked as usual, with only the targets on that group's items counted
(:func:`~.evaluator.evaluate_restricted` with ``items``). On a dense
split the popular items hold most test interactions, so the overall average says little about
the long tail, the part of the catalogue content features (VBPR, MMGCN, ...) are meant to help.
"""

from __future__ import annotations

import numpy as np

from ..data.split import Split
from .evaluator import evaluate_restricted


def popularity_groups(split: Split, n_groups: int = 3) -> np.ndarray:
    """The group of every item (``[n_items]`` int64, 0 = most popular): items sorted by their
    training interactions, most first (ties: lower index first), cut into ``n_groups`` parts of
    equal size (the first parts one item larger where the count does not divide)."""
    return _groups(np.bincount(split.train.item, minlength=split.n_items), n_groups)


def _groups(counts: np.ndarray, n_groups: int) -> np.ndarray:
    """:func:`popularity_groups` from the items' training interaction ``counts``."""
    n_items = len(counts)
    if not isinstance(n_groups, (int, np.integer)) or not 1 <= n_groups <= n_items:
        raise ValueError(f"n_groups must be an integer from 1 to the {n_items} items, got {n_groups!r}")
    order = np.lexsort((np.arange(n_items), -counts))
    groups = np.empty(n_items, dtype=np.int64)
    for g, members in enumerate(np.array_split(order, n_groups)):
        groups[members] = g
    return groups


def evaluate_by_popularity(split: Split, model, config, n_groups: int = 3, part: str = "test",
                           device: str | None = None) -> list[dict]:
    """``model``'s metrics per popularity group (:func:`popularity_groups`) on ``part``, under
    the protocol ``config`` gives it (full ranking, the sampled mode, or next-item for a
    sequential model; not ``ctr``). One dict per group, most popular first: ``group``, ``items``
    (how many), ``train_interactions`` ([fewest, most] of its items), ``targets``
    (interactions of ``part`` on its items), ``users`` (users with at least one), ``metrics``
    (mean over those users; NaN for a group without targets) and ``per_user`` (``user_ids`` and
    one array per metric, for paired tests)."""
    counts = np.bincount(split.train.item, minlength=split.n_items)
    groups = _groups(counts, n_groups)
    target = split.part(part)
    out = []
    for g in range(n_groups):
        members = groups == g
        res = evaluate_restricted(split, part, config, model, device, items=members)
        out.append({"group": g, "items": int(members.sum()),
                    "train_interactions": [int(counts[members].min()), int(counts[members].max())],
                    "targets": int(members[target.item].sum()), **res})
    return out
