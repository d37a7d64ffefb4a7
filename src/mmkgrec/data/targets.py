"""What a rating or classification run predicts, read from the data, and the split over items that
classification uses.

Rating: the target is the interactions' own ``rating`` column (:func:`check_rating_target`); data
without one is refused, naming the dataset.

Classification: the target is the item column named by ``target_column`` (ML-100K: ``class``,
19 genres, most movies have several). :func:`item_labels` turns it into a boolean item x label
matrix: an item without a value has no label and is dropped (counted in the split's stats, in
both modes); ``classification_mode: single`` keeps only the items with exactly one label (the
others are dropped and counted); ``min_class_items`` drops the labels with fewer items, and then
the items left without a label. The column itself never reaches a model's inputs: the item text
and the domain KG leave it out and the KG relations that carry it are removed
(:func:`mmkgrec.config.withheld_item_columns`); a model receives the labels of the *training*
items only (:func:`training_labels`).

:func:`classification_split` cuts the labelled items (not the interactions: an item is the unit
evaluated) into train / valid / test by ``split_ratio`` (``random_ratio``) or into ``n_folds``
folds (``kfold``, the ``valid_ratio`` slice of the training folds for validation); every
interaction stays a training input (the user-item graph carries no label).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from ..config import config_value
from ..errors import ConfigError, MMKGRecError
from .dataset import Dataset, Interactions
from .split import Split, kfold_parts, ratio_counts

log = logging.getLogger(__name__)

_MISSING = ("", "nan", "none", "null")
ITEM_SPLITS = ("random_ratio", "kfold")


def check_rating_target(ds: Dataset) -> None:
    """ConfigError (key ``task``) naming the dataset when it has no rating column."""
    if ds.inter.rating is None:
        raise ConfigError("task", f"'rating' predicts the interactions' rating column; dataset "
                          f"'{ds.name}' ({ds.source or 'generated'}) has none")


@dataclass
class ItemLabels:
    """``matrix[i, c]``: item ``i`` has label ``classes[c]``; ``keep``: the items that take part;
    ``stats``: what was dropped and why."""

    classes: np.ndarray
    matrix: np.ndarray
    keep: np.ndarray
    stats: dict


def _values(v) -> list[str]:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return []
    vals = v if isinstance(v, (list, tuple, np.ndarray)) else [v]
    return [s for s in (str(x).strip() for x in vals) if s.lower() not in _MISSING]


def item_labels(ds: Dataset, column: str | None, mode: str = "multi",
                min_class_items: int = 1) -> ItemLabels:
    """The labels of ``ds``'s items from its item column ``column`` (see the module docstring)."""
    if not column:
        raise ConfigError("target_column", "task 'classification' needs the item column of the "
                          "labels")
    if column not in ds.item_features:
        raise ConfigError("target_column", f"'{column}' is not an item column of dataset "
                          f"'{ds.name}' (has: {sorted(ds.item_features)})")
    typ = ds.item_feature_types.get(column, "token")
    if typ not in ("token", "token_seq"):
        raise ConfigError("target_column", f"'{column}' of dataset '{ds.name}' is a {typ} "
                          "column; categories come from a token or token_seq column")
    values = [_values(v) for v in ds.item_features[column]]
    classes = np.asarray(sorted({c for vs in values for c in vs}), dtype=object)
    index = {c: k for k, c in enumerate(classes)}
    rows = np.repeat(np.arange(len(values)), [len(vs) for vs in values])
    cols = np.asarray([index[c] for vs in values for c in vs], dtype=np.int64)
    matrix = np.zeros((len(values), len(classes)), dtype=bool)
    matrix[rows, cols] = True
    n_labels = matrix.sum(1)
    keep = n_labels == 1 if mode == "single" else n_labels >= 1
    stats = {"target_column": column, "classification_mode": mode,
             "items_without_label": int((n_labels == 0).sum())}
    if mode == "single":
        stats["items_with_several_labels"] = int((n_labels > 1).sum())
    size = (matrix & keep[:, None]).sum(0)
    small = size < min_class_items
    if small.any():  # one pass reaches the fixpoint: a dropped item had no other kept label
        matrix[:, small] = False
        before = keep.sum()
        keep &= matrix.any(1)
        stats["labels_below_min_class_items"] = [str(c) for c in classes[small]]
        stats["items_dropped_with_them"] = int(before - keep.sum())
    used = (matrix & keep[:, None]).any(0)
    classes, matrix = classes[used], matrix[:, used]
    if keep.sum() == 0 or len(classes) < 2:
        raise MMKGRecError(f"dataset '{ds.name}': target_column '{column}' leaves "
                           f"{int(keep.sum())} labelled item(s) and {len(classes)} label(s) under "
                           f"classification_mode '{mode}' and min_class_items {min_class_items} "
                           f"({stats}); classification needs at least two labels")
    matrix[~keep] = False
    stats.update(labelled_items=int(keep.sum()), n_classes=len(classes))
    if stats["items_without_label"]:
        log.info("dataset %s: %d items have no value in '%s'; they are not classified",
                 ds.name, stats["items_without_label"], column)
    return ItemLabels(classes, matrix, keep, stats)


