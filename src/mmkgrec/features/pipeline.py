"""Item features through the store: :func:`item_feature_matrix` (what models receive),
:func:`extract_features` (encode what the store lacks), :func:`export_features` /
:func:`read_feature_file` (the ``file:<path>.npz`` exchange format). See the package docstring."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from ..config import config_value, withheld_item_columns
from ..errors import MMKGRecError
from .base import Encoder
from .encoders import make_encoder
from .store import ExtractResult, FeatureStore

log = logging.getLogger(__name__)

FILE_SPEC = "file:"


def read_feature_file(dataset, modality: str, path: str) -> ExtractResult:
    """Features of ``dataset``'s items from an ``.npz`` of ``item_ids`` and ``features``
    (``modality`` names them in the log)."""
    import time
    import zipfile

    t0 = time.perf_counter()
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("item_ids", "features") if k not in z.files]
            if missing:
                raise MMKGRecError(f"{path}: feature file lacks {missing} (it needs item_ids and "
                                   f"features; it has {sorted(z.files)})")
            ids, feats = z["item_ids"], z["features"]
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise MMKGRecError(f"{path}: cannot read {modality} features ({e})") from None
    if feats.ndim != 2 or len(feats) != len(ids):
        raise MMKGRecError(f"{path}: features must be [len(item_ids), dim], got {feats.shape} for "
                           f"{len(ids)} ids")
    if not np.issubdtype(feats.dtype, np.number) or np.issubdtype(feats.dtype, np.complexfloating):
        raise MMKGRecError(f"{path}: features must be real numbers, got dtype {feats.dtype}")
    finite = np.isfinite(feats).all(axis=1)
    if not finite.all():
        k = int(np.flatnonzero(~finite)[0])
        raise MMKGRecError(f"{path}: the {modality} features of item '{ids[k]}' (row {k}) hold "
                           f"NaN or inf; {int((~finite).sum())} row(s) are not finite")
    row = {str(r): k for k, r in enumerate(ids)}
    if len(row) != len(ids):
        raise MMKGRecError(f"{path}: item_ids has {len(ids) - len(row)} duplicate ids")
    where = np.asarray([row.get(str(r), -1) for r in dataset.item_ids], dtype=np.int64)
    mask = where >= 0
    matrix = np.zeros((dataset.n_items, feats.shape[1]), dtype=np.float32)
    matrix[mask] = feats[where[mask]]
    unused = len(ids) - int(mask.sum())
    log.info("%s features of %s from %s: %d of %d items (%d without a row, %d rows for items "
             "the dataset lacks)", modality, dataset.name, path, int(mask.sum()), dataset.n_items,
             int((~mask).sum()), unused)
    stats = {"encoder": f"{FILE_SPEC}{path}", "version": None, "dim": int(feats.shape[1]),
             "items": int(dataset.n_items), "encoded": 0, "reused": int(mask.sum()),
             "missing": int((~mask).sum()), "failed": 0, "seconds": time.perf_counter() - t0,
             "items_per_s": None, "store": str(path)}
    return ExtractResult(matrix, mask, stats)


def export_features(dataset, modality: str, config: Mapping | None, out, *,
                    encoder: Encoder | str | None = None) -> ExtractResult:
    """Write ``dataset``'s ``modality`` features (through the store) to ``out`` (``.npz``), the
    items that have content only, for ``<modality>_encoder: file:<out>`` elsewhere."""
    from pathlib import Path

    from .store import _atomic_write

    out = Path(out)
    if out.suffix != ".npz":
        raise MMKGRecError(f"{out}: feature files are .npz archives; name it <something>.npz")
    res = extract_features(dataset, modality, config, encoder=encoder)
    out.parent.mkdir(parents=True, exist_ok=True)
    ids = np.asarray([str(r) for r in dataset.item_ids])[res.mask]
    _atomic_write(out, lambda f: np.savez(f, item_ids=ids, features=res.matrix[res.mask]))
    return res

def extract_features(dataset, modality: str, config: Mapping | None = None, *,
                     encoder: Encoder | str | None = None, root=None) -> ExtractResult:
    """Compute (or load) ``modality`` features of every item of ``dataset``; see
    :func:`item_feature_matrix`. Returns the matrix, the mask and the run's statistics."""
    from . import content

    if modality not in ("text", "image"):
        raise MMKGRecError(f"modality must be 'text' or 'image', got {modality!r}")
    spec = encoder if encoder is not None else config_value(config, f"{modality}_encoder")
    if isinstance(spec, str) and spec.startswith(FILE_SPEC):
        return read_feature_file(dataset, modality, spec[len(FILE_SPEC):])
    enc = make_encoder(spec, device=config_value(config, "device"), modality=modality)
    if modality == "image" and config_value(config, "image_saliency_crop"):
        from .saliency import SaliencyCropped

        enc = SaliencyCropped(enc)
    if modality == "text":
        inputs = content.item_texts(dataset, config_value(config, "text_fields"),
                                    withheld=withheld_item_columns(config))
        keys = [None if t is None else content.text_key(t) for t in inputs]
        prepare = None
    else:
        image_dir, image_column = config_value(config, "image_dir"), config_value(config, "image_column")
        if not image_dir and not image_column:
            log.warning("dataset %s: no image_dir or image_column is configured; every item is "
                        "recorded as having no image", dataset.name)
            inputs = [None] * dataset.n_items
        else:
            inputs = content.item_image_refs(
                dataset, image_dir, image_column,
                allow_urls=bool(config_value(config, "allow_url_images")),
                allow_outside=bool(config_value(config, "allow_outside_paths")))
        keys = [None if r is None else content.image_key(r) for r in inputs]
        draft, reduce = enc.image_draft_size, enc.image_reduce
        url_timeout = float(config_value(config, "url_timeout_s"))
        max_bytes = int(config_value(config, "max_image_bytes"))
        converted: dict[str, str] = {}  # image ref -> the mode it was converted from

        def prepare(ref):
            im = content.load_image(ref, draft=draft, reduce=reduce, timeout=url_timeout,
                                    max_bytes=max_bytes)
            if "source_mode" in im.info:
                converted[ref] = im.info["source_mode"]
            return im
    store = FeatureStore.for_dataset(dataset, modality, enc, root)
    info = {"dataset": dataset.name, "source": str(getattr(dataset, "source", ""))}
    res = store.extract(dataset.item_ids, inputs, keys, enc, prepare=prepare,
                        batch_size=int(config_value(config, "feature_batch_size")),
                        show_progress=bool(config_value(config, "show_progress")), info=info)
    if modality == "image" and converted:
        ids = {ref: str(i) for i, ref in zip(dataset.item_ids, inputs) if ref is not None}
        res.stats["converted"] = {ids[ref]: mode for ref, mode in converted.items()}
        log.info("%s: %d images converted to RGB before encoding (item: source mode) %s",
                 dataset.name, len(converted), dict(list(res.stats["converted"].items())[:20]))
    return res


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


