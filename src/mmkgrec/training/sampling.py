"""Uniform negative sampling that excludes a user's known items, vectorised by rejection."""

from __future__ import annotations

import numpy as np


def sample_negatives(users: np.ndarray, n_items: int, known_keys: np.ndarray,
                     rng: np.random.Generator, n: int = 1, max_rounds: int = 100) -> np.ndarray:
    """``[len(users), n]`` items drawn uniformly from those with ``user * n_items + item`` not in
    ``known_keys`` (sorted). Collisions are redrawn until none remain."""
    users = np.asarray(users, dtype=np.int64)
    out = rng.integers(0, n_items, size=(len(users), n), dtype=np.int64)
    if len(known_keys) == 0 or out.size == 0:
        return out
    base = (users * n_items)[:, None]
    todo = np.flatnonzero(_is_known(base + out, known_keys).ravel())
    for _ in range(max_rounds):
        if len(todo) == 0:
            return out
        flat = out.reshape(-1)
        flat[todo] = rng.integers(0, n_items, size=len(todo), dtype=np.int64)
        still = _is_known(users[todo // n] * n_items + flat[todo], known_keys)
        todo = todo[still]
    raise RuntimeError("negative sampling did not converge: some users interacted with (almost) "
                       "every item")


def _is_known(keys: np.ndarray, known: np.ndarray) -> np.ndarray:
    pos = np.searchsorted(known, keys).clip(max=len(known) - 1)
    return known[pos] == keys
