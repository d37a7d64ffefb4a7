"""Content k-nearest-neighbour recommender: item-based KNN over frozen item text vectors."""

from __future__ import annotations

import numpy as np
import torch

from ..config import config_value
from .base import Recommender, modality_features, register


@register
class ContentKNN(Recommender):
    """Parameter-free content KNN (item-based neighbourhood scoring, Sarwar et al., WWW 2001, with
    the item-item similarity taken from content instead of co-ratings): ``sim(i, j)`` is the
    cosine of the items' text vectors (``text_encoder``, the same cached vectors LLMKGRec pools;
    an item without text has no neighbours), each item keeps its ``knn_neighbours`` most similar
    other items, and ``score(u, i) = sum_{j in train(u)} sim_k(j, i)``. Nothing is trained: it
    scores an item never seen in training from its text alone, and a user from whatever history
    they have. The baseline the LLM + KG recommender's cold-start claim is measured against
    (issue 20); no paper of the four, no SPEC.md resolution."""

    name = "ContentKNN"
    input_type = "none"
    requires = frozenset({"text"})
    tasks = ("ranking", "next_item")

    def __init__(self, config, inputs):
        super().__init__(config, inputs)
        self.k = min(int(config_value(config, "knn_neighbours")), max(1, self.n_items - 1))
        feat, mask = modality_features(inputs, "text", self.name)
        x = torch.nn.functional.normalize(feat, dim=1)
        vals, idx = [], []
        for s in range(0, self.n_items, 1024):  # top-k neighbours, 1024 rows at a time
            sim = x[s:s + 1024] @ x.T
            rows = torch.arange(s, min(s + 1024, self.n_items))
            sim[rows - s, rows] = float("-inf")  # not its own neighbour
            v, i = sim.topk(self.k, dim=1)
            vals.append(v.clamp_min(0.0) * mask[s:s + 1024, None])
            idx.append(i)
        vals, idx = torch.cat(vals), torch.cat(idx)
        rows = torch.arange(self.n_items, device=idx.device).repeat_interleave(self.k)
        # S[j, i] = sim_k(j, i) (row j: j's neighbours); scores = H S, computed as (S^T H^T)^T
        self.register_buffer("sim_t", torch.sparse_coo_tensor(
            torch.stack([idx.reshape(-1), rows]), vals.reshape(-1),
            (self.n_items, self.n_items), check_invariants=True).coalesce(), persistent=False)
        self.fit_closed_form(inputs.train)

    def fit_closed_form(self, train):
        self.history = train.csr(self.n_users, self.n_items)  # scipy CSR, binary

    def score_all(self, users):
        h = self.history[users.cpu().numpy()].toarray()
        hb = torch.from_numpy(h).to(self.sim_t.device)
        return torch.sparse.mm(self.sim_t, hb.T).T.contiguous()
