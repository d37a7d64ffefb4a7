"""BERT4Rec (Sun et al., CIKM 2019, "BERT4Rec: Sequential Recommendation with Bidirectional
Encoder Representations from Transformer")."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.losses import full_softmax_loss
from ..nn.transformer import FastDropout, SequenceTransformer, init_bert_style
from .base import register
from .sequential_base import SequentialRecommender


@register
class BERT4Rec(SequentialRecommender):
    """BERT4Rec (Sun et al., CIKM 2019): bidirectional self-attention blocks over item plus
    position embeddings (eq. 2-5, 9), trained with the cloze task: each item of the training
    window (which ends with the target) is replaced by a ``[mask]`` token with probability
    ``mask_ratio``, and with probability ``ft_ratio`` a window masks only its last item (the
    paper's extra samples that mimic next-item prediction, sec. 3.6); a window with no masked
    item masks its last. Output layer (eq. 7): ``softmax(GELU(h W^P + b^P) E^T + b^O)`` with the
    shared item embedding ``E``; loss: cross-entropy over all items at the masked positions.
    Prediction: the ``max_seq_length - 1`` latest items followed by ``[mask]``; the output at the
    mask scores the next item. Defaults are RecBole's (2 layers, 2 heads, hidden 64, inner 256,
    dropout 0.2, mask_ratio 0.2).

    SPEC.md "MM-RACL-KAL": the extra sequential baseline; content items as
    :mod:`~mmkgrec.models.sequential_base` describes (its **resolution**: standardised features)."""

    name = "BERT4Rec"
    extra_tokens = 1
    include_target = True

    def __init__(self, config, inputs):
        d = int(config["hidden_size"])
        super().__init__(config, inputs, d)
        self.mask_token = self.n_items + 1
        self.mask_ratio = float(config["mask_ratio"])
        self.ft_ratio = float(config["ft_ratio"])
        eps = float(config["layer_norm_eps"])
        self.pos_emb = nn.Embedding(self.max_len, d)
        self.ln = nn.LayerNorm(d, eps=eps)
        self.drop = FastDropout(float(config["hidden_dropout_prob"]))
        self.encoder = SequenceTransformer(
            int(config["n_layers"]), d, int(config["n_heads"]), int(config["inner_size"]),
            float(config["hidden_dropout_prob"]), float(config["attn_dropout_prob"]),
            config["hidden_act"], eps)
        self.head = nn.Linear(d, d)
        self.head_ln = nn.LayerNorm(d, eps=eps)
        self.out_bias = nn.Parameter(torch.zeros(self.n_items))
        init_bert_style(self, float(config["initializer_range"]))

    @property
    def max_input_length(self) -> int:
        return self.max_len - 1

    def _hidden(self, seq, query_index=None):
        pos = torch.arange(seq.shape[1], device=seq.device)
        x = F.embedding(seq, self.item_table()) + self.pos_emb(pos).unsqueeze(0)
        x = self.drop(self.ln(x))
        return self.encoder(x, causal=False, key_mask=seq != 0, query_index=query_index)

    def logits(self, h):
        h = self.head_ln(F.gelu(self.head(h)))
        return h @ self.item_vectors().T + self.out_bias

    def encode(self, seq, lengths, query=None):
        """Append ``[mask]`` after each input and read the output there (``query`` unused:
        cloze batches are per sample)."""
        b = len(seq)
        seq = torch.cat([seq, seq.new_zeros(b, 1)], 1)
        rows = torch.arange(b, device=seq.device)
        seq[rows, lengths] = self.mask_token
        return self._hidden(seq, query_index=lengths)

    def loss(self, batch):
        seq, lengths = batch["seq"], batch["lengths"]
        b, width = seq.shape
        real = seq != 0
        masked = (torch.rand(b, width, device=seq.device) < self.mask_ratio) & real
        last = torch.zeros_like(masked)
        last[torch.arange(b, device=seq.device), lengths - 1] = True
        only_last = torch.rand(b, device=seq.device) < self.ft_ratio
        none = ~masked.any(1)
        masked = torch.where((only_last | none).unsqueeze(1), last, masked)
        labels = seq[masked] - 1
        inp = torch.where(masked, torch.full_like(seq, self.mask_token), seq)
        # the last block computes only the masked positions (row-major, as seq[masked])
        h = self._hidden(inp, query_index=masked.nonzero(as_tuple=True))
        return full_softmax_loss(self.logits(h), labels, self.softmax_keep)
