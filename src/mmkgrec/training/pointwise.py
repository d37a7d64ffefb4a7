"""Pointwise training (``train_loss: bce``): shuffled ``(users, items, labels)`` batches that
:meth:`mmkgrec.models.base.Recommender.pointwise_loss` turns into a log loss on
``sigmoid(score)``, as KGCN trains for CTR prediction.

The pairs are a CTR split's labelled training pairs (fixed negatives, drawn once, as in KGCN), or,
for any other split, the training positives plus ``num_neg`` uniform negatives per positive drawn
afresh every epoch (excluding the user's training items).
"""

from __future__ import annotations

import numpy as np
import torch

from ..config import config_value
from ..errors import ConfigError
from .sampling import KnownPairs, sample_negatives


class LabelledBatches:
    """One epoch of shuffled ``{"users", "items", "labels"}`` batches (labels float32 0/1).

    With ``num_neg > 0`` the given pairs must all be positives and every epoch adds ``num_neg``
    fresh label-0 items per pair, drawn uniformly among the items ``known`` does not hold for
    the user."""

    def __init__(self, users, items, labels, batch_size: int, num_neg: int = 0,
                 n_items: int | None = None, known: KnownPairs | None = None):
        self.users = np.asarray(users, dtype=np.int64)
        self.items = np.asarray(items, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.float32)
        self.batch_size, self.num_neg = int(batch_size), int(num_neg)
        self.n_items, self.known = n_items, known
        if self.num_neg and (n_items is None or known is None):
            raise ValueError("fresh negatives need n_items and known pairs")

    @classmethod
    def from_split(cls, split, config) -> "LabelledBatches":
        """The CTR split's labelled training pairs, else training positives + fresh negatives."""
        bs = config["train_batch_size"]
        labelled = getattr(split, "labelled", None)
        if labelled:
            t = labelled["train"]
            return cls(t.user, t.item, t.rating, bs)
        t = split.train
        known = KnownPairs(t.user, t.item, split.n_users, split.n_items)
        return cls(t.user, t.item, np.ones(len(t), np.float32), bs, max(1, config["num_neg"]),
                   split.n_items, known)

    def __len__(self):
        n = len(self.users) * (1 + self.num_neg)
        return (n + self.batch_size - 1) // self.batch_size

    def epoch(self, rng: np.random.Generator, device="cpu"):
        users, items, labels = self.users, self.items, self.labels
        if self.num_neg:
            neg = sample_negatives(users, self.n_items, self.known, rng, self.num_neg)
            users = np.concatenate([users, np.repeat(users, self.num_neg)])
            items = np.concatenate([items, neg.reshape(-1)])
            labels = np.concatenate([labels, np.zeros(neg.size, np.float32)])
        perm = rng.permutation(len(users))
        u, i, y = (torch.from_numpy(np.ascontiguousarray(a[perm])).to(device)
                   for a in (users, items, labels))
        for s in range(0, len(perm), self.batch_size):
            sl = slice(s, s + self.batch_size)
            yield {"users": u[sl], "items": i[sl], "labels": y[sl]}


def training_batches(model, split, config):
    """The batches the trainer iterates: the model's own (``make_batches``) or pairwise ones for
    ``train_loss: bpr``; for ``bce``, :class:`LabelledBatches`, which also replace the CF phase of
    a model that alternates CF and KG phases (KGAT's
    :class:`~mmkgrec.training.kg_batches.AlternatingBatches`; its KG phase is unchanged)."""
    from .kg_batches import AlternatingBatches
    from .trainer import PairwiseBatches

    own = model.make_batches(split, config)
    if config_value(config, "train_loss") != "bce":
        if own is not None:
            return own
        return PairwiseBatches(split.train, split.n_items, config["train_batch_size"],
                               config["num_neg"])
    labelled = LabelledBatches.from_split(split, config)
    if own is None:
        return labelled
    if isinstance(own, AlternatingBatches):
        own.cf = labelled
        return own
    raise ConfigError("train_loss", f"'bce' is not available for {model.name}: its training "
                      f"batches ({type(own).__name__}) have no separate CF part to replace")
