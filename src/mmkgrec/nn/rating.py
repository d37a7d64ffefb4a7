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
from torch import nn


class BiasedInteraction(nn.Module):
    """``mu + b_u + b_i + p_u . q_i`` over dense user and item ids. Biases start at zero, factors
    at ``N(0, init_std^2)`` (scikit-surprise's default 0.1)."""

    def __init__(self, n_users: int, n_items: int, n_factors: int, mu: float,
                 init_std: float = 0.1):
        super().__init__()
        self.register_buffer("mu", torch.tensor(float(mu)))
        self.user_bias = nn.Embedding(n_users, 1)
        self.item_bias = nn.Embedding(n_items, 1)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)
        self.n_factors = int(n_factors)
        if self.n_factors:
            self.user_factors = nn.Embedding(n_users, self.n_factors)
            self.item_factors = nn.Embedding(n_items, self.n_factors)
            nn.init.normal_(self.user_factors.weight, 0.0, init_std)
            nn.init.normal_(self.item_factors.weight, 0.0, init_std)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Predicted ratings of the pairs ``(users[k], items[k])``."""
        out = self.mu + self.user_bias(users).squeeze(-1) + self.item_bias(items).squeeze(-1)
        if self.n_factors:
            out = out + (self.user_factors(users) * self.item_factors(items)).sum(-1)
        return out

    def all_items(self, users: torch.Tensor) -> torch.Tensor:
        """``[len(users), n_items]`` predicted ratings of every item."""
        out = (self.mu + self.user_bias(users)) + self.item_bias.weight.T
        if self.n_factors:
            out = out + self.user_factors(users) @ self.item_factors.weight.T
        return out

    def squared_norms(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """``b_u^2 + b_i^2 + |p_u|^2 + |q_i|^2`` of each pair."""
        out = self.user_bias(users).squeeze(-1) ** 2 + self.item_bias(items).squeeze(-1) ** 2
        if self.n_factors:
            out = out + self.user_factors(users).pow(2).sum(-1) + self.item_factors(items).pow(2).sum(-1)
        return out


def squared_error_l2(pred: torch.Tensor, target: torch.Tensor, norms: torch.Tensor,
                     reg: float) -> torch.Tensor:
    """Mean over the batch of ``(target - pred)^2 + reg * norms`` (Eq. 5 per rating)."""
    return ((target - pred) ** 2 + reg * norms).mean()