def user_history_texts(split, config=None) -> list[str | None]:
    """One text per dense user id: the texts of the user's training items in time order (file
    order without timestamps), joined by ``"; "``; ``None`` for a user without training items
    or whose items have no text."""
    from . import content

    item_text = content.item_texts(split.dataset, config_value(config, "text_fields"),
                                   withheld=withheld_item_columns(config))
    train = split.train
    order = (np.lexsort((train.timestamp, train.user)) if train.timestamp is not None
             else np.argsort(train.user, kind="stable"))
    parts: list[list[str]] = [[] for _ in range(split.n_users)]
    for u, i in zip(train.user[order].tolist(), train.item[order].tolist()):
        if item_text[i] is not None:
            parts[u].append(item_text[i])
    return ["; ".join(p) if p else None for p in parts]


def text_tower(split, config=None, *, users: bool = False):
    """A :class:`.tower.TextTower` (the language model ``text_encoder`` with gradients, for
    fine-tuning) over the item texts, or with ``users`` over each user's history as one text
    (:func:`user_history_texts`): the texts the store encodes for ``text`` and ``user_text``."""
    from . import content
    from .tower import TextTower

    spec = config_value(config, "text_encoder")
    if isinstance(spec, str) and spec.startswith(FILE_SPEC):
        raise MMKGRecError(f"text_encoder {spec}: a feature file holds vectors, not a language "
                           "model to fine-tune (minilm, gemma3-270m, hf:<path>)")
    enc = make_encoder(spec, device=config_value(config, "device"), modality="text")
    texts = (user_history_texts(split, config) if users else
             content.item_texts(split.dataset, config_value(config, "text_fields"),
                                withheld=withheld_item_columns(config)))
    return TextTower(enc, texts)


def user_history_matrix(split, config=None) -> tuple[np.ndarray, np.ndarray]:
    """``(matrix [n_users, dim], mask [n_users])``: each user's training history as one text
    (:func:`user_history_texts`) through ``text_encoder`` in one pass, kept in the feature store
    under the modality ``user_text`` (keyed by the text, so another split re-encodes the users
    whose history changed). Texts longer than the encoder's window are truncated and counted."""
    from . import content

    spec = config_value(config, "text_encoder")
    if isinstance(spec, str) and spec.startswith(FILE_SPEC):
        raise MMKGRecError(f"text_encoder {spec}: a feature file holds item vectors; the one-pass "
                           "user encoder needs a language model (minilm, gemma3-270m, hf:<path>)")
    enc = make_encoder(spec, device=config_value(config, "device"), modality="text")
    texts = user_history_texts(split, config)
    keys = [None if t is None else content.text_key(t) for t in texts]
    store = FeatureStore.for_dataset(split.dataset, "user_text", enc)
    res = store.extract(split.dataset.user_ids, texts, keys, enc,
                        batch_size=int(config_value(config, "feature_batch_size")),
                        show_progress=bool(config_value(config, "show_progress")),
                        info={"dataset": split.dataset.name, "what": "user histories"})
    return res.matrix, res.mask
