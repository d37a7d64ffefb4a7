"""Compatibility shim so RecBole 1.2.1 runs on NumPy 2, SciPy >= 1.12 and torch >= 2.6.

Import this module BEFORE importing ``recbole``. It is idempotent and only patches what is missing.

What it fixes:

1. NumPy 2 removed aliases that RecBole 1.2.1 (and some of its optional dependencies) still use:
   ``np.float_``, ``np.complex_``, ``np.unicode_``, ``np.bool8``, ``np.int0``, ``np.string_``.
   They are re-added as aliases of the current names.
2. SciPy >= 1.12 made ``dok_matrix`` stop subclassing ``dict``; RecBole's graph models
   (LightGCN, NGCF, ...) build their adjacency with ``A._update(dict)``. A ``_update`` method that
   writes into the matrix's internal dict is added back.
3. torch >= 2.6 defaults ``torch.load(weights_only=True)``, but RecBole's checkpoints pickle its
   ``Config`` object, so reloading the best model fails. ``torch.load`` defaults to
   ``weights_only=False`` again (only RecBole's own, locally written checkpoints are loaded).
"""
from __future__ import annotations

import functools

import numpy as np

_NUMPY_ALIASES = {
    "float_": "float64",
    "complex_": "complex128",
    "unicode_": "str_",
    "bool8": "bool_",
    "int0": "intp",
    "string_": "bytes_",
}


def _patch_numpy() -> None:
    for old, new in _NUMPY_ALIASES.items():
        if old not in np.__dict__:
            setattr(np, old, getattr(np, new))


def _patch_scipy() -> None:
    import scipy.sparse as sp

    if hasattr(sp.dok_matrix, "_update"):
        return

    def _update(self, mapping):
        # SciPy >= 1.12 keeps the entries in ``self._dict``; write them there directly, as the
        # old dict.update did (no bounds or zero checks, like the original fast path).
        self._dict.update(mapping)

    sp.dok_matrix._update = _update


def _patch_torch() -> None:
    import torch

    if getattr(torch.load, "_mmkgrec_shim", False):
        return
    original = torch.load

    @functools.wraps(original)
    def load(*args, **kwargs):
        kwargs.setdefault("weights_only", False)
        return original(*args, **kwargs)

    load._mmkgrec_shim = True
    torch.load = load


def apply() -> None:
    _patch_numpy()
    _patch_scipy()
    _patch_torch()


apply()
