"""Multi-KG4Rec: multimodal fusion framework based on knowledge graph for personalized
recommendation (Wang, Xie et al., Expert Systems with Applications 268, 2025)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..nn.fusion import FUSION_MODES, ModalFusion
from ..nn.propagation import rows_at
from .base import ModelInputs, modality_features, register
from .ckg_base import CKGModel, layer_widths, optional_modalities

ENTITY_INITS = ("add", "feature_only", "concat_linear")
BFS_ORDERS = ("random", "id")


@register
class MultiKG4Rec(CKGModel):
    """Multi-KG4Rec over the collaborative KG (:class:`~mmkgrec.models.ckg_base.CKGModel`: users,
    items, attribute entities; training interactions only), SPEC.md "Multi-KG4Rec".

    * Single-modal graphs (Sec. 1, 4.1): one graph per configured modality (``modalities``;
      ``image`` is the paper's visual modality), all with the CKG's topology; embedding and
      propagation run once per modality, with the modality's own TransR space, attention and
      aggregators.
    * Entity embedding (4.2.1): every CKG node has one ID embedding, shared by the modalities.
      In modality ``m`` an item with content starts from (``entity_init``) ``add``:
      ``ID(x) + reduce_m(f_m(x))``, ``feature_only``: ``reduce_m(f_m(x))``, or
      ``concat_linear``: ``W_m [ID(x) || reduce_m(f_m(x))]``; ``reduce_m`` = Linear to
      ``embedding_size`` + LeakyReLU (the paper's CLIP 512 -> 64 map). Users, attribute entities
      and items without content in ``m`` use their ID embedding (SPEC.md resolution: ``add`` by
      default, the others as options).
    * TransR (4.2.1, :class:`~mmkgrec.nn.kg.TransR`): ``L_KG`` = TransR's pairwise loss in every
      modality on the initial (pre-fusion) representations, summed over modalities.
    * Fine-grained fusion (4.2.2, :class:`~mmkgrec.nn.fusion.ModalFusion`): for every item a BFS
      over the CKG collects ``fusion_seq_len`` nodes, the item first, then its first-order
      users and attributes, second-order nodes and so on (within one distance in random order
      drawn once from ``seed``, or by id: ``fusion_bfs_order``); short sequences are padded and
      masked. ``fusion_self_layers`` self-attention blocks per modality, then ``fusion_blocks``
      cross multi-head attention blocks of ``fusion_heads`` heads (FFN ``fusion_inner_size``,
      dropout ``fusion_dropout``). The output at the item's own position replaces the item's
      initial representation in each modality. ``fusion``: ``both`` (default), ``t2v`` (only text
      queries attend across), ``v2t`` (only visual queries), ``none`` (Table 4's "w/o t&v": no
      fusion module; items keep their initial representations and the model is the KG-only
      propagation path). The fusion runs for all items once per CF batch (and once, without
      gradients, for each attention refresh).
    * Propagation (4.2.3): KGAT's knowledge-aware attention and Bi-Interaction over ``layers``
      (64, 32, 16: SPEC.md resolution, KGAT's defaults), one
      :class:`~mmkgrec.nn.propagation.KnowledgePropagation` per modality (``graphs``); attention
      refreshed at the start of every epoch after the first.
    * Prediction (4.2.4): ``e* = e(0) || ... || e(L)`` per modality, ``e_u = e_u^v || e_u^t``
      (concatenated in the order text, image), likewise items; inner-product score.
    * Optimisation (4.2.5): ``L = L_KG + L_CF`` (BPR + ``reg_weight`` L2,
      :mod:`mmkgrec.nn.losses`), alternating CF and KG phases each epoch as KGAT; Xavier
      initialisation.

    ``modalities: [text]`` / ``[image]`` are Table 3's "w/o v" / "w/o t"; ``modalities: []``
    (no content: one ID-only graph, no fusion) is Table 3's "w/o t&v", KGAT with these layers.
    :meth:`modality_attention` gives Fig. 4's visual-vs-text attention of a user's items.

    **Resolutions** (beyond SPEC.md's: every rating is an interaction, the CKG is built from
    training interactions only). Only items carry content (our datasets have no features for attribute
    entities). TransR sees pre-fusion representations (fusing the items of every KG batch would
    cost a fusion pass per KG batch). The fusion has no position embedding; the item is at
    position 0 and order only decides which nodes fit in ``fusion_seq_len``."""

    name = "MultiKG4Rec"

    @classmethod
    def requirements(cls, config) -> frozenset:
        return frozenset({"kg", *optional_modalities(config)})

    def __init__(self, config, inputs: ModelInputs):
        super().__init__(config, inputs)
        widths = layer_widths(config)
        self.init_ckg(config, inputs, inputs.kg, len(widths))
        d = int(config["embedding_size"])
        self.node_emb = nn.Embedding(self.ckg.n_nodes, d)
        nn.init.xavier_uniform_(self.node_emb.weight)
        self.modalities = optional_modalities(config)
        self.entity_init = config["entity_init"]
        if self.entity_init not in ENTITY_INITS:
            raise ConfigError("entity_init", f"expected one of {ENTITY_INITS}, got "
                              f"{self.entity_init!r}")
        self.reduce, self.combine = nn.ModuleDict(), nn.ModuleDict()
        for m in self.modalities:
            feat, mask = modality_features(inputs, m, self.name)
            self.register_buffer(f"feat_{m}", feat, persistent=False)
            self.register_buffer(f"mask_{m}", mask.unsqueeze(1), persistent=False)
            self.reduce[m] = self._linear(feat.shape[1], d)
            if self.entity_init == "concat_linear":
                self.combine[m] = self._linear(2 * d, d)
        self.graphs = nn.ModuleDict({m: self.knowledge_propagation(config, d)
                                     for m in (self.modalities or ("id",))})
        self.fusion_mode = config["fusion"]
        if self.fusion_mode not in FUSION_MODES:
            raise ConfigError("fusion", f"expected one of {FUSION_MODES}, got {self.fusion_mode!r}")
        self.fusion, self.fusion_items_per_batch = None, None
        if self.fusion_mode != "none" and self.modalities:
            self._init_fusion(config, d)
        self.train_items = sp.csr_matrix(
            (np.ones(len(inputs.train.user), np.float32), (inputs.train.user, inputs.train.item)),
            shape=(self.n_users, self.n_items))

    @staticmethod
    def _linear(d_in, d_out):
        lin = nn.Linear(d_in, d_out)
        nn.init.xavier_uniform_(lin.weight)
        nn.init.zeros_(lin.bias)
        return lin

    def _init_fusion(self, config, d):
        # fusion_seq_len >= 1 and fusion_heads dividing embedding_size: config_schema's rules
        n, heads = int(config["fusion_seq_len"]), int(config["fusion_heads"])
        order = config["fusion_bfs_order"]
        if order not in BFS_ORDERS:
            raise ConfigError("fusion_bfs_order", f"expected one of {BFS_ORDERS}, got {order!r}")
        rng = np.random.default_rng(int(config["seed"])) if order == "random" else None
        items = self.ckg.n_users + np.arange(self.n_items)
        seq, mask = self.ckg.bfs_sequences(items, n, rng)
        self.register_buffer("fusion_seq", torch.from_numpy(np.where(mask, seq, 0)),
                             persistent=False)
        self.register_buffer("fusion_mask", torch.from_numpy(mask), persistent=False)
        cap = config["fusion_items_per_batch"]
        if cap is not None and (not isinstance(cap, int) or cap < 1):
            raise ConfigError("fusion_items_per_batch", f"expected null or a positive integer, "
                              f"got {cap!r}")
        self.fusion_items_per_batch = cap
        for m in self.modalities:  # fused item vectors of the last full pass (no gradient)
            self.register_buffer(f"fused_cache_{m}", torch.zeros(self.n_items, d),
                                 persistent=False)
        self.fusion = ModalFusion(self.modalities, d, int(config["fusion_blocks"]), heads,
                                  int(config["fusion_self_layers"]),
                                  int(config["fusion_inner_size"]), float(config["fusion_dropout"]),
                                  self.fusion_mode)

    # ---- representations --------------------------------------------------------------------
    def _start(self, m, ids, items):
        """Initial vectors in modality ``m`` of items with ID rows ``ids`` (``entity_init``)."""
        r = F.leaky_relu(self.reduce[m](getattr(self, f"feat_{m}")[items]))
        has = getattr(self, f"mask_{m}")[items]
        if self.entity_init == "add":
            x = ids + r
        elif self.entity_init == "feature_only":
            x = r
        else:
            x = self.combine[m](torch.cat([ids, r], -1))
        return torch.where(has > 0, x, ids)

    def initial_tables(self) -> dict[str, torch.Tensor]:
        """Per graph, the pre-fusion vectors of every CKG node ``[n_nodes, d]``."""
        ids = self.node_emb.weight
        u0, i1 = self.ckg.n_users, self.ckg.n_users + self.n_items
        items = torch.arange(self.n_items, device=ids.device)
        return {m: torch.cat([ids[:u0], self._start(m, ids[u0:i1], items), ids[i1:]])
                for m in self.modalities} or {"id": ids}

    def fusion_inputs(self, tables, items=None):
        """``({m: [B, n, d]}, key_mask [B, n])``: the BFS sequences of ``items`` (all by default)
        in each modality's table."""
        seq, mask = self.fusion_seq, self.fusion_mask
        if items is not None:
            seq, mask = seq[items], mask[items]
        # index_select, not tables[m][seq]: its backward is deterministic on several CPU threads
        flat = seq.reshape(-1)
        return {m: tables[m].index_select(0, flat).view(*seq.shape, -1)
                for m in self.modalities}, mask

    def layer0_tables(self, items=None) -> dict[str, torch.Tensor]:
        """Per graph, the layer-0 vectors propagation starts from: the initial tables with the
        items' rows replaced by the fusion module's outputs (unchanged under ``fusion: none``).
        With ``items``, only those items are fused now; the others take the cached fused
        vectors (no gradient), and the cache is updated with the new values."""
        tables = self.initial_tables()
        if self.fusion is None:
            return tables
        fused = self.fusion(*self.fusion_inputs(tables, items))
        u0, i1 = self.ckg.n_users, self.ckg.n_users + self.n_items
        if items is None:
            if not torch.is_grad_enabled() or not self.training:
                for m in self.modalities:
                    getattr(self, f"fused_cache_{m}").copy_(fused[m].detach())
        else:
            for m in self.modalities:
                cache = getattr(self, f"fused_cache_{m}")
                cache[items] = fused[m].detach()
                fused[m] = cache.index_put((items,), fused[m])
        return {m: torch.cat([t[:u0], fused[m], t[i1:]]) for m, t in tables.items()}

    def _fusion_items(self, batch):
        """The items fused with gradients in a CF step: ``fusion_items_per_batch`` items drawn
        uniformly at random, independently of the batch (were they the batch's positives, fresh
        vs. cached vectors would tell positives from negatives); ``None``: all items."""
        cap = self.fusion_items_per_batch
        if self.fusion is None or cap is None or batch is None or cap >= self.n_items:
            return None
        return torch.randperm(self.n_items, device=self.fusion_seq.device)[:cap]

    def loss(self, batch):
        self._batch = batch
        try:
            return super().loss(batch)
        finally:
            self._batch = None

    def compute_vectors(self):
        batch = getattr(self, "_batch", None) if self.training else None
        tables = self.layer0_tables(self._fusion_items(batch))
        e = torch.cat([g(rows_at(tables[m], self.input_nodes), self.plan, self.self_pos, self.n_out)
                       for m, g in self.graphs.items()], 1)
        u0 = self.ckg.n_users
        return e[:u0], e[u0:]

    @torch.no_grad()
    def _eval_tables(self) -> dict[str, torch.Tensor]:
        """:meth:`layer0_tables` of all items without dropout or gradients (fills the cache)."""
        was = self.training
        self.eval()
        try:
            return self.layer0_tables()
        finally:
            self.train(was)

    @torch.no_grad()
    def refresh_attention(self) -> None:
        """Each graph's ``pi(h, r, t)`` from its layer-0 vectors (fusion without dropout)."""
        tables = self._eval_tables()
        for m, g in self.graphs.items():
            g.refresh_attention(tables[m], *self.edges())

    def on_epoch_start(self, epoch: int) -> None:
        if epoch > 0 and self.use_attention:
            self.refresh_attention()  # also refreshes the fused-vector cache
        elif self.fusion is not None and self.fusion_items_per_batch is not None:
            self._eval_tables()

    def kg_loss(self, batch, off: int):
        nodes = torch.cat([batch["heads"], batch["tails"], batch["neg_tails"]]) + off
        ids = self.node_emb(nodes)
        u0 = self.ckg.n_users
        # only the batch's item rows get content (a third of them or so: negatives are uniform
        # over entities); the others keep their ID vectors
        rows = torch.nonzero((nodes >= u0) & (nodes < u0 + self.n_items)).squeeze(1)
        items = nodes[rows] - u0
        loss = 0.0
        for m, g in self.graphs.items():
            e = ids if m == "id" else ids.index_put((rows,), self._start(m, ids[rows], items))
            h, t, t_neg = e.view(3, -1, e.shape[-1]).unbind(0)
            loss = loss + g.transr.loss(h, batch["relations"], t, t_neg, self.reg_weight)
        return loss

    # ---- case study (Fig. 4) ----------------------------------------------------------------
    @torch.no_grad()
    def modality_attention(self, users, n_items: int = 10):
        """Fig. 4's case study: for each of ``users``, up to ``n_items`` of their training items
        (lowest ids first) and the share of cross-modal attention each item puts on every
        modality: the attention probability that the item's own position (its query, position
        0 of its BFS sequence) places on each modality's keys, averaged over heads, fusion blocks
        and the query modalities (:meth:`ModalFusion.modality_mass`). The fusion is not
        user-specific: a user's profile is that of the items they chose.

        Returns ``(items [U, n_items] int64, -1 = none; mass [U, n_items, M] float, NaN = none;
        modalities)``, ``mass[..., k]`` for ``modalities[k]``, each row summing to 1."""
        if self.fusion is None:
            raise ValueError("modality_attention needs the fusion module (fusion is 'none' or "
                             "no modalities are configured)")
        users = np.asarray(users, dtype=np.int64).reshape(-1)
        items = np.full((len(users), n_items), -1, dtype=np.int64)
        for k, u in enumerate(users):
            row = self.train_items.indices[self.train_items.indptr[u]:self.train_items.indptr[u + 1]]
            row = np.sort(row)[:n_items]
            items[k, :len(row)] = row
        dev = self.node_emb.weight.device
        flat = torch.from_numpy(items[items >= 0]).to(dev)
        was = self.training
        self.eval()
        try:
            mass_flat = self.fusion.modality_mass(*self.fusion_inputs(self.initial_tables(), flat))
        finally:
            self.train(was)
        mass = torch.full((len(users), n_items, len(self.modalities)), float("nan"), device=dev)
        mass[torch.from_numpy(items >= 0).to(dev)] = mass_flat
        return torch.from_numpy(items), mass.cpu(), self.modalities
