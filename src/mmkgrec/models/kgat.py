"""KGAT: Knowledge Graph Attention Network (Wang et al., KDD 2019, "KGAT: Knowledge Graph
Attention Network for Recommendation")."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..graph.adjacency import spmm
from ..nn.kg import AGGREGATORS, TransE, TransR, edge_softmax, knowledge_attention
from ..config import config_value
from .base import (ModelInputs, VectorModel, bpr_loss, configured_modalities, l2_per_batch,
                   register)


def optional_modalities(config) -> tuple[str, ...]:
    """The config's ``modalities`` as :func:`~mmkgrec.models.base.configured_modalities`, except
    that an empty list is allowed (no item content: the ID-only model)."""
    return configured_modalities(config) if config_value(config, "modalities", []) else ()


def layer_widths(config) -> list[int]:
    """The config's ``layers`` (output width of each propagation layer), checked."""
    layers = config["layers"]
    if not isinstance(layers, list) or not layers or any(int(w) <= 0 for w in layers):
        raise ConfigError("layers", f"expected a non-empty list of layer widths, got {layers!r}")
    return [int(w) for w in layers]


class KnowledgePropagation:
    """Mixin for an ``nn.Module``: one graph's knowledge-aware attentive propagation (KGAT Eq. 1-8,
    Multi-KG4Rec 4.2.3). Owns the relation space ``transr`` (:class:`~mmkgrec.nn.kg.TransR`, or
    :class:`~mmkgrec.nn.kg.TransE` under ``relation_space="transe"``), the aggregators, the
    message dropout and the per-edge attention buffer ``attention`` (uniform ``1/|N_h|`` until the
    first :meth:`refresh_attention_from`)."""

    def init_propagation(self, config, ckg, d: int, edge_heads: torch.Tensor,
                         relation_space: str = "transr") -> None:
        if relation_space == "transe":
            self.transr = TransE(ckg.n_relations, d)
        else:
            self.transr = TransR(ckg.n_relations, d, int(config["kg_embedding_size"]))
        kind = config["aggregator_type"]
        if kind not in AGGREGATORS:
            raise ConfigError("aggregator_type", f"expected one of {sorted(AGGREGATORS)}, got "
                              f"{kind!r}")
        dims = [d] + layer_widths(config)
        self.aggregators = nn.ModuleList(AGGREGATORS[kind](dims[k], dims[k + 1])
                                         for k in range(len(dims) - 1))
        self.dropout = nn.Dropout(float(config["mess_dropout"]))
        self.register_buffer("attention", edge_softmax(torch.zeros(ckg.n_edges), edge_heads,
                                                       ckg.n_nodes))

    @torch.no_grad()
    def refresh_attention_from(self, table, heads, relations, tails, n_nodes) -> None:
        """Recompute ``pi(h, r, t)`` for every CKG edge from node vectors ``table [n_nodes, d]``."""
        self.attention.copy_(knowledge_attention(self.transr, table, heads, relations, tails,
                                                 n_nodes))

    def layer_csr(self, layer):
        """``layer.torch_csr(self.attention)``, cached while the attention buffer is unchanged
        (it is a constant of the CF phase: rebuilding the matrices gathered every edge's weight
        twice per layer and step). The cache holds the buffer itself and its version counter, so
        a refresh, a ``load_state_dict`` or a move to another device rebuilds it."""
        att = self.attention
        cache = self.__dict__.setdefault("_csr_cache", {})
        hit = cache.get(id(layer))
        if hit is None or hit[0] is not att or hit[1] != att._version or hit[2] is not layer:
            hit = cache[id(layer)] = (att, att._version, layer, *layer.torch_csr(att))
        return hit[3], hit[4]

    def propagate(self, x, plan, self_pos, n_out: int) -> torch.Tensor:
        """Eq. 3-8 and 11: ``x`` holds the layer-0 vectors of the plan's input nodes; returns
        ``e(0) || ... || e(L)`` of its first ``n_out`` rows (each layer's output L2-normalised).
        Layer ``l`` is computed only on the nodes the output depends on
        (:meth:`~mmkgrec.graph.kg.CollaborativeKG.layer_plan`)."""
        outs = [x[:n_out]]
        for agg, layer, pos in zip(self.aggregators, plan, self_pos):
            a, a_t = self.layer_csr(layer)
            x = self.dropout(agg(rows_at(x, pos), spmm(a, a_t, x)))
            outs.append(F.normalize(x[:n_out], dim=1))
        return torch.cat(outs, 1)


