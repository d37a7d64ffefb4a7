"""The base class of every item encoder (text or image), in a module of its own so that encoder
implementations (:mod:`.efficientnet`, language models) and the registry (:mod:`.encoders`) both
build on it without importing each other."""

from __future__ import annotations

import numpy as np


class Encoder:
    """Base class. Subclasses set ``name``, ``modality``, ``version`` and implement
    ``_encode``; ``dim`` may be known up front or come from the loaded model."""

    name: str = "encoder"
    modality: str = "text"
    version: str = "0"
    #: JPEG decoding may run at a reduced scale no smaller than this (image encoders only).
    image_draft_size: tuple[int, int] | None = None
    #: other formats decoded at more than twice ``image_draft_size`` are box-reduced towards it.
    image_reduce: bool = False

    @property
    def dim(self) -> int:
        raise NotImplementedError

    def sort_key(self, x) -> float:
        """Inputs are encoded in this order (texts: longest first, as sentence-transformers does,
        so batches pad little); 0 keeps the given order."""
        return -len(x) if self.modality == "text" else 0

    def encode(self, inputs: list) -> np.ndarray:
        """Encode a batch: float32 array of shape [len(inputs), dim]."""
        if len(inputs) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = np.asarray(self._encode(list(inputs)), dtype=np.float32)
        if out.ndim != 2 or out.shape[0] != len(inputs):
            raise RuntimeError(f"encoder {self.name} returned shape {out.shape} for "
                               f"{len(inputs)} inputs")
        return out

    def _encode(self, inputs: list) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> dict:
        return {"name": self.name, "modality": self.modality, "version": self.version}

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r})"