@dataclass
class ClassificationSplit(Split):
    """A :class:`Split` whose unit is the item: ``items[part]`` the items of each part (sorted),
    ``labels`` the boolean ``[n_items, n_classes]`` matrix (rows of items outside every part are
    all False), ``classes`` the label names, ``mode`` ``single`` or ``multi``. ``train`` holds
    every interaction (model inputs such as the user-item graph); ``valid`` / ``test`` are
    empty."""

    items: dict = field(default_factory=dict)
    labels: np.ndarray | None = None
    classes: np.ndarray | None = None
    mode: str = "multi"

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def describe(self) -> dict:
        return {"method": self.method, "unit": "item", "mode": self.mode,
                "n_classes": self.n_classes, "classes": [str(c) for c in self.classes],
                **{f"{p}_items": len(v) for p, v in self.items.items()}, **self.stats}


def classification_split(ds: Dataset, config) -> ClassificationSplit:
    """The labelled items of ``ds`` cut by the config's ``split`` keys (module docstring)."""
    def cfg(key):
        return config_value(config, key)

    method = cfg("split")
    if method not in ITEM_SPLITS:
        raise ConfigError("split", f"task 'classification' splits items: {' or '.join(ITEM_SPLITS)}"
                          f", got '{method}'")
    labels = item_labels(ds, cfg("target_column"), cfg("classification_mode"),
                         cfg("min_class_items"))
    seed = cfg("split_seed") if cfg("split_seed") is not None else cfg("seed")
    rng = np.random.default_rng(seed)
    items = np.flatnonzero(labels.keep)
    one_group = np.zeros(len(items), dtype=np.int64)
    if method == "kfold":
        part = kfold_parts(one_group, cfg("n_folds"), cfg("fold"), cfg("valid_ratio"), rng,
                           cfg("inner_folds"), cfg("inner_fold"))
    else:
        cnt = ratio_counts(np.asarray([len(items)]), cfg("split_ratio"))[0]
        pos = np.empty(len(items), dtype=np.int64)
        pos[rng.permutation(len(items))] = np.arange(len(items))
        part = np.where(pos < cnt[0], 0, np.where(pos < cnt[0] + cnt[1], 1, 2))
    parts = {name: np.sort(items[part == j]) for j, name in enumerate(("train", "valid", "test"))}
    if not len(parts["train"]) or not len(parts["test"]):
        raise MMKGRecError(f"the {method} split of the {len(items)} labelled items of dataset "
                           f"'{ds.name}' left an empty train or test part")
    empty = Interactions(np.zeros(0, np.int64), np.zeros(0, np.int64))
    stats = {**labels.stats, "seed": seed}
    if method == "kfold":
        stats.update(n_folds=cfg("n_folds"), fold=cfg("fold"), valid_ratio=cfg("valid_ratio"))
        if cfg("inner_folds"):
            stats.update(inner_folds=cfg("inner_folds"), inner_fold=cfg("inner_fold"),
                         outer_test_set_aside=int((part == -1).sum()))
    return ClassificationSplit(ds, ds.inter, empty, empty, method, stats, items=parts,
                               labels=labels.matrix, classes=labels.classes,
                               mode=cfg("classification_mode"))


@dataclass
class TrainingLabels:
    """What a classification model may learn from: the training items and their labels
    (``labels[k]`` is item ``items[k]``'s boolean row), the label names and the mode."""

    items: np.ndarray
    labels: np.ndarray
    classes: np.ndarray
    mode: str

    @property
    def n_classes(self) -> int:
        return len(self.classes)


def training_labels(split) -> TrainingLabels:
    """The training part's labels of a :class:`ClassificationSplit` (and nothing of the others)."""
    if not isinstance(split, ClassificationSplit):
        raise ConfigError("task", "a classification model needs the labelled items of task "
                          "'classification' (a split over items)")
    items = split.items["train"]
    return TrainingLabels(items, split.labels[items].copy(), split.classes, split.mode)
