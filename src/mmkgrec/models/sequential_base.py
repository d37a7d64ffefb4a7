"""The base of next-item models (GRU4Rec, SASRec, BERT4Rec, MM-RACL-KAL), with ID or content
item embeddings.

They train with cross-entropy over every item (RecBole's ``loss_type: CE``) on the samples of
:mod:`mmkgrec.data.sequences`: each training position's target predicted from up to
``max_seq_length`` earlier training items. A batch is ``{"seq": [B, L], "lengths": [B],
"target": [B]}`` with ``seq`` holding dense item id **+ 1** and ``0`` as right padding; the
models keep that convention internally (embedding row 0 is padding, rows ``1..n_items`` the
items, BERT4Rec's mask token is row ``n_items + 1``). Scores and targets use dense ids 0-based.

Item representations (the input embedding and, tied, the output layer):

* ``item_content: null`` (default): an ID embedding.
* ``item_content: text`` or ``image`` (Text-SASRec, Image-SASRec, ... in MM-RACL-KAL's Table 4):
  ``e_i = W f_i + b`` with ``f_i`` the item's feature from :func:`mmkgrec.features.item_feature_matrix`
  standardised per dimension over the items that have content (**resolution**: the feature
  scales of different encoders differ by orders of magnitude); items without that content get
  ``f_i = 0``. ``content_with_id: true`` adds an ID embedding (a separate row of results, never
  on by default).

Training batches: ``share_windows: true`` (SASRec, GRU4Rec) uses
:class:`~mmkgrec.data.batches.SharedWindowBatches`: every sample has exactly its per-sample
input (the same loss terms as RecBole's scheme), but a user's first ``max_seq_length`` targets
are read from one causal window; ``false`` gives one input per sample, as RecBole does.

``score_all(users)`` scores from each user's training items (time order), so the model also
answers ``recommend`` and the general evaluators; the next-item protocol uses
``score_sequences``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..config import config_value
from ..data.sampling import negative_pool
from ..errors import ConfigError
from ..nn.losses import full_softmax_loss
from .base import ModelInputs, Recommender, standardised_content

CONTENT = (None, "text", "image")


class SequentialRecommender(Recommender):
    """Shared parts: item table (ID or content), batches, training history, scoring.

    Subclasses implement ``encode(seq, lengths) -> [B, d]`` (the representation that predicts
    the next item) and may override ``loss``. ``extra_tokens`` rows follow the items in the
    table (BERT4Rec's mask token)."""

    input_type = "sequence"
    tasks = ("next_item",)
    extra_tokens = 0
    _table = None  # item table cached by prepare_eval (a plain tensor, never a Parameter)
    include_target = False  # cloze models see the target inside their training window
    # True: ``score_sequences(seq, lengths, users=...)`` also needs each input's user (a model
    # with a per-user part, e.g. MM-RACL-KAL's static interest); evaluators pass them
    scores_need_users = False

    @classmethod
    def requirements(cls, config) -> frozenset:
        content = config_value(config, "item_content")
        if content not in CONTENT:
            raise ConfigError("item_content", f"expected null, text or image, got {content!r}")
        return frozenset({content}) if content else frozenset()

    def __init__(self, config, inputs: ModelInputs, dim: int):
        super().__init__(config, inputs)
        self.dim = dim
        self.max_len = int(config["max_seq_length"])
        if self.max_len < 1 + self.include_target:
            raise ConfigError("max_seq_length", f"must be >= {1 + self.include_target}, got "
                              f"{self.max_len}")
        self.content = config_value(config, "item_content")
        self.requirements(config)
        rows = self.n_items + 1 + self.extra_tokens
        self.item_emb = (nn.Embedding(rows, dim, padding_idx=0) if self.uses_id_embedding(config)
                         else None)
        if self.content:
            mat, _ = standardised_content(inputs, self.content, self.name)
            self.register_buffer("content_features", mat, persistent=False)
            self.content_proj = nn.Linear(mat.shape[1], dim)
            if self.item_emb is None and self.extra_tokens:
                self.extra_emb = nn.Parameter(torch.randn(self.extra_tokens, dim) * 0.02)
        self._set_history(inputs.train)
        # the items the full softmax normalises over (None: every item; negative_items: seen)
        self.negative_pool = negative_pool(inputs.train, self.n_items, config)
        keep = None
        if self.negative_pool is not None:
            keep = torch.zeros(self.n_items, dtype=torch.bool)
            keep[torch.from_numpy(self.negative_pool)] = True
        self.register_buffer("softmax_keep", keep, persistent=False)

    def uses_id_embedding(self, config) -> bool:
        """Whether the item table holds an ID embedding (always without content)."""
        return self.content is None or bool(config_value(config, "content_with_id"))

    # ---- items -----------------------------------------------------------------------
    def item_table(self) -> torch.Tensor:
        """``[n_items + 1 + extra_tokens, d]``: padding row (zeros), items, extra tokens."""
        if self._table is not None:
            return self._table
        if not self.content:
            return self.item_emb.weight
        items = self.content_proj(self.content_features)
        extra = (self.extra_emb if self.item_emb is None and self.extra_tokens else
                 items.new_zeros(self.extra_tokens, self.dim))
        table = torch.cat([items.new_zeros(1, self.dim), items, extra])
        return table if self.item_emb is None else table + self.item_emb.weight

    def item_vectors(self) -> torch.Tensor:
        return self.item_table()[1:self.n_items + 1]

    def train(self, mode: bool = True):
        self._table = None
        return super().train(mode)

    def prepare_eval(self):
        self._table = None
        self._table = self.item_table().detach()

    # ---- data ------------------------------------------------------------------------
    @property
    def max_input_length(self) -> int:
        """Longest history an evaluation input may hold."""
        return self.max_len

    def make_batches(self, split, config):
        from ..data.batches import SequenceBatches, SharedWindowBatches
        from ..data.sequences import build_sequences

        seqs = build_sequences(split)
        if not self.include_target and config_value(config, "share_windows"):
            return SharedWindowBatches(seqs, self.max_len, config["train_batch_size"])
        return SequenceBatches(seqs, self.max_len, config["train_batch_size"],
                               include_target=self.include_target)

    def _set_history(self, train) -> None:
        """Each user's training items in time order (ties in file order), for ``score_all``."""
        ts = train.timestamp if train.timestamp is not None else np.zeros(len(train))
        order = np.lexsort((np.arange(len(train)), ts, train.user))
        counts = np.bincount(train.user, minlength=self.n_users)
        indptr = np.zeros(self.n_users + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        self.register_buffer("hist_indptr", torch.from_numpy(indptr), persistent=False)
        self.register_buffer("hist_items", torch.from_numpy(train.item[order] + 1),
                             persistent=False)

    # ---- scoring ---------------------------------------------------------------------
    def encode(self, seq: torch.Tensor, lengths: torch.Tensor, query=None) -> torch.Tensor:
        """``[B, d]``: the representation after each input's last item; with ``query = (rows,
        positions)`` ``[M, d]``: the representations after those positions of those rows."""
        raise NotImplementedError

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        return h @ self.item_vectors().T

    def score_sequences(self, seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Scores ``[B, n_items]`` of the next item after each right-padded input."""
        return self.logits(self.encode(seq, lengths))

    def loss(self, batch: dict) -> torch.Tensor:
        query = (batch["target_window"], batch["target_pos"]) if "target_window" in batch else None
        h = self.encode(batch["seq"], batch["lengths"], query)
        return full_softmax_loss(self.logits(h), batch["target"], self.softmax_keep)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        start, end = self.hist_indptr[users], self.hist_indptr[users + 1]
        start = torch.maximum(start, end - self.max_input_length)
        lengths = end - start
        width = max(int(lengths.max()), 1)
        ar = torch.arange(width, device=users.device)
        valid = ar[None, :] < lengths[:, None]
        idx = (start[:, None] + ar[None, :]).clamp_max(max(len(self.hist_items) - 1, 0))
        seq = torch.where(valid, self.hist_items[idx], torch.zeros_like(idx))
        # a user without training items is scored from a padding-only input of length 1
        extra = {"users": users} if self.scores_need_users else {}
        return self.score_sequences(seq, lengths.clamp_min(1), **extra)

    # ---- the model's own reasons (occlusion) --------------------------------------------
    history_reasons = ("the items leave its input (the user's last max_seq_length training "
                       "items, all occurrences), which is encoded again")

    def _window(self, user: int) -> torch.Tensor:
        """The user's evaluation input as ``score_all`` reads it: training items + 1 in time
        order, the last ``max_input_length`` of them."""
        a, b = int(self.hist_indptr[user]), int(self.hist_indptr[user + 1])
        return self.hist_items[max(a, b - self.max_input_length):b]

    def history_items(self, user: int) -> list[int]:
        return sorted({int(i) - 1 for i in self._window(user).tolist()})

    def inputs_without(self, user: int, removals: list[list[int]]):
        """``(seq [R, L], lengths [R])``: the user's input with each list of dense items in
        ``removals`` taken out (the rest keep their order; nothing moves in from before the
        window); an input left empty is scored from padding, as ``score_all`` does."""
        seq = self._window(user)
        rows = []
        for items in removals:
            drop = torch.as_tensor([i + 1 for i in items], dtype=seq.dtype, device=seq.device)
            rows.append(seq[~torch.isin(seq, drop)] if len(items) else seq)
        batch = seq.new_zeros(len(rows), max(1, max(len(r) for r in rows)))
        for k, r in enumerate(rows):
            batch[k, :len(r)] = r
        lengths = torch.as_tensor([max(len(r), 1) for r in rows], device=seq.device)
        return batch, lengths

    def scores_without_history(self, user, item, removals):
        seq, lengths = self.inputs_without(user, removals)
        extra = ({"users": torch.full((len(seq),), user, dtype=torch.long, device=seq.device)}
                 if self.scores_need_users else {})
        return self.score_sequences(seq, lengths, **extra)[:, item]
