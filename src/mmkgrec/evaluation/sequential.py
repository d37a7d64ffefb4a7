"""Next-item evaluation: every validation / test interaction predicted from everything before it.

For each evaluation interaction (see :mod:`mmkgrec.data.sequences`), the model scores every item
from the interactions that precede it: a sequential model through ``score_sequences(seq,
lengths)`` on the last ``max_seq_length`` of them, any other model through ``score_all(users)``
(so Pop or BPR can be put side by side under the same protocol). The target is the one relevant
item; metrics use the project's definitions (:func:`~.metrics.ranking_metrics_from_hits`, ties
broken by lower item index), so ``recall@k == hit@k`` and ``precision@k == hit@k / k``.

Masking: RecBole masks nothing for sequential models, and neither does this evaluator by default
(``mask_history_seq: false``). With ``mask_history_seq: true`` every item of the sample's full
history (all earlier interactions, not only the truncated window) is removed from the ranking.

Per-user values are the mean over that user's evaluation interactions, keyed by user like the
full-ranking evaluator's (so paired tests across models work); the reported mean is over users.
``eval_protocol: sampled`` ranks the target against ``sampled_negatives`` items drawn uniformly
(fixed seed) among items the user never interacted with.
"""

from __future__ import annotations


import numpy as np
import torch

from ..data.sequences import EvalSamples, build_sequences
from ..data.split import Split
from .common import EvalMode, counted, per_user_means, ranking_metric_plan, sampled_candidates
from .metrics import (MetricAccumulator, ranking_metrics_from_hits, sampled_ranking_metrics,
                      topk_with_ties)


class NextItemEvaluator:
    """Evaluate ``part`` ("valid" or "test") of ``split`` under the next-item protocol."""

    def __init__(self, split: Split, part: str, metrics: list[str], batch_size: int = 4096,
                 mask_history: bool = False, max_seq_length: int | None = None,
                 sampled_negatives: int | None = None, seed: int = 0,
                 items: np.ndarray | None = None, users: np.ndarray | None = None):
        self.split, self.part = split, part
        self.metrics, self.max_k = ranking_metric_plan(metrics, sampled=bool(sampled_negatives))
        # samples per chunk; the [chunk, n_items] score matrix stays under ~128 MB
        self.batch_size = max(1, min(int(batch_size), max(256, (1 << 25) // max(split.n_items, 1))))
        self.mask_history = bool(mask_history)
        self.max_seq_length = max_seq_length
        self.seqs = build_sequences(split)
        self.samples = EvalSamples(self.seqs, part)
        # only targets on these items, by these users, count; every item is still ranked
        keep = counted(self.samples.users.numpy(), self.samples.targets.numpy(), split.n_users,
                       split.n_items, items, users)
        if keep is not None:
            self.samples.keep(keep)
        self.negatives = None
        if sampled_negatives:
            self.negatives = torch.from_numpy(sampled_candidates(
                split, self.samples.users.numpy(), sampled_negatives, seed))

    def _scores(self, model, sl: slice, device) -> torch.Tensor:
        if hasattr(model, "score_sequences"):
            max_len = (getattr(model, "max_input_length", None) or self.max_seq_length
                       or 1 << 40)
            seq, lengths = self.samples.inputs(sl, max_len)
            extra = ({"users": self.samples.users[sl].to(device)}
                     if getattr(model, "scores_need_users", False) else {})
            return model.score_sequences(seq.to(device), lengths.to(device), **extra).float().cpu()
        return model.score_all(self.samples.users[sl].to(device)).float().cpu()

    @torch.no_grad()
    def evaluate(self, model, device="cpu") -> tuple[dict, MetricAccumulator, float]:
        """Returns (mean metrics over users, per-user accumulator, seconds)."""
        with EvalMode(model) as mode:
            per_sample = {m: [] for m in self.metrics}
            n = len(self.samples)
            for s in range(0, n, self.batch_size):
                sl = slice(s, min(s + self.batch_size, n))
                scores = self._scores(model, sl, device)
                target = self.samples.targets[sl]
                if self.negatives is not None:
                    pos = scores.gather(1, target.unsqueeze(1)).squeeze(1)
                    neg = scores.gather(1, self.negatives[sl])
                    vals = sampled_ranking_metrics(pos, neg, self.metrics)
                else:
                    if self.mask_history:
                        rows, cols = self.samples.history(sl)
                        scores[rows, cols] = -torch.inf
                    top = topk_with_ties(scores, self.max_k)
                    hits = top == target.unsqueeze(1)
                    vals = ranking_metrics_from_hits(hits, torch.ones(len(target)), self.metrics)
                for m, v in vals.items():
                    per_sample[m].append(v)
            acc = per_user_means(self.samples.users, per_sample)
        return acc.compute(), acc, mode.seconds
