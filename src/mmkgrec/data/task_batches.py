"""Training batches of the rating and classification tasks: rows of named, aligned arrays (the
rated (user, item, rating) interactions, or the training items and their label rows), shuffled
every epoch and cut into mini-batches of tensors keyed by name."""

from __future__ import annotations

import numpy as np
import torch


class ShuffledBatches:
    """One epoch (``epoch(rng, device)``) of ``{name: tensor}`` mini-batches over the rows of
    ``arrays`` (each ``[n, ...]``), in an order drawn from ``rng``."""

    def __init__(self, arrays: dict[str, np.ndarray], batch_size: int):
        lengths = {len(a) for a in arrays.values()}
        if len(lengths) != 1:
            sizes = {k: len(a) for k, a in arrays.items()}
            raise ValueError(f"arrays of different lengths: {sizes}")
        self.arrays = {k: np.ascontiguousarray(a) for k, a in arrays.items()}
        self.n, self.batch_size = lengths.pop(), int(batch_size)

    def __len__(self):
        return (self.n + self.batch_size - 1) // self.batch_size

    def epoch(self, rng: np.random.Generator, device="cpu"):
        perm = rng.permutation(self.n)
        tensors = {k: torch.from_numpy(np.ascontiguousarray(a[perm])).to(device)
                   for k, a in self.arrays.items()}
        for s in range(0, self.n, self.batch_size):
            yield {k: t[s:s + self.batch_size] for k, t in tensors.items()}


def rating_batches(split, batch_size: int) -> ShuffledBatches:
    """``{"users", "items", "ratings"}`` batches of the training interactions."""
    t = split.train
    return ShuffledBatches({"users": t.user, "items": t.item,
                            "ratings": np.asarray(t.rating, dtype=np.float32)}, batch_size)


def label_batches(labels, batch_size: int) -> ShuffledBatches:
    """``{"items", "targets"}`` batches of the training items (their label rows; not ``labels``,
    the key of the click-through batches) (a
    :class:`~mmkgrec.data.targets.TrainingLabels`)."""
    return ShuffledBatches({"items": labels.items, "targets": labels.labels}, batch_size)
