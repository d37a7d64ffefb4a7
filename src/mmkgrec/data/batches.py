"""Training batches: what one epoch of each model family iterates.

Every batcher has ``__len__`` (batches per epoch) and ``epoch(rng, device)``, which yields dicts of
tensors that a model's ``loss`` understands; all randomness comes from ``rng`` (the trainer seeds
it from ``(seed, epoch)``). Negatives come from :mod:`mmkgrec.data.sampling`.

* :class:`PairwiseBatches`: shuffled (user, positive, negatives) batches (BPR-style models).
* :class:`LabelledBatches`: shuffled (user, item, 0/1 label) batches (``train_loss: bce``).
* :class:`KGTripleBatches`: KG triples with corrupted tails; :class:`JointBatches` (CKE: a CF and
  a KG batch in every step) and :class:`AlternatingBatches` (KGAT: every CF batch, then every KG
  batch). Corrupted tails are drawn uniformly over all entities, excluding every ``t'`` for which
  ``(h, r, t')`` is a true triple (membership by :class:`~mmkgrec.data.sampling.KnownPairs` over
  ``(h, r)`` keys, redrawn by rejection as for user negatives; cheap because KG heads have few
  tails per relation).
* :class:`SequenceBatches` and :class:`SharedWindowBatches`: next-item samples of
  :mod:`mmkgrec.data.sequences` (the batch format is described there).
"""

from __future__ import annotations

import numpy as np
import torch

from .sampling import KnownPairs, negative_pool, sample_negatives
from .sequences import UserSequences, gather_inputs


class PairwiseBatches:
    """One epoch of (user, positive, negatives) mini-batches over the training interactions:
    shuffled, with ``num_neg`` uniform negatives per positive excluding the user's training items
    (drawn among the items ``pool``, every item when ``None``: :func:`~.sampling.negative_pool`)."""

    def __init__(self, train, n_items: int, batch_size: int, num_neg: int = 1,
                 pool: np.ndarray | None = None):
        self.users, self.items = train.user, train.item
        self.n_items, self.batch_size, self.num_neg = n_items, batch_size, num_neg
        self.pool = pool
        self.known = KnownPairs(train.user, train.item, int(train.user.max()) + 1 if len(train) else 0, n_items)

    @classmethod
    def from_split(cls, split, config) -> "PairwiseBatches":
        """The split's training interactions with the config's ``train_batch_size``, ``num_neg``
        and ``negative_items``: the pairwise batches of every model that samples negatives."""
        return cls(split.train, split.n_items, config["train_batch_size"], config["num_neg"],
                   negative_pool(split.train, split.n_items, config))

    def __len__(self):
        return (len(self.users) + self.batch_size - 1) // self.batch_size

    def epoch(self, rng: np.random.Generator, device="cpu"):
        perm = rng.permutation(len(self.users))
        users, pos = self.users[perm], self.items[perm]
        neg = sample_negatives(users, self.n_items, self.known, rng, self.num_neg, pool=self.pool)
        if self.num_neg == 1:
            neg = neg[:, 0]
        users_t, pos_t, neg_t = (torch.from_numpy(a).to(device) for a in (users, pos, neg))
        for s in range(0, len(users), self.batch_size):
            sl = slice(s, s + self.batch_size)
            yield {"users": users_t[sl], "pos_items": pos_t[sl], "neg_items": neg_t[sl]}


