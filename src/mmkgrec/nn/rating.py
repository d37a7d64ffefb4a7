"""Explicit-rating layers: the biased interaction of matrix factorisation and its squared-error
loss with per-rating L2 (Koren, Bell and Volinsky, "Matrix factorization techniques for
recommender systems", IEEE Computer 2009, Eq. 4 and 5).

``r_hat(u, i) = mu + b_u + b_i + p_u . q_i`` with ``mu`` the mean training rating (fixed, not
learned), user and item biases ``b`` and factors ``p``, ``q`` (left out when ``n_factors`` is 0:
the bias-only baseline). The loss is the mean over a batch of
``(r - r_hat)^2 + lambda (b_u^2 + b_i^2 + |p_u|^2 + |q_i|^2)``, the per-rating objective that
stochastic gradient descent on Eq. 5 minimises (and scikit-surprise's SVD).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BiasedInteraction(nn.Module):
    """``mu + b_u + b_i + p_u . q_i`` over dense user and item ids. Each side is one table, the
    bias in column 0 and the factors after it, so a batch reads each side with a single gather
    (one scatter-add in the backward pass). Biases start at zero, factors at
    ``N(0, init_std^2)`` (scikit-surprise's default 0.1)."""

    def __init__(self, n_users: int, n_items: int, n_factors: int, mu: float,
                 init_std: float = 0.1):
        super().__init__()
        self.register_buffer("mu", torch.tensor(float(mu)))
        self.n_factors = int(n_factors)
        self.user = nn.Parameter(torch.zeros(n_users, 1 + self.n_factors))
        self.item = nn.Parameter(torch.zeros(n_items, 1 + self.n_factors))
        with torch.no_grad():
            nn.init.normal_(self.user[:, 1:], 0.0, init_std)
            nn.init.normal_(self.item[:, 1:], 0.0, init_std)

    def forward(self, users: torch.Tensor, items: torch.Tensor, with_norms: bool = False):
        """Predicted ratings of the pairs ``(users[k], items[k])``; with ``with_norms``, also
        each pair's ``b_u^2 + b_i^2 + |p_u|^2 + |q_i|^2``."""
        u, i = F.embedding(users, self.user), F.embedding(items, self.item)
        pred = self.mu + u[:, 0] + i[:, 0] + (u[:, 1:] * i[:, 1:]).sum(-1)
        if with_norms:
            return pred, u.pow(2).sum(-1) + i.pow(2).sum(-1)
        return pred

    def all_items(self, users: torch.Tensor) -> torch.Tensor:
        """``[len(users), n_items]`` predicted ratings of every item."""
        u = self.user[users]
        return self.mu + u[:, :1] + self.item[:, 0] + u[:, 1:] @ self.item[:, 1:].T


def squared_error_l2(pred: torch.Tensor, target: torch.Tensor, norms: torch.Tensor,
                     reg: float) -> torch.Tensor:
    """Mean over the batch of ``(target - pred)^2 + reg * norms`` (Eq. 5 per rating)."""
    return ((target - pred) ** 2 + reg * norms).mean()
