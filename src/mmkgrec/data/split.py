"""Deterministic, seeded train/validation/test splits, all vectorised over users.

* ``random_ratio``: per user, interactions shuffled and cut by ratio (RecBole's ``RS`` with
  ``group_by: user``; the same rounding: each non-train part gets ``floor(ratio * n)``, raised to
  one while the train part keeps more than one).
* ``time_ratio``: the same cut on each user's interactions ordered by time (equal timestamps keep
  file order).
* ``leave_one_out``: last interaction by time to test, the one before to validation.
* ``given``: a train/test pair from the data (KGAT); validation carved from train by ``valid_ratio``
  per user, at random.
* ``kfold``: each user's interactions dealt at random into ``n_folds`` folds (sizes differ by at
  most one); fold ``fold`` is the test part, and the ``valid_ratio`` slice of the user's other
  folds, at random, the validation part, so nothing chosen on validation reads the test fold.
  Over ``fold = 0 .. n_folds-1`` (same seed) every interaction is tested exactly once. Users with
  fewer than two interactions are dropped. (Classification deals items, not interactions, into
  folds the same way: :func:`fold_parts`, :mod:`.targets`.)

Users with fewer interactions than a split needs are dropped and counted in ``Split.stats``.

Which split a run uses is chosen from its config in one place, :mod:`.split_factory` (the CTR
split of labelled pairs is :mod:`.ctr`); the RecBole export of a split is :mod:`.export`. All of
them import this module, and it imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, MMKGRecError
from .dataset import Dataset, Interactions

SPLITS = ("random_ratio", "time_ratio", "leave_one_out", "given", "kfold")


@dataclass
class Split:
    dataset: Dataset
    train: Interactions
    valid: Interactions
    test: Interactions
    method: str = ""
    stats: dict = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return self.dataset.n_users

    @property
    def n_items(self) -> int:
        return self.dataset.n_items

    def part(self, name: str) -> Interactions:
        if name not in ("train", "valid", "test"):
            raise ValueError(f"unknown split part '{name}'")
        return getattr(self, name)

    def csr(self, name: str):
        return self.part(name).csr(self.n_users, self.n_items)

    def describe(self) -> dict:
        return {"method": self.method, "train": len(self.train), "valid": len(self.valid),
                "test": len(self.test), **self.stats}


def _group_positions(users: np.ndarray, order: np.ndarray):
    """For interactions in ``order`` (grouped by user): per-row position in its user's group and
    the group's size."""
    u = users[order]
    counts = np.bincount(u)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.arange(len(u)) - starts[u]
    return pos, counts[u]


def ratio_counts(n: np.ndarray, ratios: list[float]) -> np.ndarray:
    """Per-user part sizes for ratio splits, RecBole's rounding rule, vectorised.

    Non-train parts get ``floor(ratio * n)``; then each empty one takes one interaction from the
    train part while that part has more than one."""
    ratios = np.asarray(ratios, dtype=np.float64) / np.sum(ratios)
    cnt = np.floor(ratios[None, :] * n[:, None] + 1e-9).astype(np.int64)
    cnt[:, 0] = n - cnt[:, 1:].sum(1)
    for j in range(1, len(ratios)):
        move = (cnt[:, 0] > 1) & (cnt[:, j] == 0)
        cnt[move, 0] -= 1
        cnt[move, j] += 1
    return cnt


def check_ratios(ratios) -> list:
    """``split_ratio`` as a list, checked: three non-negative shares, a positive train share."""
    ratios = list(ratios)
    if len(ratios) != 3 or min(ratios) < 0 or ratios[0] <= 0:
        raise MMKGRecError(f"split_ratio must be three non-negative numbers with a positive "
                           f"train share, got {ratios}")
    return ratios


def fold_parts(groups: np.ndarray, n_folds: int, fold: int, valid_ratio: float,
               rng: np.random.Generator) -> np.ndarray:
    """Part of each row (0 train, 1 valid, 2 test) under k-fold within each group (``groups``:
    dense ids, a user per interaction, or one group of items): a group's rows are shuffled and
    dealt into the folds from a random fold on, so fold sizes differ by at most one; rows of fold
    ``fold`` are the test part; of the others, the ``valid_ratio`` share (floor, at least one
    where two or more rows remain and the ratio is positive), at random, the validation part."""
    if not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise ConfigError("n_folds", f"k-fold needs at least 2 folds, got {n_folds!r}")
    if not isinstance(fold, (int, np.integer)) or not 0 <= fold < n_folds:
        raise ConfigError("fold", f"must be in 0 .. {n_folds - 1} (n_folds {n_folds}), got "
                          f"{fold!r}")
    groups = np.asarray(groups, dtype=np.int64)
    n = len(groups)
    part = np.zeros(n, dtype=np.int64)
    if n == 0:
        return part
    order = np.lexsort((rng.random(n), groups))
    pos, _ = _group_positions(groups, order)
    g = groups[order]
    offset = rng.integers(0, n_folds, size=int(g.max()) + 1)
    test = (pos + offset[g]) % n_folds == fold
    pool = ~test
    cs = np.cumsum(pool)
    start = np.arange(n) - pos
    rank = cs - np.where(start > 0, cs[start - 1], 0) - 1  # position among the group's pool
    size = np.bincount(g, weights=pool)[g]
    n_valid = np.floor(size * valid_ratio + 1e-9)
    n_valid = np.where((n_valid == 0) & (size > 1) & (valid_ratio > 0), 1, n_valid)
    valid = pool & (rank >= size - n_valid)
    part[order] = np.where(test, 2, np.where(valid, 1, 0))
    return part


