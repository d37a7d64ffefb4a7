"""GRU4Rec (Hidasi et al., ICLR 2016, "Session-based Recommendations with Recurrent Neural
Networks")."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.transformer import FastDropout
from .base import register
from .sequential_base import SequentialRecommender


@register
class GRU4Rec(SequentialRecommender):
    """GRU4Rec (Hidasi et al., ICLR 2016) as RecBole runs it: item embeddings with dropout, a GRU
    (eq. 1-4 of the paper; no biases, as RecBole), a linear map of the last hidden state to the
    embedding space, scores by inner product with the item embeddings, CE over all items. Inputs are
    right-padded and the state after each input's last item is read out. Defaults: embedding 64, hidden 128, one
    layer, dropout 0.3.

    SPEC.md "MM-RACL-KAL": a baseline; next-item evaluation as that section resolves it (every
    validation / test interaction a target, full ranking)."""

    name = "GRU4Rec"

    def __init__(self, config, inputs):
        d = int(config["embedding_size"])
        super().__init__(config, inputs, d)
        self.emb_drop = FastDropout(float(config["dropout_prob"]))
        self.gru = nn.GRU(d, int(config["hidden_size"]), num_layers=int(config["num_layers"]),
                          bias=False, batch_first=True)
        self.dense = nn.Linear(int(config["hidden_size"]), d)
        if self.item_emb is not None:
            nn.init.xavier_normal_(self.item_emb.weight)
            with torch.no_grad():
                self.item_emb.weight[0].zero_()
        for name, p in self.gru.named_parameters():
            nn.init.xavier_uniform_(p)

    def encode(self, seq, lengths, query=None):
        x = self.emb_drop(F.embedding(seq, self.item_table()))
        # padded, not packed: inputs are right-padded, so the states at real positions never
        # see padding, and on CPU the packed GRU's backward is an order of magnitude slower
        out, _ = self.gru(x)
        if query is None:
            query = (torch.arange(len(seq), device=seq.device), lengths - 1)
        return self.dense(out[query[0], query[1]])
