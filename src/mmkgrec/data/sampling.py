"""Uniform negative sampling that excludes a user's known items, vectorised by rejection."""

from __future__ import annotations

import numpy as np

DENSE_LIMIT = 64_000_000  # user x item cells up to which membership uses a dense bool table


class KnownPairs:
    """Membership test for (user, item) pairs: a dense boolean table when ``n_users * n_items``
    is small (one random read per query), else binary search over sorted ``user * n_items + item``
    keys."""

    def __init__(self, users, items, n_users: int, n_items: int):
        users = np.asarray(users, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        self.n_items = n_items
        # distinct known items per user, for the bound of check_room
        keys = np.unique(users * n_items + items)
        self.per_user = np.bincount(keys // max(n_items, 1), minlength=n_users)
        self.dense = None
        self.keys = None
        if n_users * n_items <= DENSE_LIMIT:
            self.dense = np.zeros(n_users * n_items, dtype=bool)
            self.dense[users * n_items + items] = True
        else:
            self.keys = np.unique(users * n_items + items)

    def check_room(self, users, n: int, key: str = "sampled_negatives") -> None:
        """LimitError naming ``key`` and the largest value allowed when ``n`` exceeds the items
        some of ``users`` have not interacted with (the sampled candidates are drawn among
        those)."""
        users = np.unique(np.asarray(users, dtype=np.int64))
        if len(users) == 0:
            return
        room = int(self.n_items - self.per_user[users].max())
        if n > room:
            from ..errors import LimitError

            raise LimitError(f"config key '{key}': {n} negatives per positive, but a user of this "
                             f"split has only {room} items it never interacted with; the maximum "
                             f"here is {room}")

    def contains(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        keys = users * self.n_items + items
        if self.dense is not None:
            return self.dense[keys]
        if len(self.keys) == 0:
            return np.zeros(keys.shape, dtype=bool)
        pos = np.searchsorted(self.keys, keys).clip(max=len(self.keys) - 1)
        return self.keys[pos] == keys


def sample_negatives(users: np.ndarray, n_items: int, known: KnownPairs,
                     rng: np.random.Generator, n: int = 1, max_rounds: int = 100) -> np.ndarray:
    """``[len(users), n]`` items drawn uniformly among those ``known`` does not hold for the
    user. Collisions are redrawn until none remain."""
    users = np.asarray(users, dtype=np.int64)
    out = rng.integers(0, n_items, size=(len(users), n), dtype=np.int64)
    if out.size == 0:
        return out
    flat = out.reshape(-1)
    todo = np.flatnonzero(known.contains(np.repeat(users, n), flat))
    for _ in range(max_rounds):
        if len(todo) == 0:
            return out
        flat[todo] = rng.integers(0, n_items, size=len(todo), dtype=np.int64)
        todo = todo[known.contains(users[todo // n], flat[todo])]
    from ..errors import LimitError

    raise LimitError("negative sampling did not converge: some users interacted with (almost) "
                     "every item")
