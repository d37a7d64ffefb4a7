"""Layers of the LLM + KG recommender (SPEC.md "LLM + KG e-commerce recommender"): attention
pooling of variable-length sets (a user's behaviours), and the matching MLP over concatenated user
and item vectors, whose full-ranking pass splits the first layer so that every user part and every
item part is computed once and the pairs are scored in bounded chunks."""

from __future__ import annotations

import torch
from torch import nn

from ..graph.adjacency import spmm
from .kg import edge_softmax


class AttentionPooling(nn.Module):
    """Additive attention pooling of sets (the article's Sec. 3.2 step 2, "attention-weighted
    pooling" of the behaviour vectors): ``s_j = q . tanh(W x_j + b)``, ``a_j = softmax`` of ``s``
    over the rows of one set, pooled ``sum_j a_j v_j``.

    ``logits(x)`` gives ``s`` for rows ``x [N, D]``; ``pool(s, v, seg, n)`` the weighted sums of
    ``v [N, d]`` per set (``seg [N]`` the set of each row, ``0..n-1``). ``v`` may be any linear
    image of ``x`` (pooling then a linear map equals the map then pooling, since the weights sum to
    one), which lets a caller map every distinct row once. A set without rows pools to zeros.

    ``pool_sets(s, v, sets, sets_t)`` is the same pooling for sets given as a binary sparse
    matrix over the rows (one sparse product instead of gathers and scatters of every member):
    the fast path while the rows' logits span at most :attr:`MAX_LOGIT_RANGE`."""

    #: widest range of logits :meth:`pool_sets` accepts: ``exp(-40)`` (4e-18) is far from
    #: float32's underflow, so every set's normaliser stays exact and its inverse finite
    MAX_LOGIT_RANGE = 40.0

    def __init__(self, dim: int, attention_size: int):
        super().__init__()
        self.proj = nn.Linear(dim, attention_size)
        self.query = nn.Parameter(torch.empty(attention_size))
        nn.init.xavier_uniform_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        nn.init.normal_(self.query, std=attention_size ** -0.5)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.proj(x)) @ self.query

    def logits_of_projected(self, h: torch.Tensor) -> torch.Tensor:
        """:meth:`logits` from ``h = x W^T`` (the projection without its bias), for a caller
        that multiplies ``x`` by ``W`` and other maps in one product."""
        return torch.tanh(h + self.proj.bias) @ self.query

    @staticmethod
    def pool(s: torch.Tensor, v: torch.Tensor, seg: torch.Tensor, n: int) -> torch.Tensor:
        a = edge_softmax(s, seg, n)
        out = v.new_zeros(n, v.shape[-1])
        return out.index_add_(0, seg, a.unsqueeze(-1) * v)

    @classmethod
    def pool_sets(cls, s: torch.Tensor, v: torch.Tensor, sets: torch.Tensor,
                  sets_t: torch.Tensor, also: torch.Tensor | None = None):
        """:meth:`pool` for the sets given as the rows of a binary sparse ``sets [n, N]`` (CSR,
        ``sets_t`` its transpose) over the ``N`` rows of ``s [N]`` and ``v [N, d]``. The softmax
        is shifted by one constant (the largest logit) instead of each set's own maximum: the
        same weights, ``a_j = w_j / sum_{j' in set} w_j'`` with ``w = exp(s - max s)``, so every
        set's weighted sum and normaliser come from one sparse product. ``also [N, e]``: rows
        summed (unweighted) over the same sets in that product, returned second.

        None when the logits span more than :attr:`MAX_LOGIT_RANGE` (a set of small logits
        could then underflow): the caller falls back to :meth:`pool`."""
        if len(s) == 0:
            return None
        top = s.detach().max()  # any constant shift gives the same softmax and gradients
        if float(top - s.detach().min()) > cls.MAX_LOGIT_RANGE:
            return None
        w = torch.exp(s - top).unsqueeze(1)
        cols = [v * w, w] + ([] if also is None else [also])
        # split, not slices: one backward node instead of a zero-filled gradient per slice
        num, den, *rest = spmm(sets, sets_t, torch.cat(cols, 1)).split(
            [c.shape[1] for c in cols], 1)
        pooled = num / torch.where(den > 0, den, torch.ones_like(den))
        return pooled if also is None else (pooled, rest[0])

    def forward(self, x: torch.Tensor, seg: torch.Tensor, n: int) -> torch.Tensor:
        return self.pool(self.logits(x), x, seg, n)


class MatchingMLP(nn.Module):
    """The article's MatchingModel (Sec. 3.4 and its code): ``score = MLP([u ; i])``, hidden layers
    with ReLU, one output (without bias: it would cancel in the pairwise loss). The first layer
    ``W [u ; i] + b = W_u u + W_i i + b`` is held as its two halves, so that :meth:`score_all`
    computes ``W_u u + b`` for every user and ``W_i i`` for every item once and scores user x item
    blocks of at most ``chunk_elements`` hidden activations (blocks of about 2^20 stay in the CPU's
    cache: on ML-100K they score several times faster than blocks of 2^24)."""

    def __init__(self, user_dim: int, item_dim: int, hidden: list[int]):
        super().__init__()
        h0 = hidden[0]
        self.user_part = nn.Linear(user_dim, h0)              # W_u and b
        self.item_part = nn.Linear(item_dim, h0, bias=False)  # W_i
        rest: list[nn.Module] = []
        for a, b in zip(hidden, hidden[1:]):
            rest += [nn.ReLU(), nn.Linear(a, b)]
        # no output bias: a constant added to every score cancels in a pairwise loss and ranking
        rest += [nn.ReLU(), nn.Linear(hidden[-1], 1, bias=False)]
        self.rest = nn.Sequential(*rest)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        """Scores of pairs: ``u [..., du]`` and ``i [..., di]`` broadcast together."""
        return self.head(self.user_part(u) + self.item_part(i))

    def head(self, first: torch.Tensor) -> torch.Tensor:
        """The layers after the first, from its pre-activation ``first [..., h0]``."""
        return self.rest(first).squeeze(-1)

    def score_all(self, u: torch.Tensor, i: torch.Tensor, chunk_elements: int) -> torch.Tensor:
        """``[len(u), len(i)]`` scores of every pair, in blocks of at most ``chunk_elements``
        first-layer activations (at least one user x one item)."""
        a, b = self.user_part(u), self.item_part(i)
        h0 = a.shape[1]
        out = a.new_empty(len(u), len(i))
        ci = max(1, min(len(i), chunk_elements // h0))
        cu = max(1, chunk_elements // (h0 * ci))
        after = self.rest[1:]  # the layers after the first ReLU, which runs in place
        for s in range(0, len(u), cu):
            for t in range(0, len(i), ci):
                h = (a[s:s + cu, None, :] + b[None, t:t + ci, :]).relu_()
                out[s:s + cu, t:t + ci] = after(h).squeeze(-1)
        return out
