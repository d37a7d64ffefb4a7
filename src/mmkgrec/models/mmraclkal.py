"""MM-RACL-KAL (Zhang, Software Engineering and Applications 15(2), 2026), and through its switches
RACL-KAL and the paper's ablations.

Implemented (sections of the paper; see SPEC.md "MM-RACL-KAL" for the resolutions):

* **Item representation (3.1, eq. 1-3).** ``e_i = alpha W_t v_t + (1 - alpha) W_m v_m`` with
  ``v_t`` / ``v_m`` the item's text / image features from the feature store, each dimension
  standardised over the items that have that content (as Text-SASRec's), ``W_t``, ``W_m`` linear
  maps without bias (eq. 2), ``alpha = sigmoid(a)`` one learnable scalar (so always in
  ``[0, 1]``), and ``alpha = 1`` exactly for an item without an image. ``use_image: false``: text
  only (``e_i = W_t v_t``). ``item_id_embedding: true`` adds an ID embedding (its own row of
  results, never on by default).
* **Retrieval augmentation (3.2, eq. 4-6).** An :class:`~mmkgrec.retrieval.ItemIndex` over the
  L2-normalised ``e_i`` (cosine; ``index_kind`` flat / ivf / hnsw) gives every item its
  ``augment_topk`` nearest other items. It is built when the model is built and rebuilt every
  ``refresh_every`` epochs (``on_epoch_start``); the neighbour table is a buffer, so a resumed run
  continues with the same one. Each real item of a training input is replaced with probability
  ``augment_p`` by a uniformly drawn member of its neighbours (targets are never changed).
  ``augment_at_inference: true`` also augments evaluation inputs (with a generator seeded by
  ``seed`` at every evaluation).
* **Dynamic interest (3.3.1, eq. 7-8).** SASRec's encoder (learned positions, causal post-LN
  Transformer blocks, :class:`~mmkgrec.nn.transformer.SequenceTransformer`) over the (augmented)
  input's ``e_i``; ``u_d`` = the output at the last position. **Resolution:** causal attention,
  so one window serves all of a user's first targets (``share_windows``), as SASRec.
* **Static interest (3.3.2, eq. 9-10).** LightGCN
  (:func:`~mmkgrec.nn.propagation.light_propagate`) on the symmetric-normalised training user-item graph, ``u_s`` = the user's mean over layers
  ``0..gnn_layers`` (the spec's mean; eq. 10 prints a sum). Layer 0: user ID embeddings, and item
  ID embeddings (``static_item_init: id``, the resolution) or the items' ``e_i``
  (``static_item_init: content``). ``use_static: false`` drops it (``u = u_d``).
* **Gate (3.3.3, eq. 11-12).** ``g = sigmoid(W_g [u_d; u_s] + b_g)``, ``u = g u_d + (1 - g) u_s``
  (:class:`~mmkgrec.nn.fusion.GatedFusion`).
* **Scores and loss.** ``score(u, j) = <u, e_j>``; ``L_rec`` = cross-entropy of the next item over
  all items. ``L = L_rec + contrastive_beta (lambda_ui L_ui + lambda_ii L_ii + lambda_mm L_mm)``
  (eq. 16, 18) with temperature ``contrastive_tau``; similarities are cosine
  (``contrastive_normalize: true``, **resolution**: eq. 13-15 print ``<.,.>``; raw inner products
  under ``false``). Denominators sum over negatives only, as eq. 13-15 are printed (decoupled);
  ``contrastive_positive_in_denominator: true`` gives the standard InfoNCE
  (:func:`~mmkgrec.nn.losses.contrastive_loss`, :func:`~mmkgrec.nn.losses.similarity`).

  * ``L_ui`` (eq. 13): ``u`` against ``e`` of its next item; negatives: the other next items of the
    batch (``ui_negatives: in_batch``, an item equal to the positive is never a negative) or
    ``ui_num_negatives`` uniform items outside the user's training items (``sampled``).
  * ``L_ii`` (eq. 14), **resolution**: anchor = the last item of the input (the item just before
    the target, never augmented), positive = the target, negatives = the anchor's retrieved
    neighbours minus the positive and the user's training items (``ii_negatives: retrieved``,
    hard; an anchor left with none is skipped in the decoupled loss) or ``augment_topk`` uniform
    items outside the user's training items (``random``, Table 6).
  * ``L_mm`` (eq. 15): over the distinct next items of the batch that have text and an image,
    ``W_t v_t`` of item i against ``W_m v_m`` of items ``j != i`` (text as anchor);
    ``mm_symmetric: true`` averages it with the image-anchored loss. Needs ``use_image``.

The explanation module (3.5) is post-processing, never part of scoring (:mod:`mmkgrec.explain`).
Its reasons (``scores_without_history``): both parts that read the user's history lose the
removed items: the dynamic interest's input sequence (as SASRec's occlusion: all occurrences of
each item leave the window, nothing earlier moves in) and, with ``use_static``, the static
interest's graph (the user's edges to the items leave the training graph, normalised and
propagated again, as LightGCN's); the items' own representations ``e_i`` and the retrieval
index are the item side and stay. Evaluation needs each input's user (``scores_need_users``):
the next-item evaluator passes it.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

from ..config import config_value
from ..data.sampling import KnownPairs, sample_negatives
from ..errors import ConfigError
from ..nn.fusion import GatedFusion
from ..nn.losses import contrastive_loss, full_softmax_loss, similarity
from ..nn.propagation import light_propagate, light_propagate_without
from ..nn.transformer import init_bert_style
from .base import register, standardised_content
from .sasrec import SASRec

log = logging.getLogger(__name__)

@register
class MMRACLKAL(SASRec):
    """MM-RACL-KAL; see the module docstring for the parts and the config switches."""

    name = "MMRACLKAL"
    scores_need_users = True
    history_reasons = ("the items leave its input sequence (dynamic interest) and the user's "
                       "edges to them leave the graph of its static interest, which is "
                       "propagated again")
    _static_cache = None
    _eval_gen = None

    @classmethod
    def requirements(cls, config) -> frozenset:
        req = {"text"}
        if config_value(config, "use_image"):
            req.add("image")
        if config_value(config, "use_static"):
            req.add("graph")
        return frozenset(req)

    def uses_id_embedding(self, config) -> bool:
        return bool(config["item_id_embedding"])

    def __init__(self, config, inputs):
        super().__init__(config, inputs)
        d, std = self.dim, float(config["initializer_range"])
        new = []
        # ---- item representation (eq. 1-3)
        self.use_image = bool(config["use_image"])
        # the buffers start on the CPU like the layers (the inputs may already be on the GPU), so
        # the first index below is built before ``.to(device)`` moves them all together
        text, text_mask = (x.cpu() for x in standardised_content(inputs, "text", self.name))
        self.register_buffer("text_features", text, persistent=False)
        self.register_buffer("has_text", text_mask > 0, persistent=False)
        self.text_proj = nn.Linear(text.shape[1], d, bias=False)
        new.append(self.text_proj)
        if self.use_image:
            image, image_mask = (x.cpu() for x in standardised_content(inputs, "image", self.name))
            self.register_buffer("image_features", image, persistent=False)
            self.register_buffer("has_image", image_mask > 0, persistent=False)
            self.image_proj = nn.Linear(image.shape[1], d, bias=False)
            new.append(self.image_proj)
            self.alpha_logit = nn.Parameter(torch.zeros(()))  # alpha = 0.5 at the start
            n_missing = int((~self.has_image).sum())
            if n_missing:
                log.warning("%s: %d of %d items have no image and use alpha = 1 (text only)",
                            self.name, n_missing, self.n_items)
        # ---- retrieval augmentation (eq. 4-6)
        self.use_augmentation = bool(config["use_augmentation"])
        self.augment_p = float(config["augment_p"])
        if not 0.0 <= self.augment_p <= 1.0:
            raise ConfigError("augment_p", f"must be in [0, 1], got {self.augment_p}")
        self.augment_at_inference = bool(config["augment_at_inference"])
        self.refresh_every = int(config["refresh_every"])
        self.index_kind = config["index_kind"]
        self.seed = int(config["seed"])
        # ---- contrastive losses (eq. 13-16)
        self.use_contrastive = bool(config["use_contrastive"])
        self.beta = float(config["contrastive_beta"])
        self.lambdas = {k: float(config[f"lambda_{k}"]) for k in ("ui", "ii", "mm")}
        if not self.use_image:
            self.lambdas["mm"] = 0.0  # no image, no cross-modal term
        self.tau = float(config["contrastive_tau"])
        self.normalize = bool(config["contrastive_normalize"])
        self.pos_in_denominator = bool(config["contrastive_positive_in_denominator"])
        self.ui_negatives, self.ii_negatives = config["ui_negatives"], config["ii_negatives"]
        self.ui_num_negatives = int(config["ui_num_negatives"])
        self.mm_symmetric = bool(config["mm_symmetric"])
        self.contrastive_on = self.use_contrastive and self.beta > 0
        train = inputs.train
        self.known = KnownPairs(train.user, train.item, self.n_users, self.n_items)
        # self.negative_pool: the sequential base's (negative_items), for the random negatives
        topk = max(0, min(int(config["augment_topk"]), self.n_items - 1))
        ii_retrieved = (self.contrastive_on and self.lambdas["ii"] > 0
                        and self.ii_negatives == "retrieved")
        self.needs_index = topk > 0 and (ii_retrieved or (self.augment_p > 0 and (
            self.use_augmentation or self.augment_at_inference)))
        self.topk = topk
        self.register_buffer("neighbours", torch.zeros(
            self.n_items, topk if self.needs_index else 0, dtype=torch.long))
        # ---- static interest (eq. 9-10) and gate (eq. 11-12)
        self.use_static = bool(config["use_static"])
        if self.use_static:
            self.adj = inputs.graph
            self.gnn_layers = int(config["gnn_layers"])
            self.static_item_init = config["static_item_init"]
            self.static_user_emb = nn.Embedding(self.n_users, d)
            new.append(self.static_user_emb)
            if self.static_item_init == "id":
                self.static_item_emb = nn.Embedding(self.n_items, d)
                new.append(self.static_item_emb)
            self.gate = GatedFusion(d)
            new.append(self.gate)
        for m in new:
            init_bert_style(m, std)
        if self.needs_index:
            self.refresh_index()

    # ---- items ---------------------------------------------------------------------------
    def item_alpha(self) -> torch.Tensor:
        """``[n_items]``: each item's text weight, ``sigmoid(a)``, or exactly 1 without image."""
        ones = self.text_features.new_ones(self.n_items)
        if not self.use_image:
            return ones
        return torch.where(self.has_image, torch.sigmoid(self.alpha_logit), ones)

    def _item_parts(self):
        """``(table [n_items + 1, d], W_t v_t, W_m v_m or None)``; row 0 of the table is padding."""
        t = self.text_proj(self.text_features)
        m = self.image_proj(self.image_features) if self.use_image else None
        if m is None:
            e = t
        else:
            alpha = self.item_alpha().unsqueeze(1)
            e = alpha * t + (1.0 - alpha) * m
        table = torch.cat([e.new_zeros(1, self.dim), e])
        if self.item_emb is not None:
            table = table + self.item_emb.weight
        return table, t, m

    def item_table(self) -> torch.Tensor:
        if self._table is not None:
            return self._table
        return self._item_parts()[0]

    # ---- retrieval augmentation --------------------------------------------------------------
    @torch.no_grad()
    def refresh_index(self) -> None:
        """Rebuild the cosine index over the current ``e_i`` and each item's top-K neighbours."""
        from ..retrieval.faiss_index import ItemIndex

        e = self._item_parts()[0][1:].float().cpu()
        _, ids = ItemIndex(e, metric="cosine", kind=self.index_kind, seed=self.seed
                           ).neighbours(self.topk)
        ids = torch.from_numpy(ids)
        # an approximate index may return fewer than K: the item itself fills the gap
        ids = torch.where(ids < 0, torch.arange(self.n_items).unsqueeze(1), ids)
        self.neighbours.copy_(ids.to(self.neighbours.device))

    def on_epoch_start(self, epoch: int) -> None:
        if self.needs_index and epoch > 0 and epoch % max(self.refresh_every, 1) == 0:
            self.refresh_index()

    def augment(self, seq: torch.Tensor, generator=None) -> torch.Tensor:
        """``seq`` (item id + 1, 0 = padding) with each real item replaced with probability
        ``augment_p`` by a uniform member of its top-K neighbours (eq. 6)."""
        if self.augment_p <= 0 or self.neighbours.shape[1] == 0:
            return seq
        kw = {"generator": generator, "device": seq.device}
        replace = (torch.rand(seq.shape, **kw) < self.augment_p) & (seq > 0)
        pick = torch.randint(0, self.neighbours.shape[1], seq.shape, **kw)
        swapped = self.neighbours[(seq - 1).clamp_min(0), pick] + 1
        return torch.where(replace, swapped, seq)

    # ---- users ---------------------------------------------------------------------------
    def static_ego(self, table: torch.Tensor) -> torch.Tensor:
        """Layer 0 of the static interest's graph: user IDs, then item IDs or ``e_i``."""
        items = (self.static_item_emb.weight if self.static_item_init == "id"
                 else table[1:self.n_items + 1])
        return torch.cat([self.static_user_emb.weight, items])

    def static_users(self, table: torch.Tensor) -> torch.Tensor:
        """``u_s`` of every user: the layer mean of LightGCN over the training graph."""
        return light_propagate(self.adj, self.static_ego(table), self.gnn_layers)[:self.n_users]

    def fuse(self, u_d: torch.Tensor, u_s: torch.Tensor | None) -> torch.Tensor:
        """``u``: the gate (eq. 11-12) over ``u_d`` and ``u_s``, or ``u_d`` without static interest."""
        return u_d if u_s is None else self.gate(u_d, u_s)

    # ---- scoring -------------------------------------------------------------------------
    def train(self, mode: bool = True):
        self._static_cache = None
        return super().train(mode)

    def prepare_eval(self):
        super().prepare_eval()
        self._eval_gen = None
        if self.use_static:
            self._static_cache = self.static_users(self._table).detach()

    def score_sequences(self, seq, lengths, users=None):
        table = self.item_table()
        u_s = None
        if self.use_static:
            if users is None:
                raise ValueError(f"{self.name} scores need each input's user (static interest): "
                                 "call score_sequences(seq, lengths, users=...)")
            cache = self._static_cache
            u_s = (cache if cache is not None else self.static_users(table))[users]
        return self._scores(seq, lengths, u_s, table)

    def _scores(self, seq, lengths, u_s, table):
        """Scores ``[B, n_items]`` from the inputs and the static interests ``u_s`` (or None)."""
        if self.augment_at_inference:
            if self._eval_gen is None or self._eval_gen.device != seq.device:
                self._eval_gen = torch.Generator(device=seq.device)
                self._eval_gen.manual_seed(self.seed)
            seq = self.augment(seq, self._eval_gen)
        u = self.fuse(self.encode(seq, lengths, table=table), u_s)
        return u @ table[1:self.n_items + 1].T

    # ---- the model's own reasons -------------------------------------------------------------
    def history_items(self, user: int) -> list[int]:
        if not self.use_static:
            return super().history_items(user)
        a, b = int(self.hist_indptr[user]), int(self.hist_indptr[user + 1])
        return sorted({int(i) - 1 for i in self.hist_items[a:b].tolist()})

    def scores_without_history(self, user, item, removals):
        seq, lengths = self.inputs_without(user, removals)
        table = self.item_table()
        u_s = None
        if self.use_static:
            ego = self.static_ego(table)
            u_s = torch.cat([light_propagate_without(self.adj, ego, self.gnn_layers, user, items,
                                                     self.n_users, [user])
                             for items in removals])
        return self._scores(seq, lengths, u_s, table)[:, item]

    # ---- training ------------------------------------------------------------------------
    def loss(self, batch: dict) -> torch.Tensor:
        seq, lengths, target = batch["seq"], batch["lengths"], batch["target"]
        table, t_hat, m_hat = self._item_parts()
        items = table[1:self.n_items + 1]
        if "target_window" in batch:
            rows, pos = batch["target_window"], batch["target_pos"]
            query = (rows, pos)
        else:
            rows, pos = torch.arange(len(seq), device=seq.device), lengths - 1
            query = None
        users = batch["users"][rows]
        inp = self.augment(seq) if self.use_augmentation else seq
        u_d = self.encode(inp, lengths, query, table=table)
        u_s = self.static_users(table)[users] if self.use_static else None
        u = self.fuse(u_d, u_s)
        loss = full_softmax_loss(u @ items.T, target, self.softmax_keep)
        if not self.contrastive_on:
            return loss
        cl = loss.new_zeros(())
        if self.lambdas["ui"]:
            cl = cl + self.lambdas["ui"] * self.loss_ui(u, items, target, users)
        if self.lambdas["ii"]:
            anchor = seq[rows, pos] - 1
            cl = cl + self.lambdas["ii"] * self.loss_ii(items, anchor, target, users)
        if self.lambdas["mm"]:
            cl = cl + self.lambdas["mm"] * self.loss_mm(t_hat, m_hat, target)
        return loss + self.beta * cl

    def _sim(self, a: torch.Tensor, b: torch.Tensor, pairwise: bool = False) -> torch.Tensor:
        return similarity(a, b, self.normalize, pairwise)

    def contrastive(self, pos: torch.Tensor, neg: torch.Tensor, valid: torch.Tensor):
        """:func:`~mmkgrec.nn.losses.contrastive_loss` with the config's ``tau`` and form."""
        return contrastive_loss(pos, neg, valid, self.tau, self.pos_in_denominator)

    def _random_items(self, users: torch.Tensor, k: int) -> torch.Tensor:
        """``[len(users), k]`` uniform items outside each user's training items, among the
        ``negative_items`` pool (numpy sampler seeded from torch's generator, which the trainer
        seeds per epoch)."""
        rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, ())))
        out = sample_negatives(users.cpu().numpy(), self.n_items, self.known, rng, k,
                               pool=self.negative_pool)
        return torch.from_numpy(out).to(users.device)

    def _known(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Bool ``items.shape``: whether ``items[r, c]`` is a training item of ``users[r]``."""
        hit = self.known.contains(users.cpu().numpy()[:, None], items.cpu().numpy())
        return torch.from_numpy(np.asarray(hit, dtype=bool)).to(items.device)

    def loss_ui(self, u, items, target, users):
        pos_e = items[target]
        if self.ui_negatives == "in_batch":
            sims = self._sim(u, pos_e, pairwise=True)  # [M, M]
            valid = target.unsqueeze(0) != target.unsqueeze(1)
            return self.contrastive(sims.diagonal(), sims, valid)
        neg = self._random_items(users, self.ui_num_negatives)
        valid = neg != target.unsqueeze(1)
        return self.contrastive(self._sim(u, pos_e), self._sim(u.unsqueeze(1), items[neg]), valid)

    def ii_negatives_of(self, anchor, target, users):
        """``(candidates [M, K], valid [M, K])``: the negatives of L_ii for each anchor."""
        if self.ii_negatives == "retrieved":
            cand = self.neighbours[anchor]
            valid = ((cand != target.unsqueeze(1)) & (cand != anchor.unsqueeze(1))
                     & ~self._known(users, cand))
        else:
            cand = self._random_items(users, max(self.topk, 1))
            valid = cand != target.unsqueeze(1)
        return cand, valid

    def loss_ii(self, items, anchor, target, users):
        cand, valid = self.ii_negatives_of(anchor, target, users)
        a = items[anchor]
        return self.contrastive(self._sim(a, items[target]), self._sim(a.unsqueeze(1), items[cand]),
                                valid)

    def loss_mm(self, t_hat, m_hat, target):
        ids = torch.unique(target)
        ids = ids[self.has_image[ids] & self.has_text[ids]]
        if len(ids) < 2:
            return t_hat.sum() * 0.0
        sims = self._sim(t_hat[ids], m_hat[ids], pairwise=True)  # text i x image j
        valid = ~torch.eye(len(ids), dtype=torch.bool, device=sims.device)
        loss = self.contrastive(sims.diagonal(), sims, valid)
        if self.mm_symmetric:
            loss = 0.5 * (loss + self.contrastive(sims.diagonal(), sims.T, valid))
        return loss
