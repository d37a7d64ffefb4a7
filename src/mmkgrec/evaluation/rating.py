"""Rating evaluation (task ``rating``): the predicted score of every (user, item, rating) row of a
part against its rating.

The prediction is ``model.score(users, items)``, clipped to the range of the training ratings
(as scikit-surprise's ``test`` clips to the rating scale), so no model is charged for predicting
beyond a scale it was trained on. Pooled over the part's rows: ``mse``, ``rmse``, ``mae`` (lower
is better); per user (for ``per_user_test.npz`` and paired tests): the same over the user's own
rows.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError
from .. import distributed
from .common import EvalMode
from .metrics import RATING_METRICS, MetricAccumulator, rating_metrics


class RatingEvaluator:
    """Evaluate the rated interactions of ``part`` ("valid" or "test") of ``split``."""

    def __init__(self, split, part: str, chunk: int = 65536):
        target, train = split.part(part), split.train
        if target.rating is None or train.rating is None:
            raise ConfigError("task", f"'rating' needs the rating column; dataset "
                              f"'{split.dataset.name}' has none")
        self.part, self.chunk = part, chunk
        self.metrics = list(RATING_METRICS)
        self.users = torch.from_numpy(target.user)
        self.items = torch.from_numpy(target.item)
        self.ratings = np.asarray(target.rating, dtype=np.float64)
        rated = np.asarray(train.rating, dtype=np.float64)
        self.low, self.high = ((float(rated.min()), float(rated.max())) if len(rated)
                               else (-np.inf, np.inf))

    @torch.no_grad()
    def predictions(self, model, device="cpu") -> np.ndarray:
        """The clipped predicted rating of every row (the model already in eval mode)."""
        mine = distributed.shard(len(self.users))  # this process's block of rows, then all
        out = [model.score(self.users[s:min(s + self.chunk, mine.stop)].to(device),
                           self.items[s:min(s + self.chunk, mine.stop)].to(device)).double().cpu()
               for s in range(mine.start, mine.stop, self.chunk)]
        pred = distributed.gather_concat(torch.cat(out).numpy() if out else np.zeros(0))
        return np.clip(pred, self.low, self.high)

    def evaluate(self, model, device="cpu") -> tuple[dict, MetricAccumulator, float]:
        """Returns (pooled metrics, per-user accumulator, seconds)."""
        with EvalMode(model) as mode:
            pred = self.predictions(model, device)
        acc = MetricAccumulator()
        if not len(pred):  # an empty part (valid_ratio 0): nothing to measure
            return {m: float("nan") for m in self.metrics}, acc, mode.seconds
        pooled = rating_metrics(pred, self.ratings)
        err = pred - self.ratings
        ids, slot = np.unique(self.users.numpy(), return_inverse=True)
        n = np.bincount(slot).astype(np.float64)
        mse = np.bincount(slot, weights=err * err) / n
        acc.update({"mse": torch.from_numpy(mse), "rmse": torch.from_numpy(np.sqrt(mse)),
                    "mae": torch.from_numpy(np.bincount(slot, weights=np.abs(err)) / n)},
                   torch.from_numpy(ids))
        return {m: pooled[m] for m in self.metrics}, acc, mode.seconds
