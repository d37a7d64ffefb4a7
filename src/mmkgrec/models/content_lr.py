"""Logistic regression over frozen item inputs, for item classification."""

from __future__ import annotations

import torch
from torch import nn

from ..config import config_value
from ..data.task_batches import label_batches
from ..nn.classification import label_loss, no_ranking
from .base import Recommender, configured_modalities, register, standardised_content


@register
class ContentLR(Recommender):
    """A content classifier: one linear layer (softmax in the single-label mode, one sigmoid per
    label in the multi-label mode) over the concatenation of the item's frozen inputs: the
    features of each of ``modalities`` (text, image) and, when ``item_embeddings`` names a file,
    those vectors (e.g. a LightGCN run's item embeddings), each dimension standardised over the
    items that have it, plus one indicator per input of whether the item has it. Trained on the
    training items' labels only, with ``reg_weight`` times the squared norm of the weights."""

    name = "ContentLR"
    tasks = ("classification",)

    @classmethod
    def requirements(cls, config) -> frozenset:
        extra = {"item_embeddings"} if config_value(config, "item_embeddings") else set()
        return frozenset({"labels", *configured_modalities(config), *extra})

    def __init__(self, config, inputs):
        super().__init__(config, inputs)
        names = [*configured_modalities(config),
                 *(["item_embeddings"] if config_value(config, "item_embeddings") else [])]
        parts = []
        for name in names:
            mat, mask = standardised_content(inputs, name, self.name)
            parts += [mat, mask.unsqueeze(1)]
        self.register_buffer("x", torch.cat(parts, 1), persistent=False)
        labels = inputs.extra["labels"]
        self.mode = labels.mode
        self.head = nn.Linear(self.x.shape[1], labels.n_classes)
        self.reg = float(config["reg_weight"])

    def make_batches(self, split, config):
        from ..data.targets import training_labels

        return label_batches(training_labels(split), config["train_batch_size"])

    def classify(self, items: torch.Tensor) -> torch.Tensor:
        return self.head(self.x[items])

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        raise no_ranking(self.name)

    def loss(self, batch: dict) -> torch.Tensor:
        logits = self.classify(batch["items"])
        reg = self.reg * self.head.weight.pow(2).sum()
        return label_loss(logits, batch["targets"], self.mode) + reg
