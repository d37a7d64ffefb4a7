"""The evaluator a configuration asks for: the one place where the config (and the model's input
type) decide how a part of a split is evaluated.

:func:`evaluation_protocol` names the protocol; :data:`PROTOCOLS` maps each name to the builder of
its evaluator; :func:`make_evaluator` is the two together. The evaluators themselves live below
this module (:mod:`.ranking`, :mod:`.sequential`, :mod:`.ctr`, sharing :mod:`.common`), so that
none of them imports the factory. A new kind of evaluation adds a builder here and the case that
selects it in :func:`evaluation_protocol`.
"""

from __future__ import annotations

import numpy as np

from ..config import config_value
from ..data.split import Split
from ..errors import ConfigError
from .common import cold_start_note
from .ctr import CTREvaluator
from .metric_names import metric_names
from .ranking import FullRankingEvaluator, SampledEvaluator
from .sequential import NextItemEvaluator


def evaluation_protocol(config, model=None) -> str:
    """``ctr`` under ``eval_protocol: ctr``; else ``next_item`` for a model whose ``input_type``
    is ``"sequence"`` and for every model under ``eval_next_item: true`` (a CF model ranked for
    each next-item target from its user vector, so it sits in the same table as the sequential
    models); else ``eval_protocol`` itself (``full`` or ``sampled``)."""
    if config["eval_protocol"] == "ctr":
        return "ctr"
    if getattr(model, "input_type", None) == "sequence" or config_value(config, "eval_next_item"):
        return "next_item"
    return config["eval_protocol"]


def _ctr(split, part, config, model, items, users):
    if getattr(model, "input_type", None) == "sequence":
        raise ConfigError("eval_protocol", "'ctr' scores (user, item) pairs; sequential "
                          "models are evaluated by next-item ranking (full or sampled)")
    if items is not None or users is not None:
        raise ConfigError("eval_protocol", "'ctr' evaluates labelled pairs; a subset of "
                          "target items or users applies to the ranking protocols (full, "
                          "sampled)")
    return CTREvaluator(split, part, [config["valid_metric"]],
                        batch_size=ctr_batch_size(config))


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
PROTOCOLS = {"ctr": _ctr, "next_item": _next_item, "sampled": _sampled, "full": _full}


def make_evaluator(split: Split, part: str, config, model=None, items: np.ndarray | None = None,
                   users: np.ndarray | None = None):
    """The evaluator of ``part`` for ``config`` and ``model`` (:func:`evaluation_protocol`):
    :class:`~.ranking.FullRankingEvaluator`, :class:`~.ranking.SampledEvaluator`,
    :class:`~.sequential.NextItemEvaluator` or :class:`~.ctr.CTREvaluator` (auc, f1, accuracy;
    the ranking ``metrics`` do not apply). ``items`` (bool ``[n_items]``) counts only the targets
    on those items (every item is still ranked), ``users`` (bool ``[n_users]``) only those users'
    (ranking protocols only).

    The validation evaluator, which the trainer builds once per run, also says when ``model``
    cannot know the cold items of a ``cold_item`` split (:func:`~.common.cold_start_note`)."""
    if part == "valid" and items is None and users is None:
        cold_start_note(split, model, config)
    return PROTOCOLS[evaluation_protocol(config, model)](split, part, config, model, items,
                                                         users)


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
