"""Item classification (task ``classification``): the labels of the items of a part predicted from
``model.classify(items)``, one logit per label.

Single-label mode (``classification_mode: single``): the label with the largest logit (softmax;
ties to the lower label index). Multi-label mode: every label whose sigmoid reaches
``classification_threshold`` (0.5 unless configured), one independent decision per label.
Metrics (:func:`~.metrics.label_metrics`): ``accuracy`` (the share of items predicted exactly:
in the multi-label mode the subset accuracy, also reported as ``subset_accuracy``), ``f1_micro``,
``f1_macro``, and in the multi-label mode ``hamming_loss``; :meth:`ClassificationEvaluator.details`
holds the per-label table (precision, recall, F1, support) of the last evaluation. Per item (for
``per_user_test.npz``, keyed by item: the unit of this task): ``accuracy`` (0 or 1) and, multi-label,
``hamming_loss``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..data.targets import ClassificationSplit
from ..errors import ConfigError
from .. import distributed
from .common import EvalMode
from .metrics import MULTILABEL_METRICS, MetricAccumulator, label_metrics, per_class_table


class ClassificationEvaluator:
    """Evaluate the labelled items of ``part`` ("valid" or "test") of a classification split."""

    def __init__(self, split, part: str, threshold: float = 0.5, chunk: int = 8192):
        if not isinstance(split, ClassificationSplit):
            raise ConfigError("task", "'classification' evaluates the labelled items of a split "
                              "over items (task: classification with a target_column)")
        self.split, self.part, self.chunk = split, part, chunk
        self.mode = split.mode
        self.items = torch.from_numpy(split.items[part])
        self.labels = split.labels[split.items[part]]
        self.logit_threshold = math.log(threshold / (1.0 - threshold))  # sigmoid(x) >= t
        self.metrics = ["accuracy", "f1_micro", "f1_macro"]
        if self.mode == "multi":
            self.metrics += list(MULTILABEL_METRICS)
        self.per_class: list[dict] | None = None

    @torch.no_grad()
    def logits(self, model, device="cpu") -> torch.Tensor:
        """``[n_items_of_part, n_labels]`` logits (the model already in eval mode)."""
        mine = distributed.shard(len(self.items))  # this process's block of items, then all
        out = [model.classify(self.items[s:min(s + self.chunk, mine.stop)].to(device)).float().cpu()
               for s in range(mine.start, mine.stop, self.chunk)]
        return distributed.gather_concat(torch.cat(out) if out
                                         else torch.zeros(0, len(self.split.classes)))

    def predict(self, logits: torch.Tensor) -> np.ndarray:
        """Boolean ``[n, n_labels]`` predictions of ``logits`` under the split's mode."""
        if self.mode == "single":
            pred = np.zeros(tuple(logits.shape), dtype=bool)
            pred[np.arange(len(logits)), logits.argmax(1).numpy()] = True
            return pred
        return (logits >= self.logit_threshold).numpy()

    def evaluate(self, model, device="cpu") -> tuple[dict, MetricAccumulator, float]:
        """Returns (metrics over the part's items, per-item accumulator, seconds)."""
        with EvalMode(model) as mode:
            logits = self.logits(model, device)
        acc = MetricAccumulator(unit="item")
        if not len(self.items):
            return {m: float("nan") for m in self.metrics}, acc, mode.seconds
        if logits.shape != self.labels.shape:
            raise ValueError(f"{getattr(model, 'name', 'model')}.classify returned "
                             f"{tuple(logits.shape)} logits for {self.labels.shape} labels")
        pred = self.predict(logits)
        out = label_metrics(self.labels, pred, self.metrics)
        self.per_class = per_class_table(self.labels, pred, self.split.classes)
        per_item = {"accuracy": torch.from_numpy((pred == self.labels).all(1).astype(np.float64))}
        if self.mode == "multi":
            per_item["hamming_loss"] = torch.from_numpy((pred != self.labels).mean(1))
        acc.update(per_item, self.items)
        return out, acc, mode.seconds

    def details(self) -> dict:
        """The per-label table of the last evaluation."""
        return {"per_class": self.per_class}
