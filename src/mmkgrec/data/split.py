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
  fewer than two interactions are dropped. Nested (``inner_folds`` K >= 2, :func:`kfold_parts`):
  the outer test fold is set aside and enters no part; the rest of each user's interactions is
  dealt into K inner folds the same way, inner fold ``inner_fold`` being the test part, so model
  selection on the inner folds never reads the outer test fold (the outer folds are those of the
  plain split with the same seed). (Classification deals items, not interactions, into
  folds the same way: :func:`fold_parts`, :mod:`.targets`.)
* ``cold_item`` (:func:`cold_item_split`): a ``cold_item_ratio`` share of the items, half of them
  validation-only and half test-only, keeps no training interaction; the rest is ``random_ratio``.
* ``cold_user`` (:func:`cold_user_split`): ``random_ratio``, after which a ``cold_user_ratio``
  share of the users keep only their earliest ``cold_user_max_train`` training interactions.

The cold splits record their cold items or users (dense ids) in ``Split.stats`` (read them as
:attr:`Split.cold_items` / :attr:`Split.cold_users`), so that evaluation can report the metrics of
their targets alone; ``describe()`` gives their counts.

Users with fewer interactions than a split needs are dropped and counted in ``Split.stats``.

Which split a run uses is chosen from its config in one place, :mod:`.split_factory` (the CTR
split of labelled pairs is :mod:`.ctr`); the RecBole export of a split is :mod:`.export`. All of
them import this module, and it imports none of them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, MMKGRecError
from .dataset import Dataset, Interactions

SPLITS = ("random_ratio", "time_ratio", "leave_one_out", "given", "kfold")
COLD_SPLITS = ("cold_item", "cold_user")
#: the stats keys under which the cold splits keep their cold ids
COLD_KEYS = {"cold_item": "cold_items", "cold_user": "cold_users"}

log = logging.getLogger(__name__)


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

    @property
    def cold_items(self) -> np.ndarray | None:
        """Dense ids of the items a ``cold_item`` split kept out of training (None otherwise)."""
        return self._cold("cold_items")

    @property
    def cold_users(self) -> np.ndarray | None:
        """Dense ids of the users a ``cold_user`` split cut to their earliest interactions."""
        return self._cold("cold_users")

    def _cold(self, key: str) -> np.ndarray | None:
        ids = self.stats.get(key)
        return None if ids is None else np.asarray(ids, dtype=np.int64)

    def describe(self) -> dict:
        stats = {k: len(v) if k in COLD_KEYS.values() else v for k, v in self.stats.items()}
        return {"method": self.method, "train": len(self.train), "valid": len(self.valid),
                "test": len(self.test), **stats}


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


def kfold_parts(groups: np.ndarray, n_folds: int, fold: int, valid_ratio: float,
                rng: np.random.Generator, inner_folds: int = 0, inner_fold: int = 0) -> np.ndarray:
    """:func:`fold_parts`, or nested when ``inner_folds`` >= 2: the rows of outer fold ``fold``
    are set aside (part -1), the others dealt by :func:`fold_parts` into ``inner_folds`` folds
    with ``inner_fold`` as the test part. The outer folds are drawn first from ``rng``, exactly as
    without nesting, so the rows set aside are the plain split's test part."""
    if not inner_folds:
        return fold_parts(groups, n_folds, fold, valid_ratio, rng)
    if not isinstance(inner_folds, (int, np.integer)) or inner_folds < 2:
        raise ConfigError("inner_folds", f"must be 0 (not nested) or at least 2, got "
                          f"{inner_folds!r}")
    if not isinstance(inner_fold, (int, np.integer)) or not 0 <= inner_fold < inner_folds:
        raise ConfigError("inner_fold", f"must be in 0 .. {inner_folds - 1} (inner_folds "
                          f"{inner_folds}), got {inner_fold!r}")
    groups = np.asarray(groups, dtype=np.int64)
    outer = fold_parts(groups, n_folds, fold, 0.0, rng)  # the valid share draws nothing from rng
    part = np.full(len(groups), -1, dtype=np.int64)
    rest = np.flatnonzero(outer != 2)
    part[rest] = fold_parts(groups[rest], inner_folds, inner_fold, valid_ratio, rng)
    return part


