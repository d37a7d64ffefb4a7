"""The evaluator a configuration asks for: the one place where the run's ``task`` decides how a
part of a split is evaluated.

:func:`evaluation_protocol` names the protocol from the task alone (the model only has to support
that task, :meth:`~mmkgrec.models.base.Recommender.check_task`); :data:`PROTOCOLS` maps each name
to the builder of its evaluator; :func:`make_evaluator` is the two together. The evaluators
themselves live below this module (:mod:`.ranking`, :mod:`.sequential`, :mod:`.ctr`,
:mod:`.rating`, :mod:`.classification`, sharing :mod:`.common`), so that none of them imports the
factory. A new kind of evaluation adds a builder here and the case that selects it in
:func:`evaluation_protocol`.
"""

from __future__ import annotations

import numpy as np

from ..config import config_value, task_of
from ..data.split import Split
from ..errors import ConfigError
from .classification import ClassificationEvaluator
from .common import cold_start_note
from .ctr import CTREvaluator
from .metric_names import metric_names
from .ranking import FullRankingEvaluator, SampledEvaluator
from .rating import RatingEvaluator
from .sequential import NextItemEvaluator


def evaluation_protocol(config, model=None) -> str:
    """The protocol of the run's task (:func:`mmkgrec.config.task_of`; ``eval_protocol: ctr``
    and ``eval_next_item: true`` are its aliases): ``ctr``, ``next_item``, ``rating``,
    ``classification``, or for ``ranking`` the ``eval_protocol`` (``full`` or ``sampled``).
    With ``model``, the model must support the task (a ConfigError names both otherwise)."""
    task = task_of(config)
    if hasattr(model, "check_task"):  # a Recommender (a bare module in a test declares nothing)
        model.check_task(config)
    if task == "ranking":
        return "sampled" if config["eval_protocol"] == "sampled" else "full"
    return task


def _ranking_only(task: str, items, users=None) -> None:
    if items is not None or users is not None:
        raise ConfigError("task", f"'{task}' (eval_protocol '{task}') evaluates no ranking; a "
                          "subset of target items or users applies to the ranking protocols "
                          "(full, sampled, next_item)")


def _ctr(split, part, config, model, items, users):
    _ranking_only("ctr", items, users)
    return CTREvaluator(split, part, [config["valid_metric"]],
                        batch_size=ctr_batch_size(config))


def _rating(split, part, config, model, items, users):
    _ranking_only("rating", items, users)
    return RatingEvaluator(split, part)


def _classification(split, part, config, model, items, users):
    _ranking_only("classification", items, users)
    return ClassificationEvaluator(split, part, config_value(config, "classification_threshold"))


def _next_item(split, part, config, model, items, users):
    sampled = config["sampled_negatives"] if config["eval_protocol"] == "sampled" else None
    return NextItemEvaluator(split, part, metric_names(config["metrics"], config["topk"]),
                             config["eval_batch_size"],
                             mask_history=bool(config_value(config, "mask_history_seq")),
                             sampled_negatives=sampled, items=items, users=users)


def _sampled(split, part, config, model, items, users):
    return SampledEvaluator(split, part, metric_names(config["metrics"], config["topk"]),
                            config["sampled_negatives"], seed=0, items=items, users=users)


def _full(split, part, config, model, items, users):
    return FullRankingEvaluator(split, part, metric_names(config["metrics"], config["topk"]),
                                config["eval_batch_size"], items=items, users=users)


#: protocol name -> builder ``(split, part, config, model, items, users) -> evaluator``
PROTOCOLS = {"ctr": _ctr, "next_item": _next_item, "sampled": _sampled, "full": _full,
             "rating": _rating, "classification": _classification}


def make_evaluator(split: Split, part: str, config, model=None, items: np.ndarray | None = None,
                   users: np.ndarray | None = None):
    """The evaluator of ``part`` for ``config`` and ``model`` (:func:`evaluation_protocol`):
    :class:`~.ranking.FullRankingEvaluator`, :class:`~.ranking.SampledEvaluator`,
    :class:`~.sequential.NextItemEvaluator`, :class:`~.ctr.CTREvaluator` (auc, f1, accuracy),
    :class:`~.rating.RatingEvaluator` (mse, rmse, mae) or
    :class:`~.classification.ClassificationEvaluator` (the ranking ``metrics`` apply to the
    first three only). ``items`` (bool ``[n_items]``) counts only the targets on those items
    (every item is still ranked), ``users`` (bool ``[n_users]``) only those users' (ranking
    protocols only).

    The validation evaluator, which the trainer builds once per run, also says when ``model``
    cannot know the cold items of a ``cold_item`` split (:func:`~.common.cold_start_note`)."""
    if part == "valid" and items is None and users is None:
        cold_start_note(split, model, config)
    ev = PROTOCOLS[evaluation_protocol(config, model)](split, part, config, model, items, users)
    if hasattr(ev, "show_progress"):  # evaluators that score in chunks show a bar on a terminal
        ev.show_progress = bool(config["show_progress"])
    return ev


def ctr_batch_size(config) -> int:
    """``ctr_batch_size``, or ``train_batch_size`` when it is null (KGCN's code evaluates in
    batches of its training batch size)."""
    size = config_value(config, "ctr_batch_size")
    return int(size) if size is not None else int(config["train_batch_size"])


def evaluate_restricted(split: Split, part: str, config, model, device=None,
                        items: np.ndarray | None = None, users: np.ndarray | None = None) -> dict:
    """``model`` on ``part`` with only the targets on ``items`` / of ``users`` counted
    (:func:`make_evaluator`): ``users`` (how many were evaluated), ``metrics`` (mean over them;
    NaN for a subset without targets) and ``per_user`` (``user_ids`` and one array per metric,
    for paired tests)."""
    ev = make_evaluator(split, part, config, model, items=items, users=users)
    metrics, acc, _ = ev.evaluate(model, device or config["device"])
    per_user = acc.per_user()  # empty for a subset without targets: NaN means, empty arrays
    return {"users": len(acc.user_ids),
            "metrics": {m: metrics.get(m, float("nan")) for m in ev.metrics},
            "per_user": {"user_ids": acc.user_ids,
                         **{m: per_user.get(m, np.zeros(0)) for m in ev.metrics}}}
