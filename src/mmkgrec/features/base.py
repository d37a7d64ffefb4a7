"""The base class of every item encoder (text or image), in a module of its own so that encoder
implementations (:mod:`.efficientnet`, language models) and the registry (:mod:`.encoders`) both
build on it without importing each other."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def encode_by_length(texts: Sequence[str], lengths: Sequence[int],
                     encode: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """``encode`` called once per token length (``lengths``, after truncation), so that no batch
    is padded, and the rows put back in the order of ``texts``.

    A padded batch gives its texts vectors that differ in the last bits from those they get
    alone or beside other texts (the kernels' shapes, and with them the float rounding, follow
    the longest text of the batch). The feature store encodes whichever items it lacks, so
    with padding an item's vector depended on what the store held before: the same command
    trained on slightly different features from one cache to another, which is enough to move
    a sensitive model's test metrics (MMGCN's by up to 0.007). Without padding, and on one CPU
    thread (several threads split a batch by its size, which again moves the last bits), MiniLM
    gave each of ML-100K's 1,682 texts the same bits alone and in batches of any make-up; a
    model whose matrix kernels round differently by batch size (a tiny test model at a batch of
    one) keeps that smaller dependence. The thread count is restored afterwards."""
    if len(texts) != len(lengths):
        raise ValueError("texts and lengths differ in length")
    groups: dict[int, list[int]] = {}
    for k, n in enumerate(lengths):
        groups.setdefault(int(n), []).append(k)
    import torch

    out = None
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for ks in groups.values():
            part = np.asarray(encode([texts[k] for k in ks]), dtype=np.float32)
            if out is None:
                out = np.empty((len(texts), part.shape[1]), dtype=np.float32)
            out[ks] = part
    finally:
        torch.set_num_threads(threads)
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


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

    def trainable(self):
        """``(module, tokenize, pooled)`` for fine-tuning (:class:`.tower.TextTower`): the
        ``torch.nn.Module`` whose weights train, ``tokenize(texts)`` (a dict of tensors, the
        texts padded to the longest) and ``pooled(module, batch)`` (one vector per text, with
        gradients), the very steps ``encode`` takes. Language models only."""
        from ..errors import MMKGRecError

        raise MMKGRecError(f"encoder '{self.name}' cannot be fine-tuned (a language model can: "
                           "minilm, gemma3-270m, hf:<path>, bert:<path>)")

    def describe(self) -> dict:
        return {"name": self.name, "modality": self.modality, "version": self.version}

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r})"
