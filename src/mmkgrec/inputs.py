"""What a model is built from: :class:`ModelInputs`, and :func:`build_inputs`, which assembles
exactly the inputs a model ``requires`` from a split.

The item content comes from the feature store (:func:`mmkgrec.features.item_feature_matrix`) when
training, or from the arrays a run directory keeps (``features=``) when a run is loaded, so a
loaded model is built from the very matrices it was trained on; the knowledge graph likewise
(``kg=``). Models receive the result and never read files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .config import config_value
from .data.dataset import Interactions

MODALITIES = ("text", "image")
#: one vector per user: the user's whole training history as one text through the text encoder
#: (LLMKGRec's one-pass user encoder); ``features["user_text"]`` is ``[n_users, dim]``
USER_TEXT = "user_text"
#: the item-content inputs a model may require: the pooled modalities and the packed token
#: states of the item texts (:mod:`mmkgrec.features.tokens`), each ``(matrix, mask)``
CONTENT_INPUTS = (*MODALITIES, "text_tokens")
#: the language model with gradients over the item texts (``text_tower``) or over each user's
#: history as one text (``user_text_tower``), for fine-tuning: ``extra[name]`` is a
#: :class:`mmkgrec.features.tower.TextTower`
TOWERS = ("text_tower", "user_text_tower")


@dataclass
class ModelInputs:
    """What a model is built from: sizes, the training interactions, and what it requires.

    ``features[modality]`` (``"text"`` / ``"image"``) is ``(matrix, mask)``: a float32
    ``[n_items, dim]`` tensor aligned with dense item ids (all-zero rows for items without that
    content) and a float32 ``[n_items]`` tensor, 1.0 where the item has that content;
    ``features["item_embeddings"]`` likewise (the ``item_embeddings`` file).
    ``extra["labels"]``: the classification labels of the *training* items only
    (:class:`mmkgrec.data.targets.TrainingLabels`)."""

    n_users: int
    n_items: int
    train: Interactions
    graph: torch.Tensor | None = None  # symmetric-normalised user-item adjacency (sparse CSR)
    kg: object | None = None  # mmkgrec.graph.kg.KnowledgeGraph, for models requiring "kg"
    features: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


def shuffle_item_rows(features: dict, seed: int) -> dict:
    """The control "features shuffled across items": one permutation of the item axis, drawn from
    ``numpy.random.default_rng(seed)``, applied to every modality's matrix and mask alike (an item
    receives all the content of one other item, and text-only and text+image runs shuffle text the
    same way). The multiset of rows is unchanged."""
    if not features:
        return features
    n = len(next(iter(features.values()))[0])
    perm = np.random.default_rng(seed).permutation(n)
    return {m: (mat[perm], mask[perm]) for m, (mat, mask) in features.items()}


def content_features(split, requires, config=None) -> dict:
    """``{modality: (matrix, mask)}`` (float32 ``[n_items, dim]``, bool ``[n_items]``; possibly
    read-only memory maps) from the feature store, for the modalities in ``requires``, in the fixed order
    ``text, image``; rows not permuted (see ``shuffle_features`` in :func:`build_inputs`)."""
    modalities = [m for m in CONTENT_INPUTS if m in requires]
    raw = {}
    for m in modalities:
        if m == "text_tokens":
            from .features.tokens import item_token_states

            res = item_token_states(split.dataset, config)
            mat, mask = res.packed, res.mask
        else:
            from .features import item_feature_matrix

            mat, mask = item_feature_matrix(split.dataset, m, config)
        raw[m] = (np.asarray(mat, dtype=np.float32), np.asarray(mask, dtype=bool))
    if USER_TEXT in requires:
        from .features import user_history_matrix

        mat, mask = user_history_matrix(split, config)
        raw[USER_TEXT] = (np.asarray(mat, dtype=np.float32), np.asarray(mask, dtype=bool))
    return raw


def build_inputs(split, requires: frozenset, device="cpu", config=None, features: dict | None = None,
                 kg=None) -> ModelInputs:
    """The inputs a model asks for in ``requires``: ``"graph"`` (symmetric-normalised adjacency),
    ``"kg"`` (:class:`mmkgrec.graph.kg.KnowledgeGraph` built with the config's ``kg_*`` keys, or
    ``kg`` when given), ``"text"`` / ``"image"`` (item content: ``features[modality] = (matrix,
    mask)`` when given, e.g. read back from a run directory, else
    :func:`content_features` from the feature store; rows permuted across items when config
    ``shuffle_features`` is true), ``"text_tower"`` / ``"user_text_tower"`` (the language model
    with gradients over the item texts / the users' history texts, in ``extra``)."""
    unknown = set(requires) - {"graph", "kg", "labels", "item_embeddings", USER_TEXT,
                               *CONTENT_INPUTS, *TOWERS}
    if unknown:
        raise NotImplementedError(f"inputs {sorted(unknown)} are not available in this version")
    inputs = ModelInputs(split.n_users, split.n_items, split.train)
    if "graph" in requires:
        from .graph.adjacency import bipartite_adjacency, sym_normalize, to_torch_csr

        adj = sym_normalize(bipartite_adjacency(split.train, split.n_users, split.n_items))
        inputs.graph = to_torch_csr(adj, device)
    modalities = [m for m in CONTENT_INPUTS if m in requires]
    if modalities:
        if features is None:
            features = content_features(split, requires, config)
        raw = {}
        for m in modalities:
            if m not in features:
                raise ValueError(f"the given features hold {sorted(features)}, not '{m}'")
            # copies: the store and a run directory may hand out read-only memory
            mat = np.array(features[m][0], dtype=np.float32)
            mask = np.array(features[m][1], dtype=bool)
            if mat.ndim != 2 or mat.shape[0] != split.n_items or mask.shape != (split.n_items,):
                raise ValueError(f"item features '{m}' have shapes {mat.shape} and {mask.shape}; "
                                 f"expected [{split.n_items}, dim] and [{split.n_items}]")
            finite = np.isfinite(mat).all(axis=1)
            if not finite.all():
                from .errors import NonFiniteError

                k = int(np.flatnonzero(~finite)[0])
                raise NonFiniteError(f"the {m} features of item '{split.dataset.item_ids[k]}' "
                                     f"hold NaN or inf ({int((~finite).sum())} item(s)); "
                                     "re-extract them or fix the feature file")
            raw[m] = (mat, mask)
        if config_value(config, "shuffle_features"):  # defaults: the schema's
            raw = shuffle_item_rows(raw, int(config_value(config, "seed")))
        inputs.features = {
            m: (torch.from_numpy(mat).to(device),
                torch.from_numpy(mask.astype(np.float32)).to(device))
            for m, (mat, mask) in raw.items()}
    if USER_TEXT in requires:
        if features is None or USER_TEXT not in features:
            features = {**(features or {}), **content_features(split, {USER_TEXT}, config)}
        mat, mask = features[USER_TEXT]
        if np.shape(mat)[0] != split.n_users or np.shape(mask) != (split.n_users,):
            raise ValueError(f"user_text features have shapes {np.shape(mat)} and "
                             f"{np.shape(mask)}; expected [{split.n_users}, dim] and "
                             f"[{split.n_users}]")
        inputs.features[USER_TEXT] = (
            torch.from_numpy(np.array(mat, dtype=np.float32)).to(device),
            torch.from_numpy(np.asarray(mask).astype(np.float32)).to(device))
    if "kg" in requires:
        if kg is None:
            from .graph.kg import KnowledgeGraph

            kg = KnowledgeGraph.from_split(split, config)
        inputs.kg = kg
    if "item_embeddings" in requires:
        if features is not None and "item_embeddings" in features:
            mat, mask = features["item_embeddings"]
        else:
            from .features import read_feature_file

            res = read_feature_file(split.dataset, "item_embeddings",
                                    config_value(config, "item_embeddings"))
            mat, mask = res.matrix, res.mask
        inputs.features["item_embeddings"] = (
            torch.from_numpy(np.array(mat, dtype=np.float32)).to(device),
            torch.from_numpy(np.asarray(mask).astype(np.float32)).to(device))
    for name in TOWERS:
        if name in requires:
            from .features import text_tower

            inputs.extra[name] = text_tower(split, config, users=name == "user_text_tower")
    if "labels" in requires:
        from .data.targets import training_labels

        inputs.extra["labels"] = training_labels(split)
    return inputs
