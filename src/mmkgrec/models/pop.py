"""The popularity baseline."""

from __future__ import annotations

import torch

from .base import Recommender, register


@register
class Pop(Recommender):
    """Most-popular baseline: an item's score is its number of training interactions (the
    floor every model's integration test must beat; no paper, no SPEC.md resolution)."""

    name = "Pop"
    input_type = "none"

    def __init__(self, config, inputs):
        super().__init__(config, inputs)
        self.register_buffer("counts", torch.zeros(self.n_items))
        self.fit_closed_form(inputs.train)

    def fit_closed_form(self, train):
        self.counts = torch.bincount(torch.as_tensor(train.item), minlength=self.n_items).float()

    def score_all(self, users):
        return self.counts.unsqueeze(0).expand(len(users), -1).clone()

    def score(self, users, items):
        return self.counts[items]
