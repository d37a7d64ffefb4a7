"""The base of models over the collaborative knowledge graph (KGAT, MKGAT, Multi-KG4Rec) and the
config helpers they share."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..nn.kg import AGGREGATORS
from ..nn.losses import bpr_loss, l2_per_batch, pair_scores
from ..nn.propagation import KnowledgePropagation
from .base import ModelInputs, VectorModel, configured_modalities


def optional_modalities(config) -> tuple[str, ...]:
    """The config's ``modalities`` as :func:`~mmkgrec.models.base.configured_modalities`, except
    that an empty list is allowed (no item content: the ID-only model), and that a model without
    the key (KGAT) has none."""
    return configured_modalities(config) if "modalities" in config and config["modalities"] else ()


def layer_widths(config) -> list[int]:
    """The config's ``layers`` (output width of each propagation layer), checked."""
    layers = config["layers"]
    if not isinstance(layers, list) or not layers or any(int(w) <= 0 for w in layers):
        raise ConfigError("layers", f"expected a non-empty list of layer widths, got {layers!r}")
    return [int(w) for w in layers]


class CKGModel(VectorModel):
    """What KGAT, MKGAT and MultiKG4Rec share: the collaborative KG (users, items, entities; KG
    relations, their inverses and user-interacts-item both ways, from training interactions only)
    with its layer plan over users and items, the attention refresh at the start of every epoch
    after the first (``use_attention``), the CF loss (BPR + ``reg_weight`` times the L2 of the
    batch's final user / item vectors; KGAT eq. 13) and KGAT's alternating CF-then-KG epochs
    (:class:`~mmkgrec.data.batches.AlternatingBatches`, ``kg_batch_size`` triples per KG
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

    def knowledge_propagation(self, config, d: int,
                              relation_space: str = "transr") -> KnowledgePropagation:
        """The CKG's :class:`~mmkgrec.nn.propagation.KnowledgePropagation` for the config's
        ``aggregator_type``, ``layers``, ``mess_dropout`` and (TransR) ``kg_embedding_size``,
        from ``d``-dimensional layer-0 vectors."""
        kind = config["aggregator_type"]
        if kind not in AGGREGATORS:
            raise ConfigError("aggregator_type", f"expected one of {sorted(AGGREGATORS)}, got "
                              f"{kind!r}")
        rel_dim = None if relation_space == "transe" else int(config["kg_embedding_size"])
        return KnowledgePropagation(self.ckg.n_relations, [d] + layer_widths(config), kind,
                                    float(config["mess_dropout"]), self.edge_heads,
                                    self.ckg.n_nodes, relation_space, rel_dim)

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
        loss = bpr_loss(*pair_scores(u, p, n))
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
        cf = PairwiseBatches.from_split(split, config)
        if self.kg_loss_triples == "kg":
            kgb = KGTripleBatches(self.kg.triples_with_inverse(), self.kg.n_entities, kbs,
                                  2 * self.kg.n_relations)
        else:
            c = self.ckg
            kgb = KGTripleBatches(np.stack([c.heads, c.relations, c.tails], 1), c.n_nodes, kbs,
                                  c.n_relations)
        return AlternatingBatches(cf, kgb)
