"""Labelled (user, item, 0/1) pairs for click-through-rate (CTR) prediction, as KGCN evaluates.

KGCN (Wang et al., WWW 2019) turns implicit feedback into a binary task: every positive
interaction is a label-1 pair and each user gets as many label-0 pairs as positives, items drawn
uniformly (without replacement) among those the user never interacted with. The labelled pairs are
then split at random, over all pairs, into train / validation / test (6:2:2 in the paper); metrics
are AUC, F1 and accuracy of ``sigmoid(score)`` on the test pairs
(:class:`mmkgrec.evaluation.ctr.CTREvaluator`).

Where the labels come from (config ``ctr_labels``):

* ``file``: the data already holds them, a ``rating`` column of 0/1 (KGCN's ``ratings_final``,
  read with ``rating_threshold: null`` so the label-0 rows are kept).
* ``sample``: every interaction is a positive; negatives are drawn here with the split seed.
* ``auto``: ``file`` when the rating column is 0/1 and holds a 0, else ``sample``.

The :class:`CTRSplit` keeps the labelled pairs in ``labelled[part]`` (an
:class:`~mmkgrec.data.dataset.Interactions` whose ``rating`` is the 0/1 label) and, as ``train`` /
``valid`` / ``test``, the label-1 pairs of each part: models build their graphs (CKG, adjacency)
from the training positives only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import MMKGRecError
from .dataset import Dataset, Interactions
from .split import Split, check_ratios, ratio_counts

LABEL_MODES = ("auto", "file", "sample")
PARTS = ("train", "valid", "test")


@dataclass
class CTRSplit(Split):
    """A :class:`Split` whose parts are label-1 pairs, plus ``labelled[part]``: all of the part's
    pairs, ``rating`` = label (float32 0/1)."""

    labelled: dict = field(default_factory=dict)

    def describe(self) -> dict:
        out = super().describe()
        for part, inter in self.labelled.items():
            out[f"{part}_labelled"] = len(inter)
        return out


def has_file_labels(inter: Interactions) -> bool:
    """True when ``inter.rating`` is a 0/1 column that holds at least one 0."""
    if inter.rating is None or len(inter) == 0:
        return False
    r = np.asarray(inter.rating)
    return bool(np.isin(r, (0, 1)).all() and (r == 0).any())


def _distinct_outside(known: np.ndarray, n_items: int, k: int, rng: np.random.Generator):
    """``k`` distinct items drawn uniformly from ``0..n_items-1`` minus the sorted ``known``."""
    j = np.sort(rng.choice(n_items - len(known), size=k, replace=False))
    # the j-th free item is j plus the number of known items at or below it
    return j + np.searchsorted(known - np.arange(len(known)), j, side="right")


def sample_labelled(inter: Interactions, n_users: int, n_items: int,
                    rng: np.random.Generator) -> tuple[Interactions, dict]:
    """Every (unique) pair of ``inter`` with label 1, and per user as many label-0 pairs as it has
    positives, drawn without replacement from the items it never interacted with (fewer when not
    enough such items exist)."""
    keys = np.unique(inter.user * n_items + inter.item)
    pos_u, pos_i = keys // n_items, keys % n_items
    counts = np.bincount(pos_u, minlength=n_users)
    starts = np.concatenate([[0], np.cumsum(counts)])
    neg_u, neg_i, short = [], [], 0
    for u in np.flatnonzero(counts):
        known = pos_i[starts[u]:starts[u + 1]]  # sorted, as the keys are
        k = min(int(counts[u]), n_items - len(known))
        short += int(counts[u]) - k
        if k:
            neg_i.append(_distinct_outside(known, n_items, k, rng))
            neg_u.append(np.full(k, u, dtype=np.int64))
    neg_u = np.concatenate(neg_u) if neg_u else np.zeros(0, np.int64)
    neg_i = np.concatenate(neg_i) if neg_i else np.zeros(0, np.int64)
    labels = np.concatenate([np.ones(len(pos_u)), np.zeros(len(neg_u))]).astype(np.float32)
    pairs = Interactions(np.concatenate([pos_u, neg_u]), np.concatenate([pos_i, neg_i]), labels)
    return pairs, {"ctr_negatives_short": short}


def file_labelled(inter: Interactions, n_items: int) -> tuple[Interactions, dict]:
    """The data's own labelled pairs, one per (user, item): a pair labelled 1 anywhere is a
    positive (its label-0 rows are dropped and counted)."""
    key = inter.user * n_items + inter.item
    lab = (np.asarray(inter.rating) > 0).astype(np.float32)
    uniq, inv = np.unique(key, return_inverse=True)
    best = np.zeros(len(uniq), dtype=np.float32)
    np.maximum.at(best, inv, lab)
    conflicts = int(((lab == 0) & (best[inv] == 1)).sum())
    pairs = Interactions(uniq // n_items, uniq % n_items, best)
    return pairs, {"ctr_label_conflicts": conflicts}


def labelled_pairs(ds: Dataset, mode: str = "auto", seed: int = 2020) -> tuple[Interactions, dict]:
    """All labelled pairs of ``ds`` (sorted by user, then item) and stats, for ``ctr_labels`` =
    ``mode``; sampled negatives use a stream of their own, seeded by ``(seed, 1)``."""
    if mode not in LABEL_MODES:
        raise MMKGRecError(f"ctr_labels must be one of {LABEL_MODES}, got {mode!r}")
    file = has_file_labels(ds.inter)
    if mode == "file" and not file:
        raise MMKGRecError(f"ctr_labels 'file': dataset '{ds.name}' has no 0/1 labels with a 0 "
                           "(KGCN's ratings_final keeps them with rating_threshold: null)")
    if mode == "file" or (mode == "auto" and file):
        pairs, stats = file_labelled(ds.inter, ds.n_items)
        stats["ctr_labels"] = "file"
    else:
        pairs, stats = sample_labelled(ds.inter, ds.n_users, ds.n_items,
                                       np.random.default_rng([seed, 1]))
        order = np.lexsort((pairs.item, pairs.user))
        pairs = pairs.take(order)
        stats["ctr_labels"] = "sample"
    stats["ctr_positives"] = int(pairs.rating.sum())
    stats["ctr_negatives"] = int(len(pairs) - pairs.rating.sum())
    return pairs, stats


def ctr_split(ds: Dataset, ratios=(0.6, 0.2, 0.2), seed: int = 2020,
              mode: str = "auto") -> CTRSplit:
    """Labelled pairs of ``ds`` split at random over all pairs by ``ratios`` (validation and test
    get ``floor(ratio * n)`` pairs each, training the rest)."""
    ratios = check_ratios(ratios)
    rng = np.random.default_rng(seed)
    pairs, stats = labelled_pairs(ds, mode, seed)
    n = len(pairs)
    n_train, n_valid, _ = ratio_counts(np.asarray([n]), ratios)[0]
    perm = rng.permutation(n)
    cuts = {"train": perm[:n_train], "valid": perm[n_train:n_train + n_valid],
            "test": perm[n_train + n_valid:]}
    labelled = {p: pairs.take(np.sort(rows)) for p, rows in cuts.items()}
    positives = {p: inter.take(np.flatnonzero(inter.rating == 1)) for p, inter in labelled.items()}
    if not len(positives["train"]):
        raise MMKGRecError(f"the CTR split left no training positives for dataset '{ds.name}'")
    return CTRSplit(ds, positives["train"], positives["valid"], positives["test"], "ctr",
                    {**stats, "seed": seed}, labelled=labelled)
