"""The majority-label baseline for item classification."""

from __future__ import annotations

import numpy as np
import torch

from ..nn.classification import no_ranking
from .base import Recommender, register


@register
class Majority(Recommender):
    """Predicts from the training labels' frequencies alone: the logit of label ``c`` is
    ``log p_c`` (single-label: the most frequent label wins for every item) or
    ``log(p_c / (1 - p_c))`` (multi-label: a label is predicted where its training frequency
    reaches the threshold, the best constant prediction per label under the log loss).
    Nothing is trained (``input_type`` none)."""

    name = "Majority"
    tasks = ("classification",)
    requires = frozenset({"labels"})
    input_type = "none"

    def __init__(self, config, inputs):
        super().__init__(config, inputs)
        labels = inputs.extra["labels"]
        p = labels.labels.mean(0).astype(np.float64)
        eps = 1.0 / (2.0 * max(len(labels.items), 1))  # a label absent from training stays finite
        p = np.clip(p, eps, 1.0 - eps)
        logit = np.log(p) if labels.mode == "single" else np.log(p / (1.0 - p))
        self.register_buffer("prior", torch.from_numpy(logit.astype(np.float32)))

    def classify(self, items: torch.Tensor) -> torch.Tensor:
        return self.prior.unsqueeze(0).expand(len(items), -1).clone()

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        raise no_ranking(self.name)
