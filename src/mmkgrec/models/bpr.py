"""BPR-MF (Rendle et al., UAI 2009, "BPR: Bayesian Personalized Ranking from Implicit
Feedback")."""

from __future__ import annotations

from torch import nn

from .base import register
from .factor_base import FactorModel


@register
class BPR(FactorModel):
    """BPR-MF: ``x_ui = <w_u, h_i>`` (Sec. 5.1, matrix factorisation) trained with BPR-Opt
    (Sec. 4.1, ``-ln sigmoid(x_ui - x_uj)`` over sampled negatives ``j``,
    :func:`~mmkgrec.nn.losses.bpr_loss`) plus ``reg_weight`` times the squared L2 of the batch's
    vectors divided by the batch size. RecBole's defaults: Xavier-normal init, no L2
    (``reg_weight: 0``). No SPEC.md resolution beyond the shared ones (full ranking)."""

    name = "BPR"

    def __init__(self, config, inputs):
        super().__init__(config, inputs)
        self._init_factors(nn.init.xavier_normal_)
