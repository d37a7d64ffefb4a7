"""The split a configuration asks for: the one place where the config decides how a dataset is cut
into train / validation / test.

:func:`splitter` names the kind of split; :data:`SPLITTERS` maps each name to the function that
makes it from ``(dataset, config)``; :func:`split_from_config` is the two together. The splits
themselves live below this module (:mod:`.split` for the interaction splits, :mod:`.ctr` for the
labelled pairs of the CTR protocol, :mod:`.targets` for the items of the classification task), so
that none of them imports the factory. A new kind of split adds a function here and the case that
selects it in :func:`splitter`. The kind follows the run's ``task``, never the model.
"""

from __future__ import annotations

from ..config import config_value, task_of
from ..errors import ConfigError
from .ctr import ctr_split
from .dataset import Dataset
from .split import COLD_SPLITS, Split, cold_item_split, cold_user_split, split_dataset
from .targets import check_rating_target, classification_split


def split_seed(config) -> int:
    """``split_seed``, or ``seed`` when it is null."""
    return config["split_seed"] if config["split_seed"] is not None else config["seed"]


def _ctr(ds: Dataset, config) -> Split:
    if config["split"] != "random_ratio":
        raise ConfigError("split", f"task 'ctr' (eval_protocol 'ctr') splits labelled pairs at "
                          f"random (split: random_ratio), got split '{config['split']}'")
    return ctr_split(ds, config["split_ratio"], split_seed(config), config["ctr_labels"])


def _interactions(ds: Dataset, config) -> Split:
    return split_dataset(ds, config["split"], config["split_ratio"], split_seed(config),
                         config["valid_ratio"], config_value(config, "n_folds"),
                         config_value(config, "fold"), config_value(config, "inner_folds"),
                         config_value(config, "inner_fold"))


def _ratings(ds: Dataset, config) -> Split:
    check_rating_target(ds)
    return _interactions(ds, config)


def _items(ds: Dataset, config) -> Split:
    return classification_split(ds, config)


# ---- cold start: items or users the training part does not know -------------------------------
def _cold_item(ds: Dataset, config) -> Split:
    return cold_item_split(ds, config["cold_item_ratio"], config["split_ratio"], split_seed(config))


def _cold_user(ds: Dataset, config) -> Split:
    return cold_user_split(ds, config["cold_user_ratio"], config["cold_user_max_train"],
                           config["split_ratio"], split_seed(config))


#: kind of split -> ``(dataset, config) -> Split``
SPLITTERS = {"ctr": _ctr, "interactions": _interactions, "ratings": _ratings, "items": _items,
             "cold_item": _cold_item, "cold_user": _cold_user}


def splitter(config) -> str:
    """By the run's task: ``ctr`` (labelled pairs, :func:`~.ctr.ctr_split`), ``ratings`` (the
    interactions with their rating column, refused on data without one), ``items`` (the
    labelled items of task classification, :func:`~.targets.classification_split`); for the
    interaction tasks (ranking, next_item) the cold splits ``cold_item`` / ``cold_user`` by their
    name; else ``interactions`` (:func:`~.split.split_dataset` with the ``split*`` keys)."""
    task = task_of(config)
    kind = {"ctr": "ctr", "rating": "ratings", "classification": "items"}.get(task)
    if kind is not None:
        return kind
    return config["split"] if config["split"] in COLD_SPLITS else "interactions"


def split_from_config(ds: Dataset, config) -> Split:
    """The split of ``ds`` that ``config`` asks for (:func:`splitter`). A dataset that comes
    with its own test file (KGAT's ``test.txt``) is split only by ``split: given``: any other
    split would silently leave that file out."""
    if ds.given_test is not None and config_value(config, "split") != "given":
        raise ConfigError("split", f"'{config_value(config, 'split')}' would ignore the test "
                          f"file that dataset '{ds.name}' comes with ({ds.source}); set split: "
                          "given to test on it")
    return SPLITTERS[splitter(config)](ds, config)
