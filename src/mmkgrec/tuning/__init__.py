"""Tuning in the library: ``mmkgrec tune`` and :func:`tune` search a grid of configuration values
through Optuna, score every trial on validation (or on validation inside the training folds) and
write the chosen configuration so that ``mmkgrec train --config`` reruns it
(:mod:`.study`; the grid and its checks: :mod:`.space`)."""

from .study import SAMPLERS, TuneResult, budget_name, tune

__all__ = ["SAMPLERS", "TuneResult", "budget_name", "tune"]
