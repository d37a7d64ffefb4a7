"""MKGAT: Multi-modal Knowledge Graph Attention Network (Sun et al., CIKM 2020, "Multi-modal
Knowledge Graphs for Recommender Systems")."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..graph.kg import KnowledgeGraph
from .base import ModelInputs, modality_features, register
from .ckg_base import optional_modalities
from .kgat import KGAT

MODAL_RELATIONS = {"text": "has_text", "image": "has_image"}


@register
class MKGAT(KGAT):
    """MKGAT on the collaborative knowledge graph, built on :class:`~mmkgrec.models.kgat.KGAT`.

    * Multi-modal KG (paper Sec. 3-4.1, entity-based): every item with content in modality ``m``
      gets a *modal entity* (its text, its image) linked by a relation ``has_text`` /
      ``has_image`` (and its inverse), so images and texts are neighbours of their item.
    * Multi-modal entity encoder (4.1.1): structural entities (users, items, KG entities) have an
      ID embedding; a modal entity is its pre-computed feature projected by a dense layer
      ``W_m f_m + b_m`` (one per modality; the paper's ResNet / SIF features become the feature
      store's image and text features).
    * Multi-modal graph attention layer (4.1.2): KGAT's knowledge-aware attention
      ``pi(h,r,t) = (W_r e_t)^T tanh(W_r e_h + e_r)``, softmax over the triples of ``h``, and
      aggregation (``aggregator_type``: ``bi`` / ``gcn`` (the paper's "add") / ``graphsage``
      (its "concat")) over the multi-modal CKG; the attention is refreshed each epoch as KGAT's.
    * KG embedding (4.1.3): ``kg_loss: transe`` (the paper's TransE,
      ``||e_h + e_r - e_t||^2``; the attention then uses ``W_r = I``) or ``transr``; pairwise
      ``-ln sigmoid(g(h,r,t') - g(h,r,t))`` + ``reg_weight`` L2, alternated with the
      recommendation phase (BPR + L2) as in KGAT.
    * Recommendation (4.2): layer concatenation ``e(0) || ... || e(L)``, inner-product score.

    ``modalities`` (any subset of ``[text, image]``, the paper's Table 3 rows): ``[]`` adds no
    modal entity and is KGAT with TransE (with ``kg_loss: transr`` it is KGAT exactly).

    **Resolutions.** The paper's alternative form ("feature-based": ``ID + W_m f_m`` at the item)
    is Multi-KG4Rec's ``entity_init``; here the entity-based form, the one MKGAT is named for, is
    used. Modal entities have no ID embedding, so an item without content in ``m`` simply has no
    such neighbour. The pairwise softplus loss replaces TransE's margin loss (as KGAT's TransR),
    and the attention is KGAT's (the paper's concatenation attention is not implemented).

    SPEC.md "Multi-KG4Rec": the Table 2 baseline and Table 3's modality ablations; its KG and
    CKG follow that section's graph resolution (training interactions only)."""

    name = "MKGAT"

    @classmethod
    def requirements(cls, config) -> frozenset:
        return frozenset({"kg", *optional_modalities(config)})

    def relation_space(self, config) -> str:
        space = config["kg_loss"]
        if space not in ("transe", "transr"):
            raise ConfigError("kg_loss", f"expected transe or transr, got {space!r}")
        return space

    def knowledge_graph(self, inputs: ModelInputs, config) -> KnowledgeGraph:
        """``inputs.kg`` plus one modal entity per item with content in each modality, linked by
        ``has_<modality>``; modal entities are the last entity ids, in modality then item order."""
        kg = inputs.kg
        self.modalities = optional_modalities(config)
        tokens, rels, triples = [kg.entity_tokens], list(kg.relation_tokens), [kg.triples]
        n_ent = kg.n_entities
        self.modal_counts = []
        for m in self.modalities:
            feat, mask = modality_features(inputs, m, self.name)
            items = np.flatnonzero(mask.cpu().numpy() > 0)
            self.register_buffer(f"modal_feat_{m}", feat[torch.from_numpy(items).to(feat.device)],
                                 persistent=False)
            rel = len(rels)
            rels.append(MODAL_RELATIONS[m])
            ent = n_ent + np.arange(len(items))
            triples.append(np.stack([items, np.full(len(items), rel), ent], 1).astype(np.int64))
            tokens.append(np.asarray([f"{m}:{kg.entity_tokens[i]}" for i in items], dtype=object))
            n_ent += len(items)
            self.modal_counts.append(len(items))
        if not self.modalities:
            return kg
        stats = {**kg.stats, "modal_entities": dict(zip(self.modalities, self.modal_counts))}
        return KnowledgeGraph(kg.n_items, np.concatenate(tokens), np.asarray(rels, dtype=object),
                              np.concatenate(triples), stats)

    def __init__(self, config, inputs: ModelInputs):
        super().__init__(config, inputs)
        d = int(config["embedding_size"])
        self.encoders = nn.ModuleDict()
        for m in self.modalities:
            lin = nn.Linear(getattr(self, f"modal_feat_{m}").shape[1], d)
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)
            self.encoders[m] = lin

    @property
    def n_id_nodes(self) -> int:
        return self.ckg.n_nodes - sum(self.modal_counts)

    def node_table(self) -> torch.Tensor:
        """ID embeddings of the structural nodes, then ``W_m f_m + b_m`` of the modal entities."""
        return torch.cat([self.node_emb.weight] + [self.encoders[m](getattr(self, f"modal_feat_{m}"))
                                                   for m in self.modalities])
