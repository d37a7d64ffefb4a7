"""KGBM4Rec: a hybrid of a domain knowledge graph, a graph neural network, BERT text features and
image features (the KGBM4Rec paper, SPEC.md "KGBM4Rec")."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from ..config import config_value, task_of
from ..errors import ConfigError
from ..features.tokens import unpack_token_states
from ..graph.adjacency import to_torch_csr
from ..nn.classification import label_loss, no_ranking
from ..nn.losses import bpr_loss, l2_per_batch, pair_scores
from ..nn.multimodal import BiLSTMAttention, ModalityAttention, SumGraphConv, SwishMLP
from ..nn.rating import squared_error_l2
from .base import MODALITIES, ModelInputs, Recommender, register, standardised_content

log = logging.getLogger(__name__)


def kgbm_modalities(config) -> tuple[str, ...]:
    """The configured ``modalities`` (possibly none: the graph-only variant), in the order
    ``text, image``."""
    mods = config_value(config, "modalities") or []
    if isinstance(mods, str):
        mods = [mods]
    return tuple(m for m in MODALITIES if m in mods)


@register
class KGBM4Rec(Recommender):
    """KGBM4Rec, one model for three tasks (``task``: ``classification`` of item categories,
    ``rating`` prediction, top-N ``ranking``), each with its own head and loss.

    * **Domain knowledge graph** (Sec. 3): users, items and attribute entities (the domain KG of
      ``kg_merge`` / ``kg_domain_columns``: ML-100K genres and release years; under
      classification the target column and its relations are withheld, see
      :mod:`mmkgrec.graph.kg`) as nodes; user-item edges from the *training* interactions and
      item-attribute edges, both directions, binary.
    * **GNN** (eq. 1-2): ``conv_layers`` of :class:`~mmkgrec.nn.multimodal.SumGraphConv`, sum
      aggregation ``m_v = sum_{u in N(v)} h_u`` and the ReLU update
      ``h'_v = ReLU(W_s h_v + W_n m_v + c_v)``; layer 0 is an ID embedding per node.
      ``conv_layer_norm`` (on by default, a resolution: the paper states no scale control, and a
      sum over a user with hundreds of items grows with the degree at every layer)
      layer-normalises the pre-activation.
    * **Text** (Sec. 3, "BERT + BiLSTM-Attention"): stop words and special characters removed,
      BERT-family contextual token states computed once and cached in the feature store
      (:mod:`mmkgrec.features.tokens`, ``token_encoder``), then a trained BiLSTM with attention
      pooling (:class:`~mmkgrec.nn.multimodal.BiLSTMAttention`).
    * **Image**: the store's image features of ``image_encoder`` (the paper's ViT-L/16 with a
      ``vit:<path>`` spec where weights exist; by default EfficientNet-Lite1, named in every
      result), standardised per dimension.
    * **Fusion**: every branch projected to ``embedding_size`` (one space);
      ``cross_modal_attention``: in each propagation layer an item node's state attends over its
      text and image vectors (:class:`~mmkgrec.nn.multimodal.ModalityAttention`, eq. 4-5), the
      result is ``c_v``; ``early_fusion``: the text and image vectors are added to the item
      nodes' layer-0 features; ``late_fusion``: the GNN, text and image item vectors (and one
      presence indicator per modality) are concatenated into the MLP, else the GNN vector alone.
      The MLP (:class:`~mmkgrec.nn.multimodal.SwishMLP`, ``mlp_hidden``) uses Swish (eq. 6) and
      gives the item vector ``z_i`` (:meth:`item_vectors`).
    * **Heads**: classification: a linear layer on ``z_i``, softmax (``classification_mode:
      single``, the paper's) or one sigmoid per label (multi), cross-entropy; rating:
      ``f(u, v) = mu + b_u + b_v + p_u . z_v`` (``p_u`` the user's GNN vector mapped by a linear
      layer), trained on the squared error (eq. 3) plus ``reg_weight`` L2 of the pair's biases
      and vectors; ranking: ``p_u . z_v`` with BPR and ``reg_weight`` L2.

    Items without text or image are masked (never a zero row without its mask) and counted in
    :attr:`input_report`, as are token sequences cut at ``text_max_tokens`` and labels with no
    training item. ``use_graph: false`` replaces the GNN by plain user ID embeddings and gives
    items no graph vector (the text-only and image-only variants); ``modalities: []`` is the
    graph-only variant. **Resolutions**: SPEC.md's (ML-100K with genres, ratings, titles,
    posters); the rating head's bias terms and the inner product are ours (the paper gives only
    eq. 3's objective); the saliency crop is the feature option ``image_saliency_crop`` (off by
    default; :mod:`mmkgrec.features.saliency`, spectral residual saliency in place of U^2-Net).

    Approximation for speed (off by default): ``text_items_per_batch: k`` sends only ``k`` random
    items' token states through the BiLSTM in a training step (:meth:`pooled_text`)."""

    name = "KGBM4Rec"
    tasks = ("ranking", "rating", "classification")

    @classmethod
    def requirements(cls, config) -> frozenset:
        mods = kgbm_modalities(config)
        req = {"kg"} if config_value(config, "use_graph") else set()
        if "text" in mods:
            req.add("text_tokens")
        if "image" in mods:
            req.add("image")
        if task_of(config) == "classification":
            req.add("labels")
        return frozenset(req)

    def __init__(self, config, inputs: ModelInputs):
        super().__init__(config, inputs)
        self.task = task_of(config)
        self.modalities = kgbm_modalities(config)
        self.use_graph = bool(config["use_graph"])
        self.early = bool(config["early_fusion"]) and self.use_graph and bool(self.modalities)
        self.cross = (bool(config["cross_modal_attention"]) and self.use_graph
                      and bool(self.modalities))
        self.late = bool(config["late_fusion"]) or not self.use_graph
        if not self.use_graph and not self.modalities:
            raise ConfigError("use_graph", "KGBM4Rec without the graph needs at least one of "
                              "modalities text, image")
        if self.modalities and not (self.early or self.cross or self.late):
            raise ConfigError("late_fusion", f"modalities {list(self.modalities)} are configured "
                              "but early_fusion, late_fusion and cross_modal_attention are all "
                              "off: the content would reach nothing")
        d = int(config["embedding_size"])
        self.reg = float(config["reg_weight"])
        self.drop = nn.Dropout(float(config["kgbm_dropout"]))
        self.input_report: dict = {}
        self._init_graph(config, inputs, d)
        self._init_content(inputs, d)
        d_in = d if self.use_graph else 0
        if self.late:
            d_in += (d + 1) * len(self.modalities)
        self.mlp = SwishMLP(d_in, [int(w) for w in config["mlp_hidden"]], d,
                            float(config["kgbm_dropout"]))
        self._init_head(config, inputs, d)
        log.info("KGBM4Rec inputs: %s", self.input_report)
        self._cache = None

    # ---- construction -----------------------------------------------------------------------
    def _init_graph(self, config, inputs, d):
        if not self.use_graph:
            self.user_emb = nn.Embedding(self.n_users, d)
            nn.init.xavier_uniform_(self.user_emb.weight)
            return
        ckg = inputs.kg.collaborative(SimpleNamespace(n_users=self.n_users, train=inputs.train))
        n = ckg.n_nodes
        a = sp.csr_matrix((np.ones(ckg.n_edges, np.float32), (ckg.heads, ckg.tails)), shape=(n, n))
        a = ((a + a.T) > 0).astype(np.float32).tocsr()  # binary, symmetric: A h sums neighbours
        self._adj_np, self._adj = a, {}
        self.n_nodes = n
        self.input_report.update(graph_nodes=int(n), graph_edges=int(a.nnz),
                                 attribute_nodes=int(n - self.n_users - self.n_items))
        self.node_emb = nn.Embedding(n, d)
        nn.init.xavier_uniform_(self.node_emb.weight)
        norm = bool(config["conv_layer_norm"])
        self.convs = nn.ModuleList(SumGraphConv(d, norm) for _ in range(int(config["conv_layers"])))
        if self.cross:
            self.cross_att = nn.ModuleList(ModalityAttention(d) for _ in self.convs)

    def _init_content(self, inputs, d):
        self.proj = nn.ModuleDict()
        if "text" in self.modalities:
            packed, mask = inputs.features["text_tokens"]
            states, lengths, n_cut = unpack_token_states(packed.float())
            has = (mask > 0) & (lengths > 0)
            self.register_buffer("text_items", torch.nonzero(has).squeeze(1), persistent=False)
            self.register_buffer("text_states", states[has].contiguous(), persistent=False)
            self.register_buffer("text_lengths", lengths[has].cpu(), persistent=False)
            self.register_buffer("mask_text", has.float(), persistent=False)
            self.text_encoder = BiLSTMAttention(states.shape[2], int(self.config["lstm_hidden"]))
            cap = self.config["text_items_per_batch"]
            self.text_cap = None if cap is None or cap >= len(self.text_items) else int(cap)
            if self.text_cap is not None:  # pooled BiLSTM outputs of the last full pass
                self.register_buffer("text_cache", torch.zeros(len(self.text_items),
                                                               self.text_encoder.out_dim),
                                     persistent=False)
            self.proj["text"] = nn.Linear(self.text_encoder.out_dim, d)
            self.input_report.update(items_without_text=int((~has).sum()),
                                     truncated_token_sequences=int(n_cut))
        if "image" in self.modalities:
            feat, mask = standardised_content(inputs, "image", self.name)
            self.register_buffer("image_feat", feat, persistent=False)
            self.register_buffer("mask_image", mask, persistent=False)
            self.proj["image"] = nn.Linear(feat.shape[1], d)
            self.input_report.update(items_without_image=int((mask <= 0).sum()))

    def _init_head(self, config, inputs, d):
        if self.task == "classification":
            labels = inputs.extra["labels"]
            self.mode = labels.mode
            unseen = np.flatnonzero(labels.labels.sum(0) == 0)
            if len(unseen):
                log.warning("KGBM4Rec: %d label(s) have no training item (%s); the model can "
                            "only learn to leave them out", len(unseen),
                            ", ".join(str(c) for c in labels.classes[unseen][:10]))
            self.input_report.update(labels_without_training_items=int(len(unseen)))
            self.head = nn.Linear(d, labels.n_classes)
            return
        self.user_map = nn.Linear(d, d, bias=False)
        if self.task == "rating":
            ratings = inputs.train.rating
            if ratings is None or not len(ratings):
                raise ValueError(f"{self.name} (task rating) trains on the training "
                                 "interactions' ratings; the inputs have none")
            self.register_buffer("mu", torch.tensor(float(np.mean(ratings, dtype=np.float64))))
            self.user_bias = nn.Parameter(torch.zeros(self.n_users))
            self.item_bias = nn.Parameter(torch.zeros(self.n_items))

    def adjacency(self, device) -> torch.Tensor:
        key = str(device)
        if key not in self._adj:
            self._adj[key] = to_torch_csr(self._adj_np, device)
        return self._adj[key]

    # ---- representations --------------------------------------------------------------------
    def content_vectors(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """``{modality: (vectors [n_items, d] in the shared space, mask [n_items])}``."""
        out = {}
        if "text" in self.modalities:
            t = self.proj["text"](self.pooled_text())
            full = t.new_zeros(self.n_items, t.shape[1]).index_copy(0, self.text_items, t)
            out["text"] = (full, self.mask_text)
        if "image" in self.modalities:
            out["image"] = (self.proj["image"](self.image_feat) * self.mask_image.unsqueeze(1),
                            self.mask_image)
        return out

    def pooled_text(self) -> torch.Tensor:
        """BiLSTM-attention vectors of the items with text. Exact (every item through the BiLSTM
        with gradients) unless ``text_items_per_batch`` is set and the model trains: then that
        many items drawn at random are encoded afresh, the others come from the last full pass
        (refreshed at each epoch start, without gradients), and the cache is updated."""
        if self.text_cap is None or not (self.training and torch.is_grad_enabled()):
            return self.text_encoder(self.text_states, self.text_lengths)
        idx = torch.randperm(len(self.text_items), device=self.text_states.device)[:self.text_cap]
        fresh = self.text_encoder(self.text_states.index_select(0, idx),
                                  self.text_lengths[idx.cpu()])
        self.text_cache[idx] = fresh.detach()
        return self.text_cache.index_put((idx,), fresh)

    def on_epoch_start(self, epoch: int) -> None:
        if "text" in self.modalities and self.text_cap is not None:
            with torch.no_grad():
                self.text_cache.copy_(self.text_encoder(self.text_states, self.text_lengths))

    def represent(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(user vectors [n_users, d], item vectors z [n_items, d])``."""
        content = self.content_vectors()
        parts = []
        if self.use_graph:
            h = self.node_emb.weight
            u0, i1 = self.n_users, self.n_users + self.n_items
            if self.early:
                fused = h[u0:i1] + sum(v for v, _ in content.values())
                h = torch.cat([h[:u0], fused, h[i1:]])
            if self.cross:
                mods = torch.stack([v for v, _ in content.values()], 1)
                mask = torch.stack([m for _, m in content.values()], 1)
            adj = self.adjacency(h.device)
            for k, conv in enumerate(self.convs):
                extra = None
                if self.cross:
                    c = self.cross_att[k](h[u0:i1], mods, mask)
                    extra = torch.cat([c.new_zeros(u0, c.shape[1]), c,
                                       c.new_zeros(len(h) - i1, c.shape[1])])
                h = self.drop(conv(adj, h, extra))
            users = h[:u0]
            parts.append(h[u0:i1])
        else:
            users = self.user_emb.weight
        if self.late:
            for v, m in content.values():
                parts += [self.drop(v), m.unsqueeze(1)]
        return users, self.mlp(torch.cat(parts, 1))

    def train(self, mode: bool = True):
        self._cache = None
        return super().train(mode)

    def prepare_eval(self) -> None:
        self._cache = self.represent()

    def _vectors(self):
        return self._cache if self._cache is not None else self.represent()

    def user_vectors(self):
        if self.task == "classification":
            return None
        return self.user_map(self._vectors()[0])

    def item_vectors(self):
        return self._vectors()[1]

    # ---- tasks ------------------------------------------------------------------------------
    def make_batches(self, split, config):
        if self.task == "classification":
            from ..data.targets import training_labels
            from ..data.task_batches import label_batches

            return label_batches(training_labels(split), config["train_batch_size"])
        if self.task == "rating":
            from ..data.task_batches import rating_batches

            return rating_batches(split, config["train_batch_size"])
        return None

    def classify(self, items: torch.Tensor) -> torch.Tensor:
        return self.head(self._vectors()[1].index_select(0, items))

    def _pair(self, users, items, u, z):
        # index_select: a deterministic backward on several CPU threads (advanced indexing's is not)
        pu, zi = self.user_map(u.index_select(0, users)), z.index_select(0, items)
        pred = (pu * zi).sum(-1)
        if self.task == "rating":
            bu, bi = self.user_bias.index_select(0, users), self.item_bias.index_select(0, items)
            norms = bu ** 2 + bi ** 2 + pu.pow(2).sum(-1) + zi.pow(2).sum(-1)
            return self.mu + bu + bi + pred, norms
        return pred, None

    def score(self, users, items):
        if self.task == "classification":
            raise no_ranking(self.name)
        u, z = self._vectors()
        return self._pair(users, items, u, z)[0]

    def score_all(self, users):
        if self.task == "classification":
            raise no_ranking(self.name)
        u, z = self._vectors()
        out = self.user_map(u[users]) @ z.T
        if self.task == "rating":
            out = out + self.mu + self.user_bias[users].unsqueeze(1) + self.item_bias
        return out

    def loss(self, batch: dict) -> torch.Tensor:
        u, z = self.represent()
        if self.task == "classification":
            return label_loss(self.head(z.index_select(0, batch["items"])), batch["targets"],
                              self.mode)
        if self.task == "rating":
            pred, norms = self._pair(batch["users"], batch["items"], u, z)
            return squared_error_l2(pred, batch["ratings"], norms, self.reg)
        users, pos, neg = batch["users"], batch["pos_items"], batch["neg_items"]
        pu = self.user_map(u.index_select(0, users))
        zp = z.index_select(0, pos)
        zn = z.index_select(0, neg.reshape(-1)).view(*neg.shape, -1)
        loss = bpr_loss(*pair_scores(pu, zp, zn))
        if self.reg:
            loss = loss + self.reg * l2_per_batch(pu, zp, zn, n=len(users))
        return loss