class LabelledBatches:
    """One epoch of shuffled ``{"users", "items", "labels"}`` batches (labels float32 0/1), which
    :meth:`mmkgrec.models.base.Recommender.pointwise_loss` turns into a log loss on
    ``sigmoid(score)`` (``train_loss: bce``, as KGCN trains for CTR prediction).

    With ``num_neg > 0`` the given pairs must all be positives and every epoch adds ``num_neg``
    fresh label-0 items per pair, drawn uniformly among the items ``known`` does not hold for
    the user (and among ``pool`` when given)."""

    def __init__(self, users, items, labels, batch_size: int, num_neg: int = 0,
                 n_items: int | None = None, known: KnownPairs | None = None,
                 pool: np.ndarray | None = None):
        self.users = np.asarray(users, dtype=np.int64)
        self.items = np.asarray(items, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.float32)
        self.batch_size, self.num_neg = int(batch_size), int(num_neg)
        self.n_items, self.known, self.pool = n_items, known, pool
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
                   split.n_items, known, negative_pool(t, split.n_items, config))

    def __len__(self):
        n = len(self.users) * (1 + self.num_neg)
        return (n + self.batch_size - 1) // self.batch_size

    def epoch(self, rng: np.random.Generator, device="cpu"):
        users, items, labels = self.users, self.items, self.labels
        if self.num_neg:
            neg = sample_negatives(users, self.n_items, self.known, rng, self.num_neg,
                                   pool=self.pool)
            users = np.concatenate([users, np.repeat(users, self.num_neg)])
            items = np.concatenate([items, neg.reshape(-1)])
            labels = np.concatenate([labels, np.zeros(neg.size, np.float32)])
        perm = rng.permutation(len(users))
        u, i, y = (torch.from_numpy(np.ascontiguousarray(a[perm])).to(device)
                   for a in (users, items, labels))
        for s in range(0, len(perm), self.batch_size):
            sl = slice(s, s + self.batch_size)
            yield {"users": u[sl], "items": i[sl], "labels": y[sl]}


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


class SequenceBatches:
    """Training batches of next-item samples (the batch format is in :mod:`mmkgrec.data.sequences`).

    ``epoch(rng, device)`` shuffles the training targets and yields ``{"seq", "lengths",
    "target", "users"}``; with ``include_target`` (cloze models) the input window also holds the
    target as its last item (``seq[b, lengths[b] - 1] == target[b] + 1``)."""

    def __init__(self, seqs: UserSequences, max_len: int, batch_size: int,
                 include_target: bool = False):
        self.seqs, self.max_len, self.batch_size = seqs, int(max_len), int(batch_size)
        self.include_target = include_target
        self.positions = torch.from_numpy(seqs.targets("train"))
        self.users = torch.from_numpy(seqs.user_of(self.positions.numpy()))
        self.row_start = torch.from_numpy(seqs.indptr[self.users.numpy()])
        self.shifted = torch.from_numpy(np.concatenate([[0], seqs.items + 1]))
        self.items = torch.from_numpy(seqs.items)

    def __len__(self):
        return (len(self.positions) + self.batch_size - 1) // self.batch_size

    @property
    def n_samples(self) -> int:
        return len(self.positions)

    def batch(self, idx: torch.Tensor, device="cpu") -> dict:
        pos = self.positions[idx]
        seq, lengths = gather_inputs(self.seqs, self.shifted, pos, self.row_start[idx],
                                     self.max_len, self.include_target)
        return {"seq": seq.to(device), "lengths": lengths.to(device),
                "target": self.items[pos].to(device), "users": self.users[idx].to(device)}

    def epoch(self, rng: np.random.Generator, device="cpu"):
        perm = torch.from_numpy(rng.permutation(len(self.positions)))
        for s in range(0, len(perm), self.batch_size):
            yield self.batch(perm[s:s + self.batch_size], device)