def split_dataset(ds: Dataset, method: str = "random_ratio", ratios=(0.8, 0.1, 0.1),
                  seed: int = 2020, valid_ratio: float = 0.1, n_folds: int = 5,
                  fold: int = 0, inner_folds: int = 0, inner_fold: int = 0) -> Split:
    if method not in SPLITS:
        raise MMKGRecError(f"unknown split '{method}'; choose one of {SPLITS}")
    inter = ds.inter
    rng = np.random.default_rng(seed)
    n = len(inter)
    if method == "kfold":
        counts = np.bincount(inter.user, minlength=ds.n_users)
        ok = counts[inter.user] >= 2
        part = np.full(n, -1, dtype=np.int64)
        part[ok] = kfold_parts(inter.user[ok], n_folds, fold, valid_ratio, rng, inner_folds,
                               inner_fold)
        rows = [np.flatnonzero(part == j) for j in range(3)]
        if not len(rows[0]):
            raise MMKGRecError(f"split 'kfold' left no training data for dataset '{ds.name}'")
        stats = {"dropped_users": int(((counts > 0) & (counts < 2)).sum()),
                 "dropped_interactions": int((~ok).sum()), "seed": seed,
                 "n_folds": int(n_folds), "fold": int(fold), "valid_ratio": valid_ratio}
        if inner_folds:
            stats.update(inner_folds=int(inner_folds), inner_fold=int(inner_fold),
                         outer_test_set_aside=int((ok & (part == -1)).sum()))
        return Split(ds, inter.take(rows[0]), inter.take(rows[1]), inter.take(rows[2]), method,
                     stats)
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
        if len(test) == 0:
            raise MMKGRecError(f"dataset '{ds.name}' ({ds.source}): the given test file holds no "
                               "interaction of a user with training data, so there is nothing "
                               "to test on (split 'given')")
        return Split(ds, inter.take(train_rows), inter.take(valid_rows), test, method,
                     {"dropped_users": dropped, "seed": seed, "valid_ratio": valid_ratio})
    counts = np.bincount(inter.user, minlength=ds.n_users)
    part, ok_user = _cut(inter, ds.n_users, method, ratios, rng, ds.name)
    dropped = int((~ok_user & (counts > 0)).sum())
    return _parts(ds, part, method, {"dropped_users": dropped,
                                     "dropped_interactions": int((part == -1).sum()),
                                     "seed": seed})


def _cut(inter: Interactions, n_users: int, method: str, ratios, rng: np.random.Generator,
         name: str) -> tuple[np.ndarray, np.ndarray]:
    """The part of every row of ``inter`` under ``random_ratio``, ``time_ratio`` or
    ``leave_one_out`` (0 train, 1 valid, 2 test, -1 dropped with its user, too short for the
    split) and the bool mask of the users kept."""
    n = len(inter)
    if method == "random_ratio":
        order = np.lexsort((rng.random(n), inter.user))
    else:
        if inter.timestamp is None:
            raise MMKGRecError(f"split '{method}' needs timestamps; dataset '{name}' has none")
        order = np.lexsort((np.arange(n), inter.timestamp, inter.user))
    counts = np.bincount(inter.user, minlength=n_users)
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
    part_sorted = np.where(pos < cnt[u, 0], 0, np.where(pos < cnt[u, 0] + cnt[u, 1], 1, 2))
    part_sorted[~ok_user[u]] = -1
    part = np.empty(n, dtype=np.int64)
    part[order] = part_sorted
    return part, ok_user & (counts > 0)


def _parts(ds: Dataset, part: np.ndarray, method: str, stats: dict) -> Split:
    """The split whose rows of ``ds.inter`` are labelled by ``part`` (0, 1, 2; -1 dropped); the
    rows of each part keep the file order."""
    inter = ds.inter
    rows = [np.flatnonzero(part == j) for j in range(3)]
    if not len(rows[0]):
        raise MMKGRecError(f"split '{method}' left no training data for dataset '{ds.name}'")
    return Split(ds, inter.take(rows[0]), inter.take(rows[1]), inter.take(rows[2]), method, stats)


def _check_cold_ratio(key: str, ratio) -> float:
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio < 1:
        raise ConfigError(key, f"must be a number in [0, 1), got {ratio!r}")
    return float(ratio)


def _cold_count(key: str, ratio: float, n: int, what: str, name: str, least: int) -> int:
    """``floor(ratio * n)``, refused (naming ``key``) when a positive ratio gives fewer than
    ``least`` or leaves none of the ``n`` outside."""
    k = int(np.floor(ratio * n + 1e-9))
    if ratio > 0 and k < least:
        raise ConfigError(key, f"{ratio:g} of the {n} {what} of dataset '{name}' makes {k} cold "
                          f"{what}; at least {least} are needed")
    if k >= n:
        raise ConfigError(key, f"{ratio:g} of the {n} {what} of dataset '{name}' leaves no "
                          f"{what} with training interactions")
    return k


