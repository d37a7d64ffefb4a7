"""SASRec (Kang & McAuley, ICDM 2018, "Self-Attentive Sequential Recommendation")."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.transformer import FastDropout, SequenceTransformer, init_bert_style
from .base import register
from .sequential_base import SequentialRecommender


@register
class SASRec(SequentialRecommender):
    """SASRec (Kang & McAuley, ICDM 2018).

    Input ``E = M_s + P`` (item embeddings plus learned positions, eq. 2), layer norm and dropout,
    then ``n_layers`` causal self-attention blocks (eq. 4-6; post-LN as in RecBole), and the next
    item scored by ``r_{i,t} = F_t . M_i`` with the shared item embedding (eq. 7). Loss: softmax
    cross-entropy over all items (RecBole's CE) instead of the paper's one sampled negative.
    Defaults are RecBole's: 2 layers, 2 heads, hidden 64, inner 256, dropout 0.5/0.5, GELU,
    layer-norm eps 1e-12, max length 50. Positions count from the first item of the window (right
    padding), as in RecBole. The last block computes only the position that is read out (an exact
    shortcut, see :mod:`mmkgrec.nn.transformer`).

    SPEC.md "MM-RACL-KAL": a baseline, and Text-/Image-SASRec of Table 4 through
    ``item_content`` (:mod:`~mmkgrec.models.sequential_base`, **resolution**: standardised
    features); next-item evaluation as that section resolves it."""

    name = "SASRec"

    def __init__(self, config, inputs):
        d = int(config["hidden_size"])
        super().__init__(config, inputs, d)
        self.pos_emb = nn.Embedding(self.max_len, d)
        self.ln = nn.LayerNorm(d, eps=float(config["layer_norm_eps"]))
        self.drop = FastDropout(float(config["hidden_dropout_prob"]))
        self.encoder = SequenceTransformer(
            int(config["n_layers"]), d, int(config["n_heads"]), int(config["inner_size"]),
            float(config["hidden_dropout_prob"]), float(config["attn_dropout_prob"]),
            config["hidden_act"], float(config["layer_norm_eps"]))
        init_bert_style(self, float(config["initializer_range"]))

    def encode(self, seq, lengths, query=None, table=None):
        """``table``: the item table when the caller already computed it."""
        pos = torch.arange(seq.shape[1], device=seq.device)
        table = self.item_table() if table is None else table
        x = F.embedding(seq, table) + self.pos_emb(pos).unsqueeze(0)
        x = self.drop(self.ln(x))
        return self.encoder(x, causal=True, query_index=lengths - 1 if query is None else query)