class SharedWindowBatches:
    """The same training samples as :class:`SequenceBatches` (every training position ``t >= 1``,
    input the up-to-``max_len`` training items before it), computed with fewer tokens, for
    causal models whose output at a position depends only on the items up to it.

    A user's first ``max_len`` targets all have inputs that start at the user's first item, so
    one window of the first ``min(n_train - 1, max_len)`` items serves all of them (the output
    at position ``j`` predicts item ``j + 1``); every later target gets its own window of the
    ``max_len`` items before it. Each sample's input is exactly the per-sample input; what
    changes is only that a user's first targets share a batch. Batches are formed from shuffled
    windows until they hold about ``batch_size`` targets.

    Batch format: ``seq [W, L]``, ``lengths [W]`` as usual, plus ``target [M]``, ``target_window
    [M]`` (row of ``seq``) and ``target_pos [M]`` (position whose output predicts the target);
    ``users [W]`` is the user of each window.
    On ML-100K (time 8:1:1, max length 50) this is 2.19M input tokens per epoch instead of 3.99M.
    """

    def __init__(self, seqs: UserSequences, max_len: int, batch_size: int):
        self.seqs, self.max_len, self.batch_size = seqs, int(max_len), int(batch_size)
        row_start = seqs.indptr[:-1]
        n_train = seqs.part_end[:, 0] - row_start
        head = np.flatnonzero(n_train > 1)
        head_len = np.minimum(n_train[head] - 1, self.max_len)
        tail_pos = seqs.targets("train")
        tail_pos = tail_pos[tail_pos - row_start[seqs.user_of(tail_pos)] > self.max_len]
        # window = (start, length, k): its last k positions each predict the following item
        self.start = torch.from_numpy(np.concatenate([row_start[head], tail_pos - self.max_len]))
        self.length = torch.from_numpy(np.concatenate([head_len,
                                                       np.full(len(tail_pos), self.max_len)]))
        self.k = self.length.clone()
        self.k[len(head):] = 1
        self.users = torch.from_numpy(seqs.user_of(self.start.numpy()))
        self.n_targets = int(self.k.sum())
        self.shifted = torch.from_numpy(np.concatenate([[0], seqs.items + 1]))
        self.items = torch.from_numpy(seqs.items)

    def __len__(self):
        return (self.n_targets + self.batch_size - 1) // self.batch_size

    @property
    def n_samples(self) -> int:
        return self.n_targets

    def batch(self, win: torch.Tensor, device="cpu") -> dict:
        start, length, k = self.start[win], self.length[win], self.k[win]
        width = int(length.max())
        ar = torch.arange(width)
        valid = ar[None, :] < length[:, None]
        seq = self.shifted[torch.where(valid, start[:, None] + ar[None, :] + 1,
                                       torch.zeros(1, dtype=torch.long))]
        rows = torch.repeat_interleave(torch.arange(len(win)), k)
        offs = torch.arange(int(k.sum())) - torch.repeat_interleave(torch.cumsum(k, 0) - k, k)
        pos = (length - k)[rows] + offs
        target = self.items[start[rows] + pos + 1]
        return {"seq": seq.to(device), "lengths": length.to(device), "target": target.to(device),
                "target_window": rows.to(device), "target_pos": pos.to(device),
                "users": self.users[win].to(device)}

    def shard(self, batch: dict, world: int, rank: int) -> tuple[dict, float]:
        """Process ``rank``'s part of a batch for DDP (:func:`mmkgrec.distributed.shard_batch`):
        a contiguous block of the windows with their targets, weighted by its share of the
        batch's targets (the loss is a mean over targets)."""
        from ..distributed import shard_bounds

        lo, hi = shard_bounds(len(batch["seq"]), world, rank)
        weight_zero = hi == lo
        if weight_zero:  # no window left for this process: one window, weight 0
            lo, hi = 0, 1
        tw = batch["target_window"]
        a, b = (int(x) for x in torch.searchsorted(tw, torch.tensor([lo, hi], device=tw.device)))
        out = {k: batch[k][lo:hi] for k in ("seq", "lengths", "users")}
        out.update(target=batch["target"][a:b], target_window=tw[a:b] - lo,
                   target_pos=batch["target_pos"][a:b])
        return out, 0.0 if weight_zero else world * (b - a) / len(tw)

    def epoch(self, rng: np.random.Generator, device="cpu"):
        perm = torch.from_numpy(rng.permutation(len(self.start)))
        cum = torch.cumsum(self.k[perm], 0)
        # batch b takes the windows whose cumulative target count ends in (b*B, (b+1)*B]
        cuts = torch.searchsorted(cum, torch.arange(1, len(self) + 1) * self.batch_size)
        lo = 0
        for hi in cuts.tolist():
            hi = min(hi + 1, len(perm))
            if hi > lo:
                yield self.batch(perm[lo:hi], device)
            lo = hi
