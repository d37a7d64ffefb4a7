"""Losses the models share: the pairwise ranking loss (BPR), the per-batch L2 term, and the
contrastive losses (InfoNCE and its decoupled form).

* BPR: Rendle et al., UAI 2009, eq. in Sec. 4.1 (``-ln sigmoid(x_ui - x_uj)``); the same pairwise
  form on distances is TransR's loss (KGAT eq. 2, CKE Sec. 4.1; :class:`~mmkgrec.nn.kg.TransR`).
* L2 per batch: RecBole's ``EmbLoss`` with ``require_pow`` (KGAT eq. 13's ``lambda ||Theta||^2``
  taken over the batch's vectors).
* Full softmax: the cross-entropy of the next item among every item (SASRec and GRU4Rec as
  RecBole trains them with ``loss_type: CE``, BERT4Rec's cloze, MM-RACL-KAL eq. 12), optionally
  over a subset of the items (:func:`full_softmax_loss`).
* Contrastive: InfoNCE (van den Oord et al. 2018) with a temperature, and the decoupled form
  whose denominator sums over negatives only (Yeh et al., ECCV 2022), which is how MM-RACL-KAL's
  eq. 13-15 are printed (SPEC.md "MM-RACL-KAL", contrastive losses).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MASKED = -1e9  # a negative's similarity / tau where it is not a negative (finite: no NaN grads)


def bpr_loss(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """``-mean log sigmoid(pos - neg)``; ``neg`` may hold several negatives per positive."""
    if neg.dim() > pos.dim():
        pos = pos.unsqueeze(-1)
    return -torch.nn.functional.logsigmoid(pos - neg).mean()


def pair_scores(u: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor):
    """Inner-product scores ``(u . pos [B], u . neg [B] or [B, k])`` for user vectors ``u [B, d]``,
    positives ``[B, d]`` and negatives ``[B, d]`` or ``[B, k, d]`` (the inputs of
    :func:`bpr_loss`)."""
    pos_s = (u * pos).sum(-1)
    neg_s = (u.unsqueeze(1) * neg).sum(-1) if neg.dim() == 3 else (u * neg).sum(-1)
    return pos_s, neg_s


def l2_per_batch(*tensors: torch.Tensor, n: int | None = None) -> torch.Tensor:
    """Sum of squared L2 norms divided by the batch size ``n`` (default: the first tensor's
    rows), as RecBole's ``EmbLoss`` with ``require_pow``."""
    n = tensors[0].shape[0] if n is None else n
    return sum(t.pow(2).sum() for t in tensors) / n


def l2_of_rows(*pairs: tuple[torch.Tensor, torch.Tensor], n: int) -> torch.Tensor:
    """:func:`l2_per_batch` of the rows ``table[index]`` for ``(table, index)`` pairs, without
    gathering them: each row's squared norm weighted by how often ``index`` holds it."""
    return sum(torch.bincount(index.reshape(-1), minlength=len(table)).to(table.dtype)
               @ table.pow(2).sum(1) for table, index in pairs) / n


def full_softmax_loss(logits: torch.Tensor, target: torch.Tensor,
                      keep: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy of ``target`` over the item ``logits`` ``[B, n_items]``. With ``keep`` (bool
    ``[n_items]``, the ``negative_items`` pool) the other items leave the normaliser: under
    ``negative_items: seen`` an item without training interactions (a ``cold_item`` split's
    held-out items) is never a target, so in a full softmax it would only ever be pushed down,
    the leak the pairwise samplers' pool closes. Every target must be kept (a training item)."""
    if keep is not None:
        logits = logits.masked_fill(~keep, MASKED)
    return F.cross_entropy(logits, target)


def similarity(a: torch.Tensor, b: torch.Tensor, normalize: bool = True,
               pairwise: bool = False) -> torch.Tensor:
    """Cosine (``normalize``) or inner-product similarities over the last dimension, broadcast;
    with ``pairwise`` the ``[len(a), len(b)]`` matrix."""
    if normalize:
        a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    return a @ b.T if pairwise else (a * b).sum(-1)


def contrastive_loss(pos: torch.Tensor, neg: torch.Tensor, valid: torch.Tensor, tau: float,
                     positive_in_denominator: bool = False) -> torch.Tensor:
    """Mean over anchors of ``-log exp(pos/tau) / sum_valid exp(neg/tau)`` (decoupled: the
    denominator holds the negatives only) or, with ``positive_in_denominator``, InfoNCE's
    ``-log exp(pos/tau) / (exp(pos/tau) + sum_valid exp(neg/tau))``. ``pos`` ``[N]`` (anchor vs
    positive similarities), ``neg`` / ``valid`` ``[N, K]`` (similarities to candidates and which of
    them are negatives). In the decoupled form an anchor without any negative is left out; a loss
    with no anchor left is 0 (with a gradient path)."""
    pos = pos / tau
    neg = (neg / tau).masked_fill(~valid, MASKED)
    if positive_in_denominator:
        denom = torch.logsumexp(torch.cat([pos.unsqueeze(1), neg], 1), 1)
        keep = torch.ones_like(pos, dtype=torch.bool)
    else:
        if neg.shape[1] == 0:
            return pos.sum() * 0.0
        denom = torch.logsumexp(neg, 1)
        keep = valid.any(1)
    if not bool(keep.any()):
        return pos.sum() * 0.0
    return (denom - pos)[keep].mean()
