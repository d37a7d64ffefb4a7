"""Multimodal item features: item content, text and image encoders, and an on-disk feature store.

Models call one function::

    from mmkgrec.features import item_feature_matrix
    X, mask = item_feature_matrix(dataset, "text", config)   # or "image"

``X`` is float32 ``[dataset.n_items, dim]`` aligned with the dataset's dense item ids; ``mask`` is
bool ``[n_items]``, True where the item has content of that modality that was encoded. Rows of
items without content (no text fields, no image, or an input that could not be read) are zeros.
Features are computed through the store (:mod:`.store`) the first time and loaded from it
afterwards, memory-mapped.

Config keys (``configs/defaults.yaml``): ``text_encoder`` (default ``minilm``), ``image_encoder``
(default ``descriptor``, the hand-crafted descriptor that needs no weights), ``text_fields``,
``image_dir``, ``image_column``, ``feature_batch_size``; ``device`` and ``show_progress`` are
honoured. Modules: :mod:`.content` (texts, image references, decoding), :mod:`.encoders`
(encoder registry), :mod:`.store` (the store).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from ..errors import MMKGRecError
from .encoders import Encoder, HandcraftedDescriptor, encoder_specs, make_encoder, register_encoder
from .store import ExtractResult, FeatureStore, cache_root, store_info

log = logging.getLogger(__name__)

__all__ = ["Encoder", "ExtractResult", "FeatureStore", "HandcraftedDescriptor", "cache_root",
           "encoder_specs", "extract_features", "item_feature_matrix", "make_encoder",
           "register_encoder", "store_info"]

DEFAULTS = {"text_encoder": "minilm", "image_encoder": "descriptor", "text_fields": None,
            "image_dir": None, "image_column": None, "feature_batch_size": 64, "device": "cpu",
            "show_progress": False}


def _get(config: Mapping | None, key: str):
    if config is None:
        return DEFAULTS[key]
    try:  # a Config raises ConfigError (not KeyError) for an unknown key, even for `in`
        return config[key]
    except (KeyError, MMKGRecError):
        return DEFAULTS[key]


def extract_features(dataset, modality: str, config: Mapping | None = None, *,
                     encoder: Encoder | str | None = None, root=None) -> ExtractResult:
    """Compute (or load) ``modality`` features of every item of ``dataset``; see
    :func:`item_feature_matrix`. Returns the matrix, the mask and the run's statistics."""
    from . import content

    if modality not in ("text", "image"):
        raise MMKGRecError(f"modality must be 'text' or 'image', got {modality!r}")
    spec = encoder if encoder is not None else _get(config, f"{modality}_encoder")
    enc = make_encoder(spec, device=_get(config, "device"), modality=modality)
    if modality == "text":
        inputs = content.item_texts(dataset, _get(config, "text_fields"))
        keys = [None if t is None else content.text_key(t) for t in inputs]
        prepare = None
    else:
        image_dir, image_column = _get(config, "image_dir"), _get(config, "image_column")
        if not image_dir and not image_column:
            log.warning("dataset %s: no image_dir or image_column is configured; every item is "
                        "recorded as having no image", dataset.name)
            inputs = [None] * dataset.n_items
        else:
            inputs = content.item_image_refs(dataset, image_dir, image_column)
        keys = [None if r is None else content.image_key(r) for r in inputs]
        draft = enc.image_draft_size

        def prepare(ref):
            return content.load_image(ref, draft=draft)
    store = FeatureStore.for_dataset(dataset, modality, enc, root)
    info = {"dataset": dataset.name, "source": str(getattr(dataset, "source", ""))}
    return store.extract(dataset.item_ids, inputs, keys, enc, prepare=prepare,
                         batch_size=int(_get(config, "feature_batch_size")),
                         show_progress=bool(_get(config, "show_progress")), info=info)


def item_feature_matrix(dataset, modality: str, config: Mapping | None = None
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Item features of one modality, aligned with ``dataset``'s dense item ids.

    ``modality``: ``"text"`` or ``"image"``. ``config``: a mapping (a :class:`mmkgrec.config.Config`
    or a dict) with the keys ``text_encoder``/``image_encoder`` (a spec such as ``minilm``,
    ``bert:<path>:mean``, ``clip-image:<path>``, ``vit:<path>``, ``descriptor``), ``text_fields``,
    ``image_dir``, ``image_column``, ``feature_batch_size``; missing keys take the defaults.

    Returns ``(matrix, mask)``: float32 ``[n_items, dim]`` with zero rows where the item has no
    content, and bool ``[n_items]``, True where the item has content that was encoded. Features
    missing from the store under ``$MMKGREC_CACHE`` are computed and written there first.
    """
    res = extract_features(dataset, modality, config)
    return res.matrix, res.mask
