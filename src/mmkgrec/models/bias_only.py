"""The bias-only rating baseline."""

from __future__ import annotations

from .base import register
from .biased_mf import BiasedMF


@register
class BiasOnly(BiasedMF):
    """``r_hat = mu + b_u + b_i``: :class:`~.biased_mf.BiasedMF` without factors (Koren et al.
    2009, Eq. 3, the baseline predictor), the same loss with ``reg_weight`` on the biases. The
    trivial baseline beside every rating row."""

    name = "BiasOnly"
    n_factors_key = None