def split_dataset(ds: Dataset, method: str = "random_ratio", ratios=(0.8, 0.1, 0.1),
                  seed: int = 2020, valid_ratio: float = 0.1, n_folds: int = 5,
                  fold: int = 0) -> Split:
    if method not in SPLITS:
        raise MMKGRecError(f"unknown split '{method}'; choose one of {SPLITS}")
    inter = ds.inter
    rng = np.random.default_rng(seed)
    n = len(inter)
    if method == "kfold":
        counts = np.bincount(inter.user, minlength=ds.n_users)
        ok = counts[inter.user] >= 2
        part = np.full(n, -1, dtype=np.int64)
        part[ok] = fold_parts(inter.user[ok], n_folds, fold, valid_ratio, rng)
        rows = [np.flatnonzero(part == j) for j in range(3)]
        if not len(rows[0]):
            raise MMKGRecError(f"split 'kfold' left no training data for dataset '{ds.name}'")
        return Split(ds, inter.take(rows[0]), inter.take(rows[1]), inter.take(rows[2]), method,
                     {"dropped_users": int(((counts > 0) & (counts < 2)).sum()),
                      "dropped_interactions": int((~ok).sum()), "seed": seed,
                      "n_folds": int(n_folds), "fold": int(fold), "valid_ratio": valid_ratio})
    if method == "given":
        if ds.given_test is None:
            raise MMKGRecError(f"dataset '{ds.name}' has no given test file; split 'given' needs "
                               "one (KGAT train.txt/test.txt)")
        order = np.lexsort((rng.random(n), inter.user))
        pos, size = _group_positions(inter.user, order)
        n_valid = np.floor(size * valid_ratio + 1e-9).astype(np.int64)
        n_valid = np.where((n_valid == 0) & (size > 1) & (valid_ratio > 0), 1, n_valid)
        is_valid = pos >= size - n_valid
        valid_rows, train_rows = np.sort(order[is_valid]), np.sort(order[~is_valid])
        test = ds.given_test
        test_has_train = np.isin(test.user, inter.user)
        dropped = int(len(np.unique(test.user[~test_has_train])))
        test = test.take(np.flatnonzero(test_has_train))
        return Split(ds, inter.take(train_rows), inter.take(valid_rows), test, method,
                     {"dropped_users": dropped, "seed": seed, "valid_ratio": valid_ratio})
    if method == "random_ratio":
        order = np.lexsort((rng.random(n), inter.user))
    else:
        if inter.timestamp is None:
            raise MMKGRecError(f"split '{method}' needs timestamps; dataset '{ds.name}' has none")
        order = np.lexsort((np.arange(n), inter.timestamp, inter.user))
    counts = np.bincount(inter.user, minlength=ds.n_users)
    if method == "leave_one_out":
        cnt = np.stack([counts - 2, np.ones_like(counts), np.ones_like(counts)], 1)
        need = 3
    else:
        ratios = check_ratios(ratios)
        cnt = ratio_counts(counts, ratios)
        need = 1 + sum(r > 0 for r in ratios[1:])
    ok_user = (counts >= need) & (cnt.min(1) >= 0)
    # a user must have at least one interaction in each part with a positive share
    for j in range(3):
        if method == "leave_one_out" or j == 0 or ratios[j] > 0:
            ok_user &= cnt[:, j] >= 1
    pos, _ = _group_positions(inter.user, order)
    u = inter.user[order]
    part = np.where(pos < cnt[u, 0], 0, np.where(pos < cnt[u, 0] + cnt[u, 1], 1, 2))
    part[~ok_user[u]] = -1
    rows = [np.sort(order[part == j]) for j in range(3)]
    dropped = int((~ok_user & (counts > 0)).sum())
    if not len(rows[0]):
        raise MMKGRecError(f"split '{method}' left no training data for dataset '{ds.name}'")
    return Split(ds, inter.take(rows[0]), inter.take(rows[1]), inter.take(rows[2]), method,
                 {"dropped_users": dropped, "dropped_interactions": int((part == -1).sum()),
                  "seed": seed})
