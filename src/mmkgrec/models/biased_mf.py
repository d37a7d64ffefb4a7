"""Biased matrix factorisation for explicit ratings."""

from __future__ import annotations

import numpy as np
import torch

from ..data.task_batches import rating_batches
from ..nn.rating import BiasedInteraction, squared_error_l2
from .base import ModelInputs, Recommender, register


@register
class BiasedMF(Recommender):
    """Biased MF (Koren, Bell and Volinsky, IEEE Computer 2009): ``r_hat = mu + b_u + b_i +
    p_u . q_i`` (Eq. 4) with ``mu`` the mean training rating, trained on Eq. 5, the squared error
    of each training rating plus ``reg_weight`` times the squared norms of its biases and
    factors, by mini-batches (``train_batch_size``, Adam at ``learning_rate``);
    ``embedding_size`` factors. Task ``rating``: ``score`` is the predicted rating (the
    evaluator clips it to the training ratings' range)."""

    name = "BiasedMF"
    tasks = ("rating",)
    n_factors_key = "embedding_size"

    def __init__(self, config, inputs: ModelInputs):
        super().__init__(config, inputs)
        ratings = inputs.train.rating
        if ratings is None or not len(ratings):
            raise ValueError(f"{self.name} trains on the training interactions' ratings; the "
                             "inputs have none")
        factors = int(config[self.n_factors_key]) if self.n_factors_key else 0
        self.net = BiasedInteraction(self.n_users, self.n_items, factors,
                                     float(np.mean(ratings, dtype=np.float64)))
        self.reg = float(config["reg_weight"])

    def make_batches(self, split, config):
        return rating_batches(split, config["train_batch_size"])

    def loss(self, batch: dict) -> torch.Tensor:
        pred, norms = self.net(batch["users"], batch["items"], with_norms=True)
        return squared_error_l2(pred, batch["ratings"], norms, self.reg)

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.net(users, items)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        return self.net.all_items(users)
