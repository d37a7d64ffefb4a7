"""Visual theme words: the ImageNet classes an image encoder sees in each item's image.

For an encoder with an ImageNet classifier on top of its pooled features (the EfficientNet-Lite
encoders), the classifier applied to an item's stored feature vector gives exactly the network's
class probabilities for that image, so the theme words need no second pass over the images. The
top ``k`` classes per image and their probabilities are kept in the item's feature store folder,
beside the vectors (``theme-words-k<k>.npz``: raw item ids, class indices, probabilities, and the
store generation they were computed from), and recomputed only when the vectors change. These
are the "visual theme words" of MM-RACL-KAL's explanations (eq. 17).

Class names: ``data/imagenet_classes.tsv`` (index, WordNet synset id, lemmas; provenance in its
header); an item's label is the synset's first lemma.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from importlib import resources

import numpy as np

from ..config import config_value
from ..errors import MMKGRecError

log = logging.getLogger(__name__)



@functools.cache
def imagenet_classes() -> tuple[tuple[str, str], ...]:
    """The 1000 ImageNet-1k classes in classifier order: ``(synset id, label)``."""
    text = (resources.files("mmkgrec.features") / "data" / "imagenet_classes.tsv").read_text("utf-8")
    out = []
    for line in text.splitlines():
        if line and not line.startswith("#"):
            index, wnid, lemmas = line.split("\t")
            if int(index) != len(out):
                raise RuntimeError(f"imagenet_classes.tsv: index {index} out of order")
            out.append((wnid, lemmas.split(", ")[0]))
    if len(out) != 1000:
        raise RuntimeError(f"imagenet_classes.tsv holds {len(out)} classes, expected 1000")
    return tuple(out)


def top_classes(probs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most probable classes per row of ``probs`` [n, C], most probable first (ties:
    lower index first): indices int16 [n, k] and probabilities float32 [n, k]."""
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return order.astype(np.int16), np.take_along_axis(probs, order, axis=1).astype(np.float32)


def _theme_file(store, k: int):
    return store.folder / f"theme-words-k{k}.npz"


def _stored_themes(store, encoder, k: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(raw ids, classes, probabilities) of every row of ``store``, from its theme file when that
    matches the store's current vectors, else computed from them and written beside them."""
    from .store import _atomic_write, _locked

    with _locked(store.folder / ".lock"):
        man = store.manifest()
        stamp = f"{man['encoder']['version']}|{man['generation']}|{man['inputs_hash']}"
        path = _theme_file(store, k)
        if path.exists():
            try:
                with np.load(path, allow_pickle=False) as z:
                    if str(z["stamp"]) == stamp:
                        return z["ids"].tolist(), z["classes"], z["probs"]
            except (OSError, ValueError, KeyError) as e:
                log.warning("%s is unreadable (%s); theme words are recomputed", path, e)
        ids, matrix = store.load()
        classes = np.zeros((len(ids), k), dtype=np.int16)
        probs = np.zeros((len(ids), k), dtype=np.float32)
        for s in range(0, len(ids), 4096):
            classes[s:s + 4096], probs[s:s + 4096] = top_classes(encoder.classify(matrix[s:s + 4096]), k)

        def write(f):
            np.savez(f, ids=np.asarray(ids, dtype=str), classes=classes, probs=probs,
                     stamp=np.asarray(stamp))
        _atomic_write(path, write)
        log.info("%s: theme words (top %d ImageNet classes) of %d images written", store.folder,
                 k, len(ids))
        return list(ids), classes, probs


def item_theme_words(dataset, config: Mapping | None = None, k: int | None = None, *,
                     root=None) -> list[list[tuple[str, float]]]:
    """Per dense item id of ``dataset``, the top ``k`` ImageNet labels the configured image
    encoder (``image_encoder``) sees in the item's image, with their probabilities, most probable
    first; ``[]`` for an item without an (encodable) image. ``k`` defaults to the config's
    ``theme_words_k`` (5). Features missing from the store are extracted first."""
    from .pipeline import extract_features
    from .encoders import make_encoder
    from .store import FeatureStore

    k = int(k if k is not None else config_value(config, "theme_words_k"))
    if not 1 <= k <= 1000:
        raise MMKGRecError(f"theme_words_k must be between 1 and 1000, got {k}")
    spec = config_value(config, "image_encoder")
    enc = make_encoder(spec, device=config_value(config, "device"), modality="image")
    if not hasattr(enc, "classify"):
        raise MMKGRecError(f"image encoder '{enc.name}' has no ImageNet classifier, so it gives no "
                           "theme words; use image_encoder efficientnet-lite0, -lite1 or -lite2")
    res = extract_features(dataset, "image", config, encoder=enc, root=root)
    store = FeatureStore.for_dataset(dataset, "image", enc, root)
    ids, classes, probs = _stored_themes(store, enc, k)
    row = {r: n for n, r in enumerate(ids)}
    names = imagenet_classes()
    out: list[list[tuple[str, float]]] = []
    for raw, has in zip(dataset.item_ids, res.mask):
        n = row.get(str(raw)) if has else None
        out.append([] if n is None else
                   [(names[c][1], float(p)) for c, p in zip(classes[n].tolist(), probs[n].tolist())])
    return out
