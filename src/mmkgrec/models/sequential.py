"""Next-item models: GRU4Rec, SASRec and BERT4Rec, with ID or content item embeddings.

All three train with cross-entropy over every item (RecBole's ``loss_type: CE``) on the samples of
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
:class:`~mmkgrec.data.sequences.SharedWindowBatches`: every sample has exactly its per-sample
input (the same loss terms as RecBole's scheme), but a user's first ``max_seq_length`` targets
are read from one causal window; ``false`` gives one input per sample, as RecBole does.

``score_all(users)`` scores from each user's training items (time order), so the model also
answers ``recommend`` and the general evaluators; the next-item protocol uses
``score_sequences``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..nn.transformer import FastDropout, SequenceTransformer
from ..config import config_value
from .base import ModelInputs, Recommender, register, standardised_content

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
        content = config_value(config, "item_content", None)
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
        self.content = config_value(config, "item_content", None)
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

    def uses_id_embedding(self, config) -> bool:
        """Whether the item table holds an ID embedding (always without content)."""
        return self.content is None or bool(config_value(config, "content_with_id", False))

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
        from ..data.sequences import SequenceBatches, SharedWindowBatches, build_sequences

        seqs = build_sequences(split)
        if not self.include_target and config_value(config, "share_windows", False):
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
        return F.cross_entropy(self.logits(h), batch["target"])

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


def _init_bert_style(module: nn.Module, std: float) -> None:
    """RecBole's initialisation of Transformer models: N(0, std) weights, zero biases, unit
    layer norms."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, std)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
            if isinstance(m, nn.Embedding) and m.padding_idx is not None:
                with torch.no_grad():
                    m.weight[m.padding_idx].zero_()
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


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
    shortcut, see :mod:`mmkgrec.nn.transformer`)."""

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
        _init_bert_style(self, float(config["initializer_range"]))

    def encode(self, seq, lengths, query=None, table=None):
        """``table``: the item table when the caller already computed it."""
        pos = torch.arange(seq.shape[1], device=seq.device)
        table = self.item_table() if table is None else table
        x = F.embedding(seq, table) + self.pos_emb(pos).unsqueeze(0)
        x = self.drop(self.ln(x))
        return self.encoder(x, causal=True, query_index=lengths - 1 if query is None else query)


@register
class GRU4Rec(SequentialRecommender):
    """GRU4Rec (Hidasi et al., ICLR 2016) as RecBole runs it: item embeddings with dropout, a GRU
    (eq. 1-4 of the paper; no biases, as RecBole), a linear map of the last hidden state to the
    embedding space, scores by inner product with the item embeddings, CE over all items. Inputs are
    right-padded and the state after each input's last item is read out. Defaults: embedding 64, hidden 128, one
    layer, dropout 0.3."""

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
    dropout 0.2, mask_ratio 0.2)."""

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
        _init_bert_style(self, float(config["initializer_range"]))

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
        return F.cross_entropy(self.logits(h), labels)