def cold_item_split(ds: Dataset, cold_ratio: float, ratios=(0.8, 0.1, 0.1),
                    seed: int = 2020) -> Split:
    """Item cold start: ``floor(cold_ratio * n)`` of the ``n`` items with interactions, drawn
    with ``seed`` (a stream of its own), keep none in training; the first half of them
    (rounded down) go to validation only, the rest to test only. The interactions of the other
    items are split per user as ``random_ratio`` with ``ratios`` and ``seed``; a user left
    without training interactions (too short for that split) is dropped with their cold
    interactions, and counted."""
    cold_ratio = _check_cold_ratio("cold_item_ratio", cold_ratio)
    inter = ds.inter
    present = np.flatnonzero(np.bincount(inter.item, minlength=ds.n_items))
    n_cold = _cold_count("cold_item_ratio", cold_ratio, len(present), "items", ds.name, 2)
    cold = np.random.default_rng([seed, 1]).permutation(present)[:n_cold]
    n_valid = n_cold // 2
    home = np.zeros(ds.n_items, dtype=np.int64)  # 0 warm, 1 validation-only, 2 test-only
    home[cold[:n_valid]], home[cold[n_valid:]] = 1, 2
    item_home = home[inter.item]
    warm = np.flatnonzero(item_home == 0)
    part = np.full(len(inter), -1, dtype=np.int64)
    part[warm], _ = _cut(inter.take(warm), ds.n_users, "random_ratio", ratios,
                         np.random.default_rng(seed), ds.name)
    has_train = np.zeros(ds.n_users, dtype=bool)
    has_train[inter.user[part == 0]] = True
    cold_rows = item_home > 0
    part[cold_rows] = np.where(has_train[inter.user[cold_rows]], item_home[cold_rows], -1)
    if not has_train.any():
        raise ConfigError("cold_item_ratio", f"{cold_ratio:g} leaves no training interactions "
                          f"in dataset '{ds.name}'")
    users = np.unique(inter.user)
    return _parts(ds, part, "cold_item", {
        "dropped_users": int((~has_train[users]).sum()),
        "dropped_interactions": int((part == -1).sum()), "seed": seed,
        "cold_item_ratio": cold_ratio, "cold_items_valid": int(n_valid),
        "cold_items_test": int(n_cold - n_valid), "cold_items": np.sort(cold).tolist()})


def cold_user_split(ds: Dataset, cold_ratio: float, max_train: int, ratios=(0.8, 0.1, 0.1),
                    seed: int = 2020) -> Split:
    """User cold start: the ``random_ratio`` split with ``ratios`` and ``seed``, after which
    ``floor(cold_ratio * n)`` of its ``n`` users, drawn with ``seed`` (a stream of its own), keep
    only their earliest ``max_train`` training interactions (by timestamp, ties in file order;
    in file order when the data has no timestamps, which the log says). Their other training
    interactions are dropped and counted; their validation and test interactions stay."""
    cold_ratio = _check_cold_ratio("cold_user_ratio", cold_ratio)
    if isinstance(max_train, bool) or not isinstance(max_train, int) or max_train < 0:
        raise ConfigError("cold_user_max_train", f"must be an integer >= 0, got {max_train!r}")
    base = split_dataset(ds, "random_ratio", ratios, seed)
    users = np.unique(base.train.user)
    n_cold = _cold_count("cold_user_ratio", cold_ratio, len(users), "users", ds.name, 1)
    cold = np.sort(np.random.default_rng([seed, 1]).permutation(users)[:n_cold])
    train = base.train
    n = len(train)
    if train.timestamp is None:
        log.info("cold_user: dataset '%s' has no timestamps; cold users keep their first %d "
                 "training interactions in file order", ds.name, max_train)
        order = np.lexsort((np.arange(n), train.user))
    else:
        order = np.lexsort((np.arange(n), train.timestamp, train.user))
    pos, _ = _group_positions(train.user, order)
    is_cold = np.zeros(ds.n_users, dtype=bool)
    is_cold[cold] = True
    keep = np.ones(n, dtype=bool)
    keep[order] = ~is_cold[train.user[order]] | (pos < max_train)
    stats = {**base.stats, "cold_user_ratio": cold_ratio, "cold_user_max_train": max_train,
             "cold_user_dropped_train": int((~keep).sum()), "cold_users": cold.tolist()}
    return Split(ds, train.take(np.flatnonzero(keep)), base.valid, base.test, "cold_user", stats)