def rows_at(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """``x[pos]``, as ``x`` itself or a slice when ``pos`` is ``0, 1, ..., k-1`` (the layer plans'
    usual case: rows and columns are sorted node ids starting with the users and items), which
    spares the gather and its scatter (or zero-filled slice gradient) in the backward pass."""
    k = len(pos)
    if k <= len(x) and (k == 0 or int(pos[-1]) == k - 1) and torch.equal(
            pos, torch.arange(k, device=pos.device, dtype=pos.dtype)):
        return x if k == len(x) else x[:k]
    return x[pos]


class CKGModel(VectorModel):
    """What KGAT, MKGAT and MultiKG4Rec share: the collaborative KG (users, items, entities; KG
    relations, their inverses and user-interacts-item both ways, from training interactions only)
    with its layer plan over users and items, the attention refresh at the start of every epoch
    after the first (``use_attention``), the CF loss (BPR + ``reg_weight`` times the L2 of the
    batch's final user / item vectors) and KGAT's alternating CF-then-KG epochs
    (:class:`~mmkgrec.training.kg_batches.AlternatingBatches`, ``kg_batch_size`` triples per KG
    batch, ``kg_loss_triples``). Subclasses implement ``compute_vectors``,
    ``refresh_attention`` and ``kg_loss(batch, off)``."""

    requires = frozenset({"kg"})

    def init_ckg(self, config, inputs: ModelInputs, kg, n_layers: int) -> None:
        self.kg = kg
        self.ckg = ckg = kg.collaborative(inputs)
        self.reg_weight = float(config["reg_weight"])
        self.use_attention = bool(config["use_attention"])
        self.kg_loss_triples = config["kg_loss_triples"]
        if self.kg_loss_triples not in ("kg", "ckg"):
            raise ConfigError("kg_loss_triples", f"expected kg or ckg, got {self.kg_loss_triples!r}")
        for name, a in (("heads", ckg.heads), ("relations", ckg.relations), ("tails", ckg.tails)):
            self.register_buffer(f"edge_{name}", torch.from_numpy(a), persistent=False)
        self.plan = ckg.layer_plan(np.arange(ckg.n_users + self.n_items), n_layers)
        self.register_buffer("input_nodes", torch.from_numpy(self.plan[0].cols), persistent=False)
        for k, p in enumerate(self.plan):
            self.register_buffer(f"self_pos_{k}", torch.from_numpy(p.self_pos), persistent=False)

    @property
    def self_pos(self) -> list[torch.Tensor]:
        return [getattr(self, f"self_pos_{k}") for k in range(len(self.plan))]

    @property
    def n_out(self) -> int:
        """Users and items: CKG nodes ``0..n_users+n_items-1``, the first rows of every layer."""
        return self.ckg.n_users + self.n_items

    def edges(self):
        return self.edge_heads, self.edge_relations, self.edge_tails, self.ckg.n_nodes

    def refresh_attention(self) -> None:
        raise NotImplementedError

    def on_epoch_start(self, epoch: int) -> None:
        if epoch > 0 and self.use_attention:
            self.refresh_attention()

    def loss(self, batch):
        if batch.get("phase") == "kg":
            return self.kg_loss(batch, self.ckg.n_users if self.kg_loss_triples == "kg" else 0)
        users, pos, neg = batch["users"], batch["pos_items"], batch["neg_items"]
        u_all, i_all = self.compute_vectors()
        u, p, n = F.embedding(users, u_all), F.embedding(pos, i_all), F.embedding(neg, i_all)
        pos_s = (u * p).sum(-1)
        neg_s = (u.unsqueeze(1) * n).sum(-1) if n.dim() == 3 else (u * n).sum(-1)
        loss = bpr_loss(pos_s, neg_s)
        if self.reg_weight:
            loss = loss + self.reg_weight * l2_per_batch(u, p, n)
        return loss

    def kg_loss(self, batch, off: int):
        """TransR's loss on a KG batch; ``off`` maps the batch's ids to CKG nodes."""
        raise NotImplementedError

    def make_batches(self, split, config):
        from ..data.batches import AlternatingBatches, KGTripleBatches, PairwiseBatches

        bs = config["train_batch_size"]
        kbs = config["kg_batch_size"] or bs
        cf = PairwiseBatches(split.train, split.n_items, bs, config["num_neg"])
        if self.kg_loss_triples == "kg":
            kgb = KGTripleBatches(self.kg.triples_with_inverse(), self.kg.n_entities, kbs,
                                  2 * self.kg.n_relations)
        else:
            c = self.ckg
            kgb = KGTripleBatches(np.stack([c.heads, c.relations, c.tails], 1), c.n_nodes, kbs,
                                  c.n_relations)
        return AlternatingBatches(cf, kgb)


@register
class KGAT(KnowledgePropagation, CKGModel):
    """KGAT over the collaborative knowledge graph (:class:`CKGModel`).

    * Embedding layer (Eq. 1-2): :class:`~mmkgrec.nn.kg.TransR` on the CKG's node embeddings,
      ``-ln sigmoid(g(h,r,t') - g(h,r,t))`` + ``reg_weight`` L2, trained in the KG phase.
    * Attentive propagation (Eq. 3-5): ``e_N(h) = sum pi(h,r,t) e_t`` with
      ``pi = (W_r e_t)^T tanh(W_r e_h + e_r)`` normalised by an edge softmax over the triples of
      ``h`` (:func:`~mmkgrec.nn.kg.knowledge_attention`). As in the paper's alternating
      optimisation, the attention is a constant of the CF phase: it is recomputed from the current
      weights at the start of every epoch after the first (uniform ``1/|N_h|`` before) and stored
      as a buffer, so checkpoints and the best-epoch weights carry the attention they were
      evaluated with. ``use_attention: false`` keeps it uniform (the "w/o Att" ablation).
    * Aggregation (Eq. 6-8), ``aggregator_type``: ``bi`` (Bi-Interaction), ``gcn`` or
      ``graphsage``; ``layers`` gives the output width of each layer; message dropout
      ``mess_dropout``; each layer's output is L2-normalised.
    * Prediction (Eq. 11-12): ``e* = e(0) || ... || e(L)``, score ``e_u*^T e_i*``.
    * Optimisation (Eq. 13-14): each epoch the CF phase (BPR + ``reg_weight`` times the L2 of the
      batch's final user / item vectors) then the KG phase over all KG triples
      (:class:`~mmkgrec.training.kg_batches.AlternatingBatches`) in batches of
      ``kg_batch_size`` triples (null: ``train_batch_size``, as RecBole).

    **Resolutions.** ``kg_loss_triples``: ``kg`` (default, as RecBole 1.2.1: KG triples and their
    inverses) or ``ckg`` (every CKG edge, interactions included, as KGAT's released code).
    Corrupted tails are uniform over entities (``kg``) or over all CKG nodes (``ckg``), excluding
    true triples."""

    name = "KGAT"

    def __init__(self, config, inputs: ModelInputs):
        super().__init__(config, inputs)
        layer_widths(config)
        self.init_ckg(config, inputs, self.knowledge_graph(inputs, config), len(config["layers"]))
        d = int(config["embedding_size"])
        self.node_emb = nn.Embedding(self.n_id_nodes, d)
        nn.init.xavier_uniform_(self.node_emb.weight)
        self.init_propagation(config, self.ckg, d, self.edge_heads, self.relation_space(config))

    def relation_space(self, config) -> str:
        """``transr`` (KGAT's) or ``transe``."""
        return "transr"

    def knowledge_graph(self, inputs: ModelInputs, config):
        """The KG the CKG is built from (MKGAT adds modal entities)."""
        return inputs.kg

    @property
    def n_id_nodes(self) -> int:
        """CKG nodes with an ID embedding: all of them (MKGAT: all but its modal entities)."""
        return self.ckg.n_nodes

    def node_table(self) -> torch.Tensor:
        """Layer-0 vectors of every CKG node ``[n_nodes, d]``: the ID embeddings."""
        return self.node_emb.weight

    @torch.no_grad()
    def refresh_attention(self) -> None:
        """Recompute ``pi(h, r, t)`` for every CKG edge from the current weights."""
        self.refresh_attention_from(self.node_table(), *self.edges())

    def compute_vectors(self):
        """Eq. 3-8 and 11 for users and items (:meth:`KnowledgePropagation.propagate`)."""
        e = self.propagate(rows_at(self.node_table(), self.input_nodes), self.plan,
                           self.self_pos, self.n_out)
        u0 = self.ckg.n_users
        return e[:u0], e[u0:]

    def kg_loss(self, batch, off: int):
        # one lookup: the node table's dense gradient is built once per step
        e = self.node_table()[torch.cat([batch["heads"], batch["tails"], batch["neg_tails"]]) + off]
        h, t, t_neg = e.view(3, -1, e.shape[-1]).unbind(0)
        return self.transr.loss(h, batch["relations"], t, t_neg, self.reg_weight)
