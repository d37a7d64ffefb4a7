"""The model's own reasons, for models whose score can be read back to the user's history:
take history items away, score again, and the drop says how much the candidate's score rests
on them. One mechanism here (:func:`scores_without`, :func:`influence`); what "taking away"
means is each model's hook (``Recommender.scores_without_history``), declared in words by its
class's ``history_reasons``:

* next-item models (SASRec, GRU4Rec, BERT4Rec): the items leave the model's input, the user's
  last ``max_seq_length`` training items (occlusion);
* MM-RACL-KAL: its input sequence and, with ``use_static``, the user's edges in the graph of its
  static interest, propagated again;
* LightGCN: the user's edges to the items leave the normalised training graph, which is
  propagated again (the exact score of a graph without those interactions);
* LLMKGRec: the items leave the user's pooled history (its ``user_encoder: one_pass``
  configuration has none).

Models without a declaration (BPR, VBPR: the user vector is a free parameter, no history item
can be taken out of it) have no reasons: their explanations order the cited history by the KG
alone, and the faithfulness benchmark says "not applicable" (:func:`models_without_reasons`).

Explanation is post-processing: these are extra forward passes in eval mode; no weight changes.
"""

from __future__ import annotations

import numpy as np
import torch


def has_reasons(model) -> bool:
    """Whether ``model``, as configured, has reasons that can be read."""
    reads = getattr(model, "reads_history", None)
    return callable(reads) and bool(reads())


def declared_reasons() -> dict[str, str | None]:
    """Every registered model's ``history_reasons`` (None: no reasons), by name."""
    from ..models import get_model_class, registered_models

    return {name: get_model_class(name).history_reasons for name in registered_models()}


def models_without_reasons() -> list[str]:
    """The registered models that declare no history reasons."""
    return sorted(name for name, why in declared_reasons().items() if why is None)


@torch.no_grad()
def scores_without(model, u: int, c: int, removals: list[list[int]]) -> np.ndarray:
    """The score of item ``c`` for user ``u`` with each list of dense history items in
    ``removals`` taken away (an empty list: the score as it is), through the model's hook."""
    from ..evaluation.common import EvalMode

    if not has_reasons(model):
        raise NotImplementedError(f"{type(model).__name__} has no reasons that can be read")
    removals = [[int(i) for i in items] for items in removals]
    with EvalMode(model):
        out = model.scores_without_history(int(u), int(c), removals)
    return out.float().cpu().numpy()


def influence(model, u: int, c: int) -> dict[int, float]:
    """How much ``c``'s score for ``u`` drops when each history item the model reads is taken
    away (dense item -> drop; an item twice in a sequence input leaves with all occurrences)."""
    items = sorted(set(model.history_items(u)))
    if not items:
        return {}
    s = scores_without(model, u, c, [[]] + [[i] for i in items])
    return {i: float(s[0] - s[k + 1]) for k, i in enumerate(items)}
