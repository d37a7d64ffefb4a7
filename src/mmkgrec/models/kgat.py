"""KGAT: Knowledge Graph Attention Network (Wang et al., KDD 2019, "KGAT: Knowledge Graph
Attention Network for Recommendation")."""

from __future__ import annotations

import torch
from torch import nn

from ..nn.propagation import rows_at
from .base import ModelInputs, register
from .ckg_base import CKGModel, layer_widths


@register
class KGAT(CKGModel):
    """KGAT over the collaborative knowledge graph
    (:class:`~mmkgrec.models.ckg_base.CKGModel`), composed of a
    :class:`~mmkgrec.nn.propagation.KnowledgePropagation` (``propagation``).

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
      (:class:`~mmkgrec.data.batches.AlternatingBatches`) in batches of
      ``kg_batch_size`` triples (null: ``train_batch_size``, as RecBole).

    **Resolutions.** ``kg_loss_triples``: ``kg`` (default, as RecBole 1.2.1: KG triples and their
    inverses) or ``ckg`` (every CKG edge, interactions included, as KGAT's released code).
    Corrupted tails are uniform over entities (``kg``) or over all CKG nodes (``ckg``), excluding
    true triples. SPEC.md "Multi-KG4Rec": a Table 2 baseline; its CKG is built from training
    interactions only, as that section resolves."""

    name = "KGAT"

    def __init__(self, config, inputs: ModelInputs):
        super().__init__(config, inputs)
        layer_widths(config)
        self.init_ckg(config, inputs, self.knowledge_graph(inputs, config), len(config["layers"]))
        d = int(config["embedding_size"])
        self.node_emb = nn.Embedding(self.n_id_nodes, d)
        nn.init.xavier_uniform_(self.node_emb.weight)
        self.propagation = self.knowledge_propagation(config, d, self.relation_space(config))

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
        self.propagation.refresh_attention(self.node_table(), *self.edges())

    def compute_vectors(self):
        """Eq. 3-8 and 11 for users and items."""
        e = self.propagation(rows_at(self.node_table(), self.input_nodes), self.plan,
                             self.self_pos, self.n_out)
        u0 = self.ckg.n_users
        return e[:u0], e[u0:]

    def kg_loss(self, batch, off: int):
        # one lookup: the node table's dense gradient is built once per step (index_select: its
        # backward is deterministic on several CPU threads, an advanced-index gather's is not)
        e = self.node_table().index_select(
            0, torch.cat([batch["heads"], batch["tails"], batch["neg_tails"]]) + off)
        h, t, t_neg = e.view(3, -1, e.shape[-1]).unbind(0)
        return self.propagation.transr.loss(h, batch["relations"], t, t_neg, self.reg_weight)
