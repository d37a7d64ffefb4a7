"""Uniform negative sampling that excludes a user's known items, vectorised by rejection.

The items negatives are drawn among are set by ``negative_items`` (:func:`negative_pool`): every
item (``all``, the default), or only the items with at least one training interaction (``seen``):
under a ``cold_item`` split the held-out items are never a positive, so uniform draws over every
item make them *only* negatives, and the loss learns which items were held out rather than what
users like (cold-start work such as DropoutNet and CLCRec samples from the training items).
"""

from __future__ import annotations

import logging
import weakref

import numpy as np

log = logging.getLogger(__name__)
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


_WARNED: dict[int, weakref.ref] = {}  # training sets already warned about (id -> the set)


def _first_warning(train) -> bool:
    """True the first time ``train`` (the same object) asks, False after."""
    ref = _WARNED.get(id(train))
    if ref is not None and ref() is train:
        return False
    _WARNED[id(train)] = weakref.ref(train)
    return True


def negative_pool(train, n_items: int, config) -> np.ndarray | None:
    """The items training negatives are drawn among under ``config``'s ``negative_items``:
    ``None`` for ``all`` (every item; the draws are those of a sampler without a pool), else the
    sorted ids of the items ``train`` holds at least once (``seen``). ``all`` under a
    ``cold_item`` split logs one warning per training set."""
    from ..config import config_value

    if config_value(config, "negative_items") == "all":
        if config_value(config, "split") == "cold_item" and _first_warning(train):
            log.warning("negative_items: all with split cold_item: the held-out items are never "
                        "a positive, so uniform negatives teach the model to push exactly those "
                        "items down; negative_items: seen draws negatives among the training "
                        "items only, as a real cold start would")
        return None
    pool = np.unique(np.asarray(train.item, dtype=np.int64))
    return pool[(pool >= 0) & (pool < n_items)]


def sample_negatives(users: np.ndarray, n_items: int, known: KnownPairs,
                     rng: np.random.Generator, n: int = 1, max_rounds: int = 100,
                     pool: np.ndarray | None = None) -> np.ndarray:
    """``[len(users), n]`` items drawn uniformly among those ``known`` does not hold for the
    user: among all ``n_items`` items, or among the item ids ``pool`` when given
    (:func:`negative_pool`). Collisions are redrawn until none remain."""
    users = np.asarray(users, dtype=np.int64)
    if pool is None:
        def draw(size):
            return rng.integers(0, n_items, size=size, dtype=np.int64)
    else:
        if len(pool) == 0:
            from ..errors import LimitError

            raise LimitError("negative_items: seen leaves no item to draw negatives from (no "
                             "training interactions)")

        def draw(size):
            return pool[rng.integers(0, len(pool), size=size, dtype=np.int64)]
    out = draw((len(users), n))
    if out.size == 0:
        return out
    flat = out.reshape(-1)
    todo = np.flatnonzero(known.contains(np.repeat(users, n), flat))
    for _ in range(max_rounds):
        if len(todo) == 0:
            return out
        flat[todo] = draw(len(todo))
        todo = todo[known.contains(users[todo // n], flat[todo])]
    from ..errors import LimitError

    raise LimitError("negative sampling did not converge: some users interacted with (almost) "
                     "every item")
