"""Full-ranking and sampled evaluation of a model on a split's validation or test part.

Full ranking scores every item for each evaluated user, in chunks of ``eval_batch_size`` users so
memory stays bounded; the user's training items (and validation items, at test time) are masked
to ``-inf`` before the top-k is taken. Only users with at least one relevant item are evaluated.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import distributed
from ..data.split import Split
from .common import (EvalMode, check_finite_scores, per_user_means, progress,
                     ranking_metric_plan, restrict_targets, sampled_candidates, shows_progress)
from .metrics import (MetricAccumulator, ranking_metrics_from_hits, sampled_ranking_metrics,
                      topk_with_ties)


def _csr_torch(inter, n_users: int, n_items: int):
    m = inter.csr(n_users, n_items)
    return torch.from_numpy(m.indptr.astype(np.int64)), torch.from_numpy(m.indices.astype(np.int64))


def _rows_of(indptr: torch.Tensor, indices: torch.Tensor, users: torch.Tensor):
    """(row position in ``users``, column) of every stored entry of the given CSR rows."""
    start, end = indptr[users], indptr[users + 1]
    lens = end - start
    rows = torch.repeat_interleave(torch.arange(len(users)), lens)
    offs = torch.arange(int(lens.sum())) - torch.repeat_interleave(torch.cumsum(lens, 0) - lens, lens)
    return rows, indices[torch.repeat_interleave(start, lens) + offs]


class FullRankingEvaluator:
    """Evaluate ``part`` ("valid" or "test") of ``split`` by full ranking.

    ``items`` (bool ``[n_items]``, optional) restricts what counts as relevant to the targets of
    those items: every item is still ranked and masked as usual, a user is evaluated on their
    targets among ``items`` only, and users with none are left out (a long-tail analysis,
    :mod:`~mmkgrec.evaluation.popularity`); ``users`` (bool ``[n_users]``) evaluates only those
    users (the cold users of a ``cold_user`` split)."""

    def __init__(self, split: Split, part: str, metrics: list[str], batch_size: int = 4096,
                 mask_history: bool = True, items: np.ndarray | None = None,
                 users: np.ndarray | None = None):
        self.split, self.part = split, part
        self.metrics, self.max_k = ranking_metric_plan(metrics)
        self.batch_size = batch_size
        self.show_progress = False  # a bar over the chunks of users on a terminal (make_evaluator)
        n_users, n_items = split.n_users, split.n_items
        target = restrict_targets(split.part(part), items, n_items, users, n_users)
        self.users = torch.from_numpy(np.unique(target.user))
        self.n_relevant = torch.from_numpy(np.bincount(target.user, minlength=n_users))
        self.target_keys = torch.from_numpy(target.keys(n_items))
        masked = [split.train] + ([split.valid] if part == "test" else [])
        self.mask = None
        if mask_history:
            from ..data.dataset import Interactions

            both = Interactions(np.concatenate([m.user for m in masked]),
                                np.concatenate([m.item for m in masked]))
            self.mask = _csr_torch(both, n_users, n_items)

    @torch.no_grad()
    def evaluate(self, model, device="cpu") -> tuple[dict, MetricAccumulator, float]:
        """Returns (mean metrics, per-user accumulator, seconds)."""
        with EvalMode(model) as mode:
            acc = MetricAccumulator()
            n_items = self.split.n_items
            mine = self.users[distributed.shard(len(self.users))]  # this process's users
            step = self.batch_size
            if shows_progress(self.show_progress):  # a bar of ~20 steps (the same results)
                step = max(1, min(step, -(-len(mine) // 20)))
            starts = range(0, len(mine), step)
            for start in progress(starts, "evaluating", self.show_progress):
                users = mine[start:start + step]
                rows = cols = torch.zeros(0, dtype=torch.long)
                if self.mask is not None:
                    rows, cols = _rows_of(*self.mask, users)
                # only the top max_k count: a model may bound the scores that cannot get there
                if hasattr(model, "score_all_for_top"):
                    scores = model.score_all_for_top(users.to(device), self.max_k,
                                                     (rows.to(device), cols.to(device)))
                else:  # any module with score_all (a wrapped or foreign model)
                    scores = model.score_all(users.to(device))
                scores = scores.float().cpu()
                check_finite_scores(scores)
                scores[rows, cols] = -torch.inf
                top = topk_with_ties(scores, self.max_k)
                keys = users.unsqueeze(1) * n_items + top
                pos = torch.searchsorted(self.target_keys, keys).clamp_max(len(self.target_keys) - 1)
                hits = self.target_keys[pos] == keys
                acc.update(ranking_metrics_from_hits(hits, self.n_relevant[users], self.metrics), users)
            acc = acc.gathered()  # every process's users, in rank order: the undivided result
        return acc.compute(), acc, mode.seconds


class SampledEvaluator:
    """Each positive of ``part`` ranked against ``n_negatives`` items sampled uniformly among the
    items the user never interacted with in any part (fixed seed, so every model sees the same
    candidates). Per-user values are the mean over the user's positives. ``items`` / ``users``
    restrict the positives as for :class:`FullRankingEvaluator`."""

    def __init__(self, split: Split, part: str, metrics: list[str], n_negatives: int = 100,
                 seed: int = 0, items: np.ndarray | None = None, users: np.ndarray | None = None):
        self.split, self.part = split, part
        self.metrics = ranking_metric_plan(metrics, sampled=True)[0]
        target = restrict_targets(split.part(part), items, split.n_items, users, split.n_users)
        self.pos_users = torch.from_numpy(target.user)
        self.pos_items = torch.from_numpy(target.item)
        self.negatives = torch.from_numpy(sampled_candidates(split, target.user, n_negatives, seed))

    @torch.no_grad()
    def evaluate(self, model, device="cpu", chunk: int = 8192):
        with EvalMode(model) as mode:
            per_pos = {m: [] for m in self.metrics}
            mine = distributed.shard(len(self.pos_users))  # this process's block of positives
            for s in range(mine.start, mine.stop, chunk):
                e = min(s + chunk, mine.stop)
                u, p, neg = self.pos_users[s:e], self.pos_items[s:e], self.negatives[s:e]
                ps = model.score(u.to(device), p.to(device)).float().cpu()
                ns = model.score(u.repeat_interleave(neg.shape[1]).to(device),
                                 neg.reshape(-1).to(device)).float().cpu().view(neg.shape)
                check_finite_scores(torch.cat([ps.view(-1, 1), ns], 1))
                for m, v in sampled_ranking_metrics(ps, ns, self.metrics).items():
                    per_pos[m].append(v)
            acc = per_user_means(self.pos_users, per_pos)
        return acc.compute(), acc, mode.seconds
