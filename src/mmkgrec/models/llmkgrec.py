"""LLMKGRec: the LLM + knowledge-graph e-commerce recommender ("融合大语言模型和知识图谱的电商个性化
推荐算法", a blog-style article with code; SPEC.md "LLM + KG e-commerce recommender")."""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from ..config import config_value
from ..errors import ConfigError
from ..graph.adjacency import spmm, to_torch_csr
from ..nn.kg import TransE, TransR
from ..nn.losses import bpr_loss, l2_of_rows
from ..nn.matching import AttentionPooling, MatchingMLP
from .base import (ModelInputs, Recommender, content_moments, register, standardise,
                   standardised_content)

log = logging.getLogger(__name__)


@register
class LLMKGRec(Recommender):
    """The article's three modules (Sec. 3.1-3.4 and its PyTorch code), trained with BPR.

    * **UserEncoder** (Sec. 3.2): each behaviour (a training-history item's text, as the feature
      store holds it: title, year, attributes) is encoded by a pre-trained language model
      (``text_encoder``: ``minilm``, ``gemma3-270m``, ``hf:<path>``; :mod:`mmkgrec.features.language_model`),
      the vectors are attention-pooled (step 2, :class:`~mmkgrec.nn.matching.AttentionPooling`)
      and a linear layer gives the user embedding (step 3, the code's ``fc``):
      ``e_u = W sum_j a_uj x_j + b``. Item texts are encoded once and cached, so a user's
      encoding is a pooling over cached vectors (the language model is frozen; ``W`` is applied
      to every item vector once per step, then pooled: the same value). ``lm_finetune: true``
      trains the language model's weights too (at ``lm_learning_rate``): every item text goes
      through it in each step (:class:`mmkgrec.features.tower.TextTower`), its vectors
      standardised with the stored vectors' moments, so before any update the model is the
      frozen one (about 20 s of CPU a step on ML-100K with MiniLM, against 0.03 s frozen: meant
      for a GPU). ``user_encoder:
      one_pass`` is the code's variant: the user's whole behaviour sequence (history texts in
      time order, one text) through the language model in one pass, ``e_u = W x_u + b``.
      **Resolution**: an item's embedding is the same linear map of its own text vector,
      ``e_i = W x_i + b`` (the article leaves the item embedding unspecified; this puts users
      and items in one space and gives an unseen item a vector). Text vectors are standardised
      per dimension over the items that have text (the encoders' scales differ by orders of
      magnitude); an item without text has ``x_i = 0``.
    * **KGEnhancer** (Sec. 3.3, the code's ``KGEnhancer``): ``z = F [e ; k] + c`` with one linear
      layer ``F`` shared by users and items. **Resolution**: an item's KG feature ``k_i`` is its
      entity's embedding, trained jointly with TransR (``kg_embedding_method: transr``, the
      relation space ``kg_embedding_size``) or TransE on the KG's triples (each CF step comes with
      a KG batch of the same size, loss weight ``kg_loss_weight``); a user's ``k_u`` is the mean
      over the entities of the user's training items. The article allows the KG embeddings to be
      pre-trained instead: ``kg_pretrain_epochs: N`` trains the entity table (and the TransR /
      TransE relations) beforehand, N epochs of the KG loss alone over shuffled triples (batches
      of ``train_batch_size``, Adam at ``learning_rate``), before the first CF epoch, then
      freezes it, so the CF steps carry no KG batch and the table gets no gradient.
    * **MatchingModel** (Sec. 3.4): ``score = MLP([z_u ; z_i])``, hidden widths
      ``matching_layers`` with ReLU, one output (:class:`~mmkgrec.nn.matching.MatchingMLP`).
      **Resolution**: trained with BPR (``-ln sigmoid(s_ui - s_uj)``, uniform negatives) plus
      ``reg_weight`` times the squared L2 of the batch's ``z`` vectors per batch; every item is
      scored and ranked, the first layer's user and item parts computed once and the pairs
      scored in blocks of ``score_chunk_elements`` activations.

    Ablations: ``use_lm: false`` (user and item ID embeddings in place of the language model,
    the same loss and matching model), ``use_kg: false`` (``z = e``, no KG), ``user_encoder:
    one_pass``, the language model by ``text_encoder``; ``id_embeddings: true`` adds ID
    embeddings to the text-based ``e_u``, ``e_i`` (a hybrid the article does not have). A user
    without training history pools nothing: ``e_u = b`` (and ``k_u = 0``); the log counts them,
    and the behaviours whose item has no text (a zero text vector; an item with some of the text
    fields is encoded from those it has).

    Reasons (explanations, post-processing): ``scores_without_history`` takes the removed items
    out of the user's pooled history (the attention pooling of their text vectors and the mean of
    their entities' KG vectors) and rescores; the user's ID embedding (``use_lm: false``,
    ``id_embeddings``) stays. ``user_encoder: one_pass`` reads the history as one text encoded
    beforehand, so that configuration has no reasons.
    """

    name = "LLMKGRec"
    history_reasons = ("the items leave the user's pooled history (the attention pooling of their "
                       "texts and the mean of their KG entities)")
    #: a training batch whose distinct users are at least this share of all users computes
    #: every user's and item's vector once (one sparse product for the pooling); a smaller
    #: one only its own users and items (the same values either way)
    WHOLE_CATALOGUE_SHARE = 0.25

    @classmethod
    def requirements(cls, config) -> frozenset:
        req = set()
        if config_value(config, "use_lm"):
            req.add("text")
            one_pass = config_value(config, "user_encoder") == "one_pass"
            if one_pass:
                req.add("user_text")
            if config_value(config, "lm_finetune"):
                req.add("user_text_tower" if one_pass else "text_tower")
        if config_value(config, "use_kg"):
            req.add("kg")
        return frozenset(req)

    def __init__(self, config, inputs: ModelInputs):
        super().__init__(config, inputs)
        d = int(config_value(config, "embedding_size"))
        self.use_lm = bool(config_value(config, "use_lm"))
        self.use_kg = bool(config_value(config, "use_kg"))
        self.one_pass = config_value(config, "user_encoder") == "one_pass"
        self.reg_weight = float(config_value(config, "reg_weight"))
        self.kg_weight = float(config_value(config, "kg_loss_weight"))
        self.chunk = int(config_value(config, "score_chunk_elements"))
        hidden = list(config_value(config, "matching_layers"))
        self.tower = None  # the language model with gradients (lm_finetune), else frozen vectors
        self._live = None  # the tower's standardised vectors, once per step or evaluation
        if config_value(config, "lm_finetune") and not self.use_lm:
            raise ConfigError("lm_finetune", "there is no language model to fine-tune with "
                              "use_lm: false")
        m = inputs.train.csr(self.n_users, self.n_items)  # each user's training items
        indptr = torch.from_numpy(m.indptr.astype(np.int64))
        hist = torch.from_numpy(m.indices.astype(np.int64))
        self.register_buffer("indptr", indptr, persistent=False)
        self.register_buffer("hist", hist, persistent=False)
        no_history = int((indptr[1:] == indptr[:-1]).sum())
        if no_history:
            log.info("LLMKGRec: %d user(s) have no training history; their user vector falls "
                     "back to the encoder's bias (and a zero KG feature)", no_history)
        if self.use_lm:
            text, has_text = standardised_content(inputs, "text", self.name)
            self.register_buffer("text", text, persistent=False)
            blind = int((has_text[hist] == 0).sum())
            if blind:
                log.info("LLMKGRec: %d training interaction(s) are with items without text; "
                         "those behaviours pool a zero text vector (%d item(s) without text)",
                         blind, int((has_text == 0).sum()))
            self.fc = nn.Linear(text.shape[1], d)   # UserEncoder.fc (and the items' map)
            nn.init.xavier_uniform_(self.fc.weight)
            nn.init.zeros_(self.fc.bias)
            if self.one_pass:
                if "user_text" not in inputs.features:
                    raise ValueError("LLMKGRec user_encoder: one_pass needs inputs 'user_text'")
                ut, _ = standardised_content(inputs, "user_text", self.name)
                self.register_buffer("user_text", ut, persistent=False)
            else:
                self.pool = AttentionPooling(text.shape[1],
                                             int(config_value(config, "attention_size")))
            self._finetune(config, inputs)
        if not self.use_lm or config_value(config, "id_embeddings"):
            self.user_emb = nn.Embedding(self.n_users, d)
            self.item_emb = nn.Embedding(self.n_items, d)
            for emb in (self.user_emb, self.item_emb):
                nn.init.xavier_normal_(emb.weight)
                if self.use_lm:
                    emb.weight.data.mul_(0.1)
        else:
            self.user_emb = self.item_emb = None
        if self.use_kg:
            kg = inputs.kg
            method = config_value(config, "kg_embedding_method")
            self.triples = kg.triples
            self.n_relations = max(1, kg.n_relations)
            self.entity_emb = nn.Embedding(kg.n_entities, d)
            nn.init.xavier_normal_(self.entity_emb.weight)
            self.kge = (TransE(self.n_relations, d) if method == "transe" else
                        TransR(self.n_relations, d, int(config_value(config, "kg_embedding_size"))))
            self.fuse = nn.Linear(2 * d, d)          # KGEnhancer.fc, shared by users and items
            nn.init.xavier_uniform_(self.fuse.weight)
            nn.init.zeros_(self.fuse.bias)
            self.kg_pretrain = int(config_value(config, "kg_pretrain_epochs"))
            self._kg_batch = int(config_value(config, "train_batch_size"))
            self._kg_lr = float(config_value(config, "learning_rate"))
            if self.kg_pretrain:
                # saved with the weights, so a resumed run does not pre-train again
                self.register_buffer("kg_pretrained", torch.tensor(False))
                self._freeze_kg()
        if not hidden:
            raise ConfigError("matching_layers", "expected at least one hidden width")
        self.matcher = MatchingMLP(d, d, hidden)
        self._cache = None
        self._hist_mat = None

    def _finetune(self, config, inputs: ModelInputs) -> None:
        """``lm_finetune``: the language model over the item texts (or, one-pass, the users'
        history texts) as a submodule whose weights train; its vectors are standardised with the
        moments of the store's frozen vectors (so before any update they are those vectors)."""
        if not config_value(config, "lm_finetune"):
            return
        if config_value(config, "shuffle_features"):
            raise ConfigError("lm_finetune", "the language model reads each item's own text; "
                              "shuffle_features (the shuffled control) needs frozen vectors")
        self._tuned = "user_text" if self.one_pass else "text"
        name = "user_text_tower" if self.one_pass else "text_tower"
        if name not in inputs.extra:
            raise ValueError(f"LLMKGRec lm_finetune needs inputs '{name}'")
        self.tower = inputs.extra[name]
        mat, mask = inputs.features[self._tuned]
        if self.tower.n != len(mat) or self.tower.dim != mat.shape[1]:
            raise ValueError(f"LLMKGRec lm_finetune: the language model gives {self.tower.n} x "
                             f"{self.tower.dim} vectors, the stored {self._tuned} features are "
                             f"{tuple(mat.shape)}")
        mu, sd = content_moments(mat, mask)
        self.register_buffer("tuned_mask", mask.clone(), persistent=False)
        self.register_buffer("tuned_mu", mu, persistent=False)
        self.register_buffer("tuned_sd", sd, persistent=False)
        self._lm_lr = float(config_value(config, "lm_learning_rate"))

    def optimizer_groups(self, config):
        if self.tower is None:
            return self.parameters()
        lm = {id(p) for p in self.tower.parameters()}
        return [{"params": [p for p in self.parameters() if id(p) not in lm]},
                {"params": list(self.tower.parameters()), "lr": self._lm_lr}]

    def _content(self, name: str) -> torch.Tensor:
        """The standardised text vectors ``name`` (``text``: items, ``user_text``: the one-pass
        users): the store's, or with ``lm_finetune`` the language model's, computed once per
        training step (:meth:`loss`) and once per evaluation (``_live``, dropped by
        :meth:`train` and at each step's start)."""
        if self.tower is None or name != self._tuned:
            return getattr(self, name)
        if self._live is None:
            with torch.set_grad_enabled(self.training and torch.is_grad_enabled()):
                self._live = standardise(self.tower(), self.tuned_mask, self.tuned_mu,
                                         self.tuned_sd)
        return self._live

    # ---- embeddings ---------------------------------------------------------------------------
    def _histories(self, users: torch.Tensor):
        """Flat history items of ``users`` and the position in ``users`` each belongs to."""
        start, end = self.indptr[users], self.indptr[users + 1]
        lengths = end - start
        seg = torch.repeat_interleave(torch.arange(len(users), device=users.device), lengths)
        offsets = torch.arange(int(lengths.sum()), device=users.device)
        offsets = offsets - torch.repeat_interleave(torch.cumsum(lengths, 0) - lengths, lengths)
        return self.hist[start[seg] + offsets], seg, lengths

    def _history_matrix(self):
        """Every user's training items as a binary sparse user x item matrix and its transpose
        (CSR, built once): the pooling over every user's history as one sparse product."""
        if self._hist_mat is None or self._hist_mat[2].device != self.indptr.device:
            m = sp.csr_matrix((np.ones(len(self.hist), dtype=np.float32),
                               self.hist.cpu().numpy(), self.indptr.cpu().numpy()),
                              shape=(self.n_users, self.n_items))
            device = self.indptr.device
            self._hist_mat = (to_torch_csr(m, device), to_torch_csr(m.T.tocsr(), device),
                              (self.indptr[1:] - self.indptr[:-1]))
        return self._hist_mat

    def _step_inputs(self, kg_rows: torch.Tensor | None = None):
        """What every item contributes, once per step (each depends on the item alone): ``(W x_i,
        s_i, k_i, kg)``: the shared linear map without bias, the attention logits (attention
        pooling), the items' entity vectors, and those of ``kg_rows`` (gathered with the items'
        in one gather, so that the entity table receives one gradient per step)."""
        v = s = ent = ent_kg = None
        if self.use_lm and self.one_pass:
            v = self._content("text") @ self.fc.weight.T
        elif self.use_lm:  # both maps of the text in one product
            d = self.fc.weight.shape[0]
            y = self._content("text") @ torch.cat([self.fc.weight, self.pool.proj.weight]).T
            v, h = y.split([d, y.shape[1] - d], 1)  # split, not slices: one backward node
            s = self.pool.logits_of_projected(h)
        if self.use_kg:
            rows = torch.arange(self.n_items, device=self.indptr.device)
            if kg_rows is not None:
                rows = torch.cat([rows, kg_rows])
            ent = self.entity_emb.weight.index_select(0, rows)
            if kg_rows is not None:
                ent, ent_kg = ent.split([self.n_items, len(kg_rows)])
        return v, s, ent, ent_kg

    def _items(self, items: torch.Tensor | None = None, step=None) -> torch.Tensor:
        """``z_i`` of ``items`` (all when None, from ``step``: :meth:`_step_inputs`)."""
        if items is None:
            v, _, ent, _ = step or self._step_inputs()
            e = v + self.fc.bias if self.use_lm else 0.0
            if self.item_emb is not None:
                e = e + self.item_emb.weight
            if self.use_kg:
                e = self.fuse(torch.cat([e, ent], -1))
            return e
        e = self.fc(self._content("text")[items]) if self.use_lm else 0.0
        if self.item_emb is not None:
            e = e + self.item_emb(items)
        if self.use_kg:
            e = self.fuse(torch.cat([e, self.entity_emb(items)], -1))
        return e

    def _users(self, users: torch.Tensor | None = None, step=None,
               histories=None) -> torch.Tensor:
        """``z_u`` of distinct ``users`` (every user when None, from ``step``:
        :meth:`_step_inputs`).

        Every user at once pools with one sparse product over the history matrix
        (:meth:`AttentionPooling.pool_sets`; the KG feature likewise); a subset of users, or
        logits too spread for that, pools over the gathered history rows. Both compute the
        same ``z_u``. ``histories``: ``(items, row of each, lengths)`` pooled for ``users`` in
        place of their training histories (the reasons' edited histories)."""
        pooled = k = None
        attention = self.use_lm and not self.one_pass
        if users is None:
            mat, mat_t, lengths = self._history_matrix()
            v, s, ent, _ = step or self._step_inputs()
            if attention:  # the KG feature's sums in the same sparse product
                got = AttentionPooling.pool_sets(s, v, mat, mat_t, also=(
                    ent if self.use_kg else None))
                if got is not None:
                    pooled, k = got if self.use_kg else (got, None)
            if self.use_kg and k is None:
                k = spmm(mat, mat_t, ent)
            if attention and pooled is None:  # logits too spread: the gathered path pools
                users = torch.arange(self.n_users, device=self.indptr.device)
        if users is not None and (attention and pooled is None or self.use_kg and k is None):
            hist, seg, lengths = histories or self._histories(users)
        e = 0.0
        if self.use_lm:
            if self.one_pass:
                ut = self._content("user_text")
                e = self.fc(ut if users is None else ut[users])
            else:
                if pooled is None:
                    # pooling commutes with the linear map: W (sum a x) + b = sum a (W x) + b
                    uniq, inv = torch.unique(hist, return_inverse=True)
                    x = self._content("text")[uniq]
                    s, v = self.pool.logits(x)[inv], (x @ self.fc.weight.T)[inv]
                    pooled = AttentionPooling.pool(s, v, seg, len(users))
                e = pooled + self.fc.bias
        if self.user_emb is not None:
            e = e + (self.user_emb.weight if users is None else self.user_emb(users))
        if self.use_kg:
            if k is None:
                k = self.entity_emb.weight.new_zeros(len(users), self.entity_emb.embedding_dim)
                k = k.index_add_(0, seg, self.entity_emb(hist))
            k = k / lengths.clamp_min(1).unsqueeze(1).to(k.dtype)
            e = self.fuse(torch.cat([e, k], -1))
        return e

    # ---- training ---------------------------------------------------------------------------
    def _freeze_kg(self, frozen: bool = True) -> None:
        for p in (self.entity_emb.weight, *self.kge.parameters()):
            p.requires_grad_(not frozen)

    def on_epoch_start(self, epoch: int) -> None:
        if self.use_kg and self.kg_pretrain and not bool(self.kg_pretrained):
            self.pretrain_kg()

    def pretrain_kg(self) -> None:
        """``kg_pretrain_epochs`` epochs of the KG loss alone (TransR / TransE) over the
        triples, then the table frozen (class docstring). Seeded by the run's seed, like the
        epochs after it."""
        self._freeze_kg(False)
        params = [self.entity_emb.weight, *self.kge.parameters()]
        opt = torch.optim.Adam(params, lr=self._kg_lr)
        kg = self._triple_batches()
        rng = np.random.default_rng(int(torch.initial_seed()) % (2 ** 32))
        device = self.entity_emb.weight.device
        for epoch in range(self.kg_pretrain):
            total = 0.0
            for b in kg.epoch(rng, device):
                opt.zero_grad(set_to_none=True)
                loss = self.kge.loss(self.entity_emb(b["heads"]), b["relations"],
                                     self.entity_emb(b["tails"]), self.entity_emb(b["neg_tails"]))
                loss.backward()
                opt.step()
                total += float(loss.detach())
            log.info("LLMKGRec: KG pre-training epoch %d of %d, mean loss %.4f", epoch + 1,
                     self.kg_pretrain, total / max(1, len(kg)))
        for p in params:
            p.grad = None
        self._freeze_kg()
        self.kg_pretrained.fill_(True)

    def loss(self, batch):
        self._live = None  # the language model's vectors of this step (lm_finetune)
        try:
            return self._loss(batch)
        finally:
            self._live = None

    def _loss(self, batch):
        kg = self.use_kg and self.kg_weight and len(batch.get("heads", ()))
        kg_rows = None
        if kg:  # the triples in relation order (TransR's loss is a mean: the order is free)
            order = torch.argsort(batch["relations"], stable=True)
            rel = batch["relations"][order]
            kg_rows = torch.cat([batch[k][order] for k in ("heads", "tails", "neg_tails")])
        loss, step = 0.0, None
        if "users" in batch:
            users, neg = batch["users"], batch["neg_items"]
            items = torch.cat([batch["pos_items"].unsqueeze(1), neg.reshape(len(users), -1)], 1)
            uniq, at = torch.unique(users, return_inverse=True)
            if len(uniq) >= self.WHOLE_CATALOGUE_SHARE * self.n_users:
                # every user and item once per step (the batch touches most of them)
                step = self._step_inputs(kg_rows)
                zu, zi = self._users(step=step), self._items(step=step)
            else:  # the batch's distinct users and items
                uniq_i, items = torch.unique(items, return_inverse=True)
                zu, zi, users = self._users(uniq), self._items(uniq_i), at
            # the MLP's first layer on each distinct vector, then the pairs' rows
            a, b = self.matcher.user_part(zu), self.matcher.item_part(zi)
            scores = self.matcher.head(a.index_select(0, users).unsqueeze(1) + b.index_select(
                0, items.reshape(-1)).view(*items.shape, -1))            # [B, 1 + negatives]
            loss = bpr_loss(scores[:, 0], scores[:, 1:] if neg.dim() == 2 else scores[:, 1])
            if self.reg_weight:
                loss = loss + self.reg_weight * l2_of_rows((zu, users), (zi, items),
                                                           n=len(users))
        if kg:
            ent = (step[3] if step is not None else
                   self.entity_emb.weight.index_select(0, kg_rows))
            h, t, t_neg = ent.view(3, -1, ent.shape[-1]).unbind(0)
            loss = loss + self.kg_weight * self.kge.loss(h, rel, t, t_neg)
        return loss

    def _triple_batches(self):
        """The KG's triples in shuffled batches of ``train_batch_size`` (joint training's KG
        batches and the pre-training's)."""
        from ..data.batches import KGTripleBatches

        return KGTripleBatches(self.triples, self.entity_emb.num_embeddings, self._kg_batch,
                               self.n_relations)

    def make_batches(self, split, config):
        from ..data.batches import JointBatches, PairwiseBatches

        cf = PairwiseBatches.from_split(split, config)
        if not self.use_kg or self.kg_pretrain:
            return cf
        return JointBatches(cf, self._triple_batches())

    # ---- scoring ----------------------------------------------------------------------------
    def train(self, mode: bool = True):
        self._cache = self._live = None
        return super().train(mode)

    def prepare_eval(self):
        self._cache = self._all_vectors()

    def _all_vectors(self):
        step = self._step_inputs()
        return self._users(step=step), self._items(step=step)

    def _vectors(self):
        return self._cache if self._cache is not None else self._all_vectors()

    def score_all(self, users):
        zu, zi = self._vectors()
        return self.matcher.score_all(zu[users], zi, self.chunk)

    def score(self, users, items):
        zu, zi = self._vectors()
        return self.matcher(zu[users], zi[items])

    def item_vectors(self):
        return self._vectors()[1]

    # ---- the model's own reasons -------------------------------------------------------------
    def reads_history(self) -> bool:
        return not self.one_pass and (self.use_lm or self.use_kg)

    def _history_of(self, user: int) -> torch.Tensor:
        """``user``'s training items (dense ids)."""
        return self.hist[int(self.indptr[user]):int(self.indptr[user + 1])]

    def history_items(self, user: int) -> list[int]:
        return self._history_of(user).tolist()

    def scores_without_history(self, user, item, removals):
        if not self.reads_history():
            raise NotImplementedError("LLMKGRec reads the history as one pre-encoded text "
                                      "(user_encoder: one_pass) or not at all: no reasons")
        own = self._history_of(user)
        rows = [own[~torch.isin(own, torch.as_tensor(items, dtype=own.dtype,
                                                     device=own.device))] if items else own
                for items in removals]
        lengths = torch.as_tensor([len(r) for r in rows], device=own.device)
        seg = torch.repeat_interleave(torch.arange(len(rows), device=own.device), lengths)
        users = torch.full((len(rows),), user, dtype=torch.long, device=own.device)
        zu = self._users(users, histories=(torch.cat(rows), seg, lengths))
        zi = self._vectors()[1][item]
        return self.matcher(zu, zi.expand(len(rows), -1))
