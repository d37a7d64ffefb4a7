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

from ..config import config_value
from ..errors import MMKGRecError
from .encoders import Encoder, HandcraftedDescriptor, encoder_specs, make_encoder, register_encoder
from .store import ExtractResult, FeatureStore, cache_root, store_info

log = logging.getLogger(__name__)

__all__ = ["Encoder", "ExtractResult", "FeatureStore", "HandcraftedDescriptor", "cache_root",
           "encoder_specs", "extract_features", "item_feature_matrix", "make_encoder",
           "register_encoder", "store_info"]

def extract_features(dataset, modality: str, config: Mapping | None = None, *,
                     encoder: Encoder | str | None = None, root=None) -> ExtractResult:
    """Compute (or load) ``modality`` features of every item of ``dataset``; see
    :func:`item_feature_matrix`. Returns the matrix, the mask and the run's statistics."""
    from . import content

    if modality not in ("text", "image"):
        raise MMKGRecError(f"modality must be 'text' or 'image', got {modality!r}")
    spec = encoder if encoder is not None else config_value(config, f"{modality}_encoder")
    enc = make_encoder(spec, device=config_value(config, "device"), modality=modality)
    if modality == "text":
        inputs = content.item_texts(dataset, config_value(config, "text_fields"))
        keys = [None if t is None else content.text_key(t) for t in inputs]
        prepare = None
    else:
        image_dir, image_column = config_value(config, "image_dir"), config_value(config, "image_column")
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
                         batch_size=int(config_value(config, "feature_batch_size")),
                         show_progress=bool(config_value(config, "show_progress", False)), info=info)


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
