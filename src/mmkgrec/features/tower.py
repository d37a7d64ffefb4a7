"""A language model over a fixed list of texts, with gradients: what a model fine-tunes in place
of the feature store's frozen vectors (LLMKGRec's ``lm_finetune``).

:class:`TextTower` holds the language model as a ``torch.nn.Module`` (its weights are the model's
parameters, saved with the run) and the texts tokenized once. Its forward pass encodes every text
with the encoder's own steps (:meth:`mmkgrec.features.base.Encoder.trainable`) and returns one
vector per text, zeros for a text that is missing. Texts are grouped by token length, as the
store encodes them (:func:`.base.encode_by_length`), so no batch is padded: before any update, and
on one CPU thread, the vectors are the store's. The language model stays in evaluation mode (no
dropout) while its weights train.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from .base import Encoder

log = logging.getLogger(__name__)


class TextTower(nn.Module):
    """``forward()``: ``[len(texts), dim]``, every text through ``encoder``'s language model
    (module docstring); ``texts[k] is None`` gives a zero row."""

    def __init__(self, encoder: Encoder, texts: list[str | None]):
        super().__init__()
        module, tokenize, pooled = encoder.trainable()
        self.lm = module
        self._pooled = pooled
        self.name = encoder.name
        self.n = len(texts)
        rows = [k for k, t in enumerate(texts) if t is not None]
        by_length: dict[int, list[int]] = {}
        for k in rows:
            n = int(tokenize([texts[k]])["input_ids"].shape[1])
            by_length.setdefault(n, []).append(k)
        # (rows, tokens) per token length: one unpadded batch each
        self._groups = [(torch.tensor(ks, dtype=torch.long),
                         {key: v for key, v in tokenize([texts[k] for k in ks]).items()
                          if torch.is_tensor(v)})
                        for ks in by_length.values()]
        self.dim = int(encoder.dim)
        log.info("%s: %d text(s) to fine-tune on in %d batch(es) of one token length each "
                 "(%d missing)", self.name, len(rows), len(self._groups), self.n - len(rows))

    def train(self, mode: bool = True):
        super().train(mode)
        self.lm.eval()  # no dropout: the vectors before any update are the store's
        return self

    def forward(self) -> torch.Tensor:
        device = next(self.lm.parameters()).device
        rows, parts = [], []
        for ks, batch in self._groups:
            rows.append(ks)
            parts.append(self._pooled(self.lm, {k: v.to(device) for k, v in batch.items()}))
        out = torch.zeros(self.n, self.dim, device=device)
        if not parts:
            return out
        return out.index_copy(0, torch.cat(rows).to(device), torch.cat(parts).float())
