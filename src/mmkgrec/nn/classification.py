"""The loss of each classification mode.

Single-label: softmax over the labels, cross-entropy with the item's one label. Multi-label: one
independent sigmoid per label, binary cross-entropy averaged over items and labels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def label_loss(logits: torch.Tensor, labels: torch.Tensor, mode: str) -> torch.Tensor:
    """``labels``: boolean ``[n, n_labels]`` (exactly one True per row in the ``single`` mode)."""
    if mode == "single":
        return F.cross_entropy(logits, labels.float().argmax(1))
    return F.binary_cross_entropy_with_logits(logits, labels.float())



def no_ranking(model: str):
    """The error of a classifier asked to rank items for a user (``recommend``)."""
    from ..errors import ConfigError

    return ConfigError("task", f"{model} predicts item labels (task 'classification'); it ranks "
                       "no items for a user: recommend with a ranking model")
