"""Training batches for knowledge-graph models: KG triples with corrupted tails, joint CF + KG
batches (CKE) and alternating CF-then-KG epochs (KGAT).

Corrupted tails are drawn uniformly over all entities, excluding every ``t'`` for which
``(h, r, t')`` is a true triple (membership by :class:`~mmkgrec.training.sampling.KnownPairs` over
``(h, r)`` keys, redrawn by rejection as for user negatives; cheap because KG heads have few tails
per relation).
"""

from __future__ import annotations

import numpy as np
import torch

from .sampling import KnownPairs, sample_negatives
from .trainer import PairwiseBatches


class KGTripleBatches:
    """Shuffled ``(heads, relations, tails, neg_tails)`` batches over ``triples [m, 3]``."""

    def __init__(self, triples: np.ndarray, n_entities: int, batch_size: int,
                 n_relations: int | None = None):
        t = np.asarray(triples, dtype=np.int64).reshape(-1, 3)
        self.h, self.r, self.t = t[:, 0], t[:, 1], t[:, 2]
        self.n_entities, self.batch_size = int(n_entities), int(batch_size)
        self.n_rel = int(n_relations if n_relations is not None else (self.r.max() + 1 if len(t) else 1))
        self.hr = self.h * self.n_rel + self.r
        self.known = KnownPairs(self.hr, self.t, self.n_entities * self.n_rel, self.n_entities)

    def __len__(self):
        return (len(self.h) + self.batch_size - 1) // self.batch_size

    def corrupt(self, idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A corrupted tail for each triple ``idx``: uniform over entities, never a true tail."""
        return sample_negatives(self.hr[idx], self.n_entities, self.known, rng, 1)[:, 0]

    def order(self, rng: np.random.Generator, n: int | None = None) -> np.ndarray:
        """Triple indices of one pass: a permutation, or ``n`` indices cycling through fresh
        permutations."""
        m = len(self.h)
        if n is None:
            return rng.permutation(m)
        reps = -(-n // m) if m else 0
        return np.concatenate([rng.permutation(m) for _ in range(reps)])[:n] if reps else \
            np.empty(0, np.int64)

    def tensors(self, idx: np.ndarray, rng: np.random.Generator, device="cpu") -> dict:
        neg = self.corrupt(idx, rng)
        return {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in (
            ("heads", self.h[idx]), ("relations", self.r[idx]), ("tails", self.t[idx]),
            ("neg_tails", neg))}

    def epoch(self, rng: np.random.Generator, device="cpu"):
        idx = self.order(rng)
        allt = self.tensors(idx, rng, device)
        for s in range(0, len(idx), self.batch_size):
            yield {"phase": "kg", **{k: v[s:s + self.batch_size] for k, v in allt.items()}}


class JointBatches:
    """CKE's batches: each step holds a CF batch (``users, pos_items, neg_items``) and a KG batch
    of the same size (``heads, relations, tails, neg_tails``) drawn by cycling through shuffled
    triples; the model sums both losses in one step. An epoch has as many steps as CF batches."""

    def __init__(self, cf: PairwiseBatches, kg: KGTripleBatches):
        self.cf, self.kg = cf, kg

    def __len__(self):
        return len(self.cf)

    def epoch(self, rng: np.random.Generator, device="cpu"):
        bs = self.kg.batch_size
        idx = self.kg.order(rng, len(self.cf) * bs)
        allt = self.kg.tensors(idx, rng, device)
        for k, batch in enumerate(self.cf.epoch(rng, device)):
            sl = slice(k * bs, (k + 1) * bs)
            yield {"phase": "joint", **batch, **{n: v[sl] for n, v in allt.items()}}


class AlternatingBatches:
    """KGAT's epoch: every CF batch (tagged ``phase: "cf"``), then every KG batch over all triples
    (``phase: "kg"``)."""

    def __init__(self, cf: PairwiseBatches, kg: KGTripleBatches):
        self.cf, self.kg = cf, kg

    def __len__(self):
        return len(self.cf) + len(self.kg)

    def epoch(self, rng: np.random.Generator, device="cpu"):
        for batch in self.cf.epoch(rng, device):
            yield {"phase": "cf", **batch}
        yield from self.kg.epoch(rng, device)
