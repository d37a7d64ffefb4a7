"""KGAT: Knowledge Graph Attention Network (Wang et al., KDD 2019, "KGAT: Knowledge Graph
Attention Network for Recommendation")."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..graph.adjacency import spmm
from ..nn.kg import AGGREGATORS, TransR, edge_softmax, knowledge_attention
from .base import ModelInputs, VectorModel, bpr_loss, l2_per_batch, register


@register
class KGAT(VectorModel):
    """KGAT over the collaborative knowledge graph (users, items, entities; KG relations, their
    inverses and user-interacts-item both ways, from training interactions only).

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
    requires = frozenset({"kg"})

    def __init__(self, config, inputs: ModelInputs):
        super().__init__(config, inputs)
        kg = inputs.kg
        self.kg = kg
        self.ckg = ckg = kg.collaborative(inputs)
        d, kd = int(config["embedding_size"]), int(config["kg_embedding_size"])
        self.node_emb = nn.Embedding(ckg.n_nodes, d)
        nn.init.xavier_uniform_(self.node_emb.weight)
        self.transr = TransR(ckg.n_relations, d, kd)
        layers = config["layers"]
        if not isinstance(layers, list) or not layers or any(int(w) <= 0 for w in layers):
            raise ConfigError("layers", f"expected a non-empty list of layer widths, got {layers!r}")
        kind = config["aggregator_type"]
        if kind not in AGGREGATORS:
            raise ConfigError("aggregator_type", f"expected one of {sorted(AGGREGATORS)}, got "
                              f"{kind!r}")
        dims = [d] + [int(w) for w in layers]
        self.aggregators = nn.ModuleList(AGGREGATORS[kind](dims[k], dims[k + 1])
                                         for k in range(len(layers)))
        self.dropout = nn.Dropout(float(config["mess_dropout"]))
        self.reg_weight = float(config["reg_weight"])
        self.use_attention = bool(config["use_attention"])
        self.kg_loss_triples = config["kg_loss_triples"]
        if self.kg_loss_triples not in ("kg", "ckg"):
            raise ConfigError("kg_loss_triples", f"expected kg or ckg, got {self.kg_loss_triples!r}")
        for name, a in (("heads", ckg.heads), ("relations", ckg.relations), ("tails", ckg.tails)):
            self.register_buffer(f"edge_{name}", torch.from_numpy(a), persistent=False)
        self.plan = ckg.layer_plan(np.arange(ckg.n_users + self.n_items), len(layers))
        self.register_buffer("input_nodes", torch.from_numpy(self.plan[0].cols), persistent=False)
        for k, p in enumerate(self.plan):
            self.register_buffer(f"self_pos_{k}", torch.from_numpy(p.self_pos), persistent=False)
        self.register_buffer("attention", edge_softmax(torch.zeros(ckg.n_edges), self.edge_heads,
                                                       ckg.n_nodes))

    @torch.no_grad()
    def refresh_attention(self) -> None:
        """Recompute ``pi(h, r, t)`` for every CKG edge from the current weights."""
        self.attention.copy_(knowledge_attention(self.transr, self.node_emb.weight, self.edge_heads,
                                                 self.edge_relations, self.edge_tails,
                                                 self.ckg.n_nodes))

    def on_epoch_start(self, epoch: int) -> None:
        if epoch > 0 and self.use_attention:
            self.refresh_attention()

    def compute_vectors(self):
        """Eq. 3-8 and 11 for users and items. Layer ``l`` is computed only on the nodes the final
        user / item vectors depend on (:meth:`CollaborativeKG.layer_plan`); users and items are
        CKG nodes ``0..n_users+n_items-1``, the first rows of every layer's node set."""
        n_out = self.ckg.n_users + self.n_items
        x = self.node_emb(self.input_nodes)
        outs = [x[:n_out]]
        for k, (agg, layer) in enumerate(zip(self.aggregators, self.plan)):
            a, a_t = layer.torch_csr(self.attention)
            x = self.dropout(agg(x[getattr(self, f"self_pos_{k}")], spmm(a, a_t, x)))
            outs.append(F.normalize(x[:n_out], dim=1))
        e = torch.cat(outs, 1)
        u0 = self.ckg.n_users
        return e[:u0], e[u0:n_out]

    def loss(self, batch):
        if batch.get("phase") == "kg":
            return self.kg_loss(batch)
        users, pos, neg = batch["users"], batch["pos_items"], batch["neg_items"]
        u_all, i_all = self.compute_vectors()
        u, p, n = F.embedding(users, u_all), F.embedding(pos, i_all), F.embedding(neg, i_all)
        pos_s = (u * p).sum(-1)
        neg_s = (u.unsqueeze(1) * n).sum(-1) if n.dim() == 3 else (u * n).sum(-1)
        loss = bpr_loss(pos_s, neg_s)
        if self.reg_weight:
            loss = loss + self.reg_weight * l2_per_batch(u, p, n)
        return loss

    def kg_loss(self, batch):
        off = self.ckg.n_users if self.kg_loss_triples == "kg" else 0
        # one lookup: the node table's dense gradient is built once per step
        e = self.node_emb(torch.cat([batch["heads"], batch["tails"], batch["neg_tails"]]) + off)
        h, t, t_neg = e.view(3, -1, e.shape[-1]).unbind(0)
        return self.transr.loss(h, batch["relations"], t, t_neg, self.reg_weight)

    def make_batches(self, split, config):
        from ..training.kg_batches import AlternatingBatches, KGTripleBatches
        from ..training.trainer import PairwiseBatches

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
