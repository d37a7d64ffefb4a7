"""The model's own reasons, for models whose score can be read back to the history: a next-item
model (SASRec, GRU4Rec, BERT4Rec, MM-RACL-KAL) scores a candidate from the user's last
``max_seq_length`` training items, so removing an item from that input and scoring again says
how much the candidate's score rests on it (occlusion). Models without such an input (BPR, VBPR,
LightGCN here) have no reasons; explanations then order the cited history by the KG alone.

Explanation is post-processing: these are extra forward passes in eval mode; no weight changes.
"""

from __future__ import annotations

import numpy as np
import torch


def has_reasons(model) -> bool:
    return hasattr(model, "score_sequences") and hasattr(model, "hist_indptr")


def _window(model, u: int) -> torch.Tensor:
    """The user's evaluation input: training items + 1 in time order, the last
    ``max_input_length`` of them (as ``score_all`` reads them)."""
    a, b = int(model.hist_indptr[u]), int(model.hist_indptr[u + 1])
    a = max(a, b - model.max_input_length)
    return model.hist_items[a:b]


@torch.no_grad()
def scores_without(model, u: int, c: int, removals: list[list[int]]) -> np.ndarray:
    """The score of item ``c`` for user ``u`` from the user's input with each list of dense
    items in ``removals`` taken out (an empty list: the input as it is)."""
    from ..evaluation.common import EvalMode

    seq = _window(model, u)
    rows = []
    for items in removals:
        drop = torch.as_tensor([i + 1 for i in items], dtype=seq.dtype, device=seq.device)
        rows.append(seq[~torch.isin(seq, drop)] if len(items) else seq)
    width = max(1, max(len(r) for r in rows))
    batch = torch.zeros(len(rows), width, dtype=seq.dtype, device=seq.device)
    for k, r in enumerate(rows):
        batch[k, :len(r)] = r
    lengths = torch.as_tensor([max(len(r), 1) for r in rows], device=seq.device)
    extra = ({"users": torch.full((len(rows),), u, dtype=torch.long, device=seq.device)}
             if getattr(model, "scores_need_users", False) else {})
    with EvalMode(model):
        out = model.score_sequences(batch, lengths, **extra)[:, c]
    return out.float().cpu().numpy()


def influence(model, u: int, c: int) -> dict[int, float]:
    """How much ``c``'s score for ``u`` drops when each item of the user's input is removed
    (dense item -> drop; an item twice in the input is removed with all its occurrences)."""
    items = sorted({int(i) - 1 for i in _window(model, u).tolist()})
    if not items:
        return {}
    s = scores_without(model, u, c, [[]] + [[i] for i in items])
    return {i: float(s[0] - s[k + 1]) for k, i in enumerate(items)}
