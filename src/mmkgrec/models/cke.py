"""CKE: Collaborative Knowledge base Embedding (Zhang et al., KDD 2016, "Collaborative Knowledge
Base Embedding for Recommender Systems")."""

from __future__ import annotations

import torch
from torch import nn

from ..config import config_value
from ..errors import ConfigError
from ..nn.kg import TransR
from ..nn.losses import bpr_loss, l2_per_batch, pair_scores
from .base import MODALITIES, ModelInputs, VectorModel, modality_features, register


def _cke_modalities(config) -> tuple[str, ...]:
    mods = config_value(config, "modalities") or []
    if isinstance(mods, str):
        mods = [mods]
    if any(m not in MODALITIES for m in mods):
        raise ConfigError("modalities", f"CKE takes a subset of {list(MODALITIES)} (empty: "
                          f"structural knowledge only), got {mods!r}")
    return tuple(m for m in MODALITIES if m in mods)


@register
class CKE(VectorModel):
    """CKE with structural knowledge (and optionally textual / visual knowledge).

    * Item latent vector (paper Sec. 4.4, the CKE framework): ``e_i = eta_i + v_i (+ X_i^text + X_i^image)``,
      ``eta_i`` the item's collaborative offset, ``v_i`` its entity's structural embedding.
      Score ``u^T e_i``; CF loss: BPR (the paper's pairwise ranking term) + ``reg_weights[0]`` times the L2 of
      the batch's user and item vectors.
    * Structural embedding (Sec. 4.1, Bayesian TransR, and its pairwise term in the joint loss):
      :class:`~mmkgrec.nn.kg.TransR`, ``-ln sigmoid(g(h,r,t') - g(h,r,t))`` over a corrupted
      tail, + ``reg_weights[1]`` times the L2 of the projected entities and the relation.
    * Both losses are summed in every step: each CF batch comes with a KG batch of the same size
      (:class:`~mmkgrec.data.batches.JointBatches`), as in the paper's joint SGD.

    **Resolutions.** ``modalities: []`` (the default) is the KG-only CKE that RecBole 1.2.1
    implements, for like-for-like comparison. With ``modalities: [text, image]``, the textual and
    visual terms use pre-computed item features (``features/``) mapped to ``embedding_size`` by a
    linear layer, in place of the paper's stacked denoising / convolutional auto-encoders (no
    reconstruction loss). ``kg_inverse_relations`` (default false, as RecBole's ``kg_reverse_r``)
    adds each triple's inverse to TransR's training triples.

    SPEC.md "Multi-KG4Rec": a Table 2 baseline; no SPEC.md resolution beyond the shared ones."""

    name = "CKE"
    requires = frozenset({"kg"})

    @classmethod
    def requirements(cls, config) -> frozenset:
        return frozenset({"kg", *_cke_modalities(config)})

    def __init__(self, config, inputs: ModelInputs):
        super().__init__(config, inputs)
        kg = inputs.kg
        d, kd = int(config["embedding_size"]), int(config["kg_embedding_size"])
        self.user_emb = nn.Embedding(self.n_users, d)
        self.item_emb = nn.Embedding(self.n_items, d)
        self.entity_emb = nn.Embedding(kg.n_entities, d)
        for emb in (self.user_emb, self.item_emb, self.entity_emb):
            nn.init.xavier_normal_(emb.weight)
        self.inverse = bool(config["kg_inverse_relations"])
        self.triples = kg.triples_with_inverse() if self.inverse else kg.triples
        self.n_kg_relations = 2 * kg.n_relations if self.inverse else kg.n_relations
        self.transr = TransR(max(1, self.n_kg_relations), d, kd)
        reg = config["reg_weights"]
        if not isinstance(reg, (list, tuple)) or len(reg) != 2:
            raise ConfigError("reg_weights", f"expected [cf_weight, kg_weight], got {reg!r}")
        self.reg_cf, self.reg_kg = float(reg[0]), float(reg[1])
        self.modalities = _cke_modalities(config)
        self.content = nn.ModuleDict()
        for m in self.modalities:
            feat, _ = modality_features(inputs, m, "CKE")
            self.register_buffer(f"feat_{m}", feat, persistent=False)
            lin = nn.Linear(feat.shape[1], d)
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)
            self.content[m] = lin

    def item_vectors_of(self, items: torch.Tensor) -> torch.Tensor:
        """``eta_i + v_i (+ content)`` for the given items (dense item id = entity id)."""
        return self._item_vectors(items, self.entity_emb(items))

    def _item_vectors(self, items, entity_vectors):
        v = self.item_emb(items) + entity_vectors
        for m in self.modalities:
            v = v + self.content[m](getattr(self, f"feat_{m}")[items])
        return v

    def compute_vectors(self):
        return self.user_emb.weight, self.item_vectors_of(torch.arange(self.n_items,
                                                                       device=self.user_emb.weight.device))

    def loss(self, batch):
        """BPR + L2 on the CF part of ``batch`` plus TransR's loss on its KG part. Every entity
        row a step needs is looked up in one call, so the (dense) gradient of the entity table is
        built once per step rather than once per use."""
        has_cf = "users" in batch
        has_kg = "heads" in batch and len(batch["heads"]) > 0
        ids = []
        if has_cf:
            pos, neg = batch["pos_items"], batch["neg_items"]
            items = torch.cat([pos, neg.reshape(-1)])
            ids.append(items)
        if has_kg:
            ids += [batch["heads"], batch["tails"], batch["neg_tails"]]
        ent = self.entity_emb(torch.cat(ids))
        loss = 0.0
        if has_cf:
            users = batch["users"]
            iv = self._item_vectors(items, ent[:len(items)])
            u, p, n = self.user_emb(users), iv[:len(pos)], iv[len(pos):].view(*neg.shape, -1)
            loss = bpr_loss(*pair_scores(u, p, n))
            if self.reg_cf:
                loss = loss + self.reg_cf * l2_per_batch(u, p, n)
            ent = ent[len(items):]
        if has_kg:
            h, t, t_neg = ent.view(3, -1, ent.shape[-1]).unbind(0)
            loss = loss + self.transr.loss(h, batch["relations"], t, t_neg, self.reg_kg)
        return loss

    def make_batches(self, split, config):
        from ..data.batches import JointBatches, KGTripleBatches, PairwiseBatches

        bs = config["train_batch_size"]
        cf = PairwiseBatches.from_split(split, config)
        kg = KGTripleBatches(self.triples, self.entity_emb.num_embeddings, bs,
                             max(1, self.n_kg_relations))
        return JointBatches(cf, kg)

