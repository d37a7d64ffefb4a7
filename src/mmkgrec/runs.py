"""The run directory's own data: what a trained run keeps so that it answers without the dataset.

Besides ``config.yaml``, ``model.safetensors``, ``metrics.json``, ``per_user_test.npz`` and
``log.txt``, a run directory holds (all arrays in safetensors, read with memory maps; nothing is
ever unpickled):

``run.json``
    The manifest: format, a random ``run_id`` that every file below carries in its metadata (so a
    file copied in from another run is refused), model, dataset, sizes, the split's method and
    statistics, the dataset's description, the item columns and their types, the dataset's image
    folder, and which optional files exist.
``ids.safetensors``
    Raw user and item ids (dense id ``k`` is entry ``k``), as one UTF-8 blob plus offsets each.
``exclude.safetensors``
    Every (user, item) pair the dataset holds (all its interactions, a given test file included),
    as CSR (``indptr`` int64, ``indices`` int32, sorted, unique): what ``recommend`` leaves out.
``split.safetensors``
    The split's parts ``train`` / ``valid`` / ``test`` (user and item int32, rating and timestamp
    when present, rows in the split's order, which the sequential code relies on) and, for a CTR
    split, the labelled pairs of each part.
``items.safetensors``
    The item table for display (titles, attributes: token, token_seq and float columns) and the
    raw KG entity linked to each item.
``kg.safetensors`` (when the run has a KG)
    The knowledge graph over dense ids (:class:`~mmkgrec.graph.kg.KnowledgeGraph`: triples,
    entity and relation tokens; entity ``k < n_items`` is item ``k``) that a KG model was built
    from, or, for other models on a dataset with a KG, the one the run's ``kg_*`` keys give.
``features.safetensors`` (content models)
    The item feature matrices and masks the model was built from, before any
    ``shuffle_features`` permutation.
``item_vectors.safetensors`` and ``index/`` (models with item vectors)
    The item vectors and a cosine :class:`~mmkgrec.retrieval.ItemIndex` over them, for
    ``similar_items``.

Strings are stored as a UTF-8 blob (uint8) plus int64 offsets, so one long id costs its own bytes
only. Every reader error names the file: :class:`RunFileError`.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path

import numpy as np

from .errors import ChecksumError, MMKGRecError, OutputExistsError, ResumeMismatchError

log = logging.getLogger(__name__)

FORMAT = "mmkgrec.run/1"
MANIFEST = "run.json"
FILES = {"ids": "ids.safetensors", "exclude": "exclude.safetensors",
         "split": "split.safetensors", "items": "items.safetensors", "kg": "kg.safetensors",
         "features": "features.safetensors", "vectors": "item_vectors.safetensors"}
INDEX_DIR = "index"
PARTS = ("train", "valid", "test")
#: the partial run's record of the data and split it trains on (checked by --resume)
FINGERPRINT = "fingerprint.json"
#: every name a run directory's own files have (what --overwrite may replace, nothing else)
RUN_FILES = ("config.yaml", "log.txt", "model.safetensors", "per_user_test.npz", "metrics.json",
             MANIFEST, FINGERPRINT, *FILES.values(), INDEX_DIR, "checkpoint")
#: keys --resume may change: they change neither the data, the model nor an epoch's updates
RESUMABLE_KEYS = frozenset({"epochs", "threads", "device", "show_progress", "eval_batch_size"})


class RunFileError(MMKGRecError):
    """A file of a run directory is missing, unreadable, truncated or from elsewhere; the message
    names the file."""

    def __init__(self, path, message: str):
        super().__init__(f"{path}: {message}")
        self.path = str(path)


class UnknownIdError(MMKGRecError, KeyError):
    """A user or item id the run does not know; the message names the id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def new_run_id() -> str:
    return uuid.uuid4().hex


# ---- strings ---------------------------------------------------------------------------

def pack_strings(values) -> tuple[np.ndarray, np.ndarray]:
    """``(blob uint8, offsets int64 [n + 1])``: the UTF-8 bytes of ``str(v)`` for each value,
    concatenated; value ``k`` is ``blob[offsets[k]:offsets[k + 1]]``."""
    encoded = [str(v).encode("utf-8") for v in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    if encoded:
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
    blob = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    return blob, offsets


def unpack_strings(blob: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The object array of ``str`` that :func:`pack_strings` packed."""
    data = np.asarray(blob, dtype=np.uint8).tobytes()
    off = np.asarray(offsets, dtype=np.int64)
    n = len(off) - 1
    out = np.empty(max(n, 0), dtype=object)
    if n <= 0:
        return out
    if data.isascii():  # one decode, then slices (offsets are character offsets too)
        text = data.decode("ascii")
        out[:] = [text[a:b] for a, b in zip(off[:-1].tolist(), off[1:].tolist())]
    else:
        out[:] = [data[a:b].decode("utf-8") for a, b in zip(off[:-1].tolist(), off[1:].tolist())]
    return out


def _put_strings(arrays: dict, key: str, values) -> None:
    arrays[f"{key}.blob"], arrays[f"{key}.offsets"] = pack_strings(values)


def _get_strings(arrays: dict, key: str) -> np.ndarray:
    return unpack_strings(arrays[f"{key}.blob"], arrays[f"{key}.offsets"])


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and v != v)


# ---- the run directory as a whole: claiming, committing, failing ------------------------

def is_run(folder: Path) -> bool:
    """Whether ``folder`` holds a finished run (its manifest, or a config and weights)."""
    folder = Path(folder)
    return (folder / MANIFEST).is_file() or ((folder / "config.yaml").is_file()
                                              and (folder / "model.safetensors").is_file())


def check_out(out: Path, overwrite: bool = False) -> None:
    """OutputExistsError unless ``out`` is free: absent, an empty folder, or (with
    ``overwrite``) a run, whose own files alone :func:`commit` replaces."""
    out = Path(out)
    if not out.exists() and not out.is_symlink():
        return
    if not out.is_dir():
        raise OutputExistsError(f"{out}: exists and is not a folder; choose another --out")
    if not any(out.iterdir()):
        return
    if is_run(out):
        if overwrite:
            return
        raise OutputExistsError(f"{out}: already holds a run; choose another --out, or pass "
                                "--overwrite to replace that run's files")
    raise OutputExistsError(f"{out}: exists, is not empty and is not a run; refusing to write "
                            "into it (choose another --out)")


def _is_partial(folder: Path) -> bool:
    return all(p.name in RUN_FILES or p.name.startswith(".") for p in folder.iterdir())


def check_partial(partial: Path, resume: bool) -> None:
    """OutputExistsError when ``partial`` (``<out>.partial``) exists but is not a partial run
    (so neither a fresh run may remove it nor a resume continue it)."""
    if partial.exists() and (not partial.is_dir() or not _is_partial(partial)):
        raise OutputExistsError(f"{partial}: exists and is not an interrupted run (it holds "
                                "other files); move it away")


def remove_partial(partial: Path) -> None:
    """Remove an interrupted run's folder (only after :func:`check_partial`)."""
    import shutil

    shutil.rmtree(partial, ignore_errors=True)


def commit(partial: Path, out: Path) -> None:
    """Move the finished run in ``partial`` to ``out``: a rename when ``out`` is absent or
    empty; else (a run, under --overwrite) the run's own files in ``out`` are replaced one by
    one and every other file there stays."""
    import shutil

    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    if not out.exists():
        os.replace(partial, out)
        return
    for name in RUN_FILES:
        old = out / name
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
        elif old.exists() or old.is_symlink():
            old.unlink()
    for p in partial.iterdir():
        os.replace(p, out / p.name)
    partial.rmdir()


def resumable(partial: Path) -> bool:
    return (partial / "checkpoint" / "LATEST").is_file()


def after_failure(partial: Path, error: BaseException, keep: bool = False) -> None:
    """Clean up after ``error`` stopped a run being written to ``partial``: keep it when it
    holds a checkpoint and the run may be resumed (interrupted, killed, out of disk or memory)
    or when ``keep`` (the interrupted run a --resume continued: never removed by a later
    failure), else remove it, so that no half-written folder stays behind."""
    if not partial.exists():
        return
    if (keep or not isinstance(error, MMKGRecError)) and resumable(partial):
        _remove_temporaries(partial)
        log.warning("the interrupted run is kept in %s; continue it with --resume", partial)
        return
    remove_partial(partial)


def _remove_temporaries(folder: Path) -> None:
    """The temporary files and folders a write cut short left in ``folder`` (``*.tmp*``)."""
    import shutil

    for p in sorted(folder.rglob("*.tmp*"), key=lambda p: len(p.parts), reverse=True):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    """``text`` to ``path`` through a temporary file in the same folder, renamed at the end (a
    failure leaves neither a half-written ``path`` nor the temporary file)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_weights(path: Path, state: dict, meta: dict) -> None:
    """Model weights (torch tensors) to ``path`` as safetensors, atomically."""
    from safetensors.torch import save_file

    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        save_file(state, str(tmp), metadata=meta)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# ---- fingerprints and checksums -----------------------------------------------------------

def _digest(*arrays, dtype=np.int64) -> str:
    """The first 32 hex digits of the SHA-256 of ``arrays``, each as ``dtype`` with its shape."""
    import hashlib

    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a, dtype=dtype))
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:32]


def _ids_digest(user_ids, item_ids) -> str:
    import hashlib

    h = hashlib.sha256()
    for ids in (user_ids, item_ids):
        blob, offsets = pack_strings(ids)
        h.update(offsets.tobytes())
        h.update(blob.tobytes())
    return h.hexdigest()[:32]


def split_digest(split) -> str:
    arrays = []
    for part in PARTS:
        inter = split.part(part)
        arrays += [inter.user, inter.item]
    for part, inter in sorted((getattr(split, "labelled", None) or {}).items()):
        arrays += [inter.user, inter.item]
    return _digest(*arrays)


def fingerprint(dataset, split) -> dict:
    """``{"data": ..., "split": ...}``: digests of the dataset's ids and interactions (every
    (user, item) pair) and of the split's parts, recorded with a run and checked by
    ``--resume`` and :func:`mmkgrec.load`."""
    indptr, indices = exclusion_csr(dataset)
    return {"data": _ids_digest(dataset.user_ids, dataset.item_ids) + _digest(indptr, indices),
            "split": split_digest(split)}


def features_digest(features: dict | None) -> dict:
    """``{modality: digest}`` of the raw item features a model was built from (each ``(matrix,
    mask)`` as float32, shapes included), for the run's fingerprint: two runs with the
    same data, split and seed that differ only in these vectors (a feature store built on another
    machine, say) then say so. Empty without features."""
    return {m: _digest(mat, np.asarray(mask, dtype=bool), dtype=np.float32)
            for m, (mat, mask) in sorted((features or {}).items())}


def file_sha256(path: Path) -> str:
    import hashlib

    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def check_resume(partial: Path, config, fp: dict) -> None:
    """ResumeMismatchError unless the interrupted run in ``partial`` was started with
    ``config`` but for :data:`RESUMABLE_KEYS` (``epochs`` may only grow) and on the same data
    and split (``fp``, :func:`fingerprint`)."""
    import yaml

    cfg_path = partial / "config.yaml"
    if not cfg_path.is_file():
        return  # nothing was started: a fresh run
    try:
        old = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise RunFileError(cfg_path, f"unreadable ({_first(e)}); remove {partial} to start "
                           "again") from None
    if not isinstance(old, dict):
        raise RunFileError(cfg_path, f"not a configuration; remove {partial} to start again")
    from .config_schema import KEYS

    new = config.to_dict()
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if key not in old and key in KEYS:
            # a key the library gained after the run started: the run ran with what its
            # default keeps (a new key defaults to the behaviour before it)
            a = KEYS[key].default
        if a == b or key in RESUMABLE_KEYS:
            continue
        raise ResumeMismatchError(f"--resume: config key '{key}' is {b!r}, but the interrupted "
                                  f"run in {partial} used {a!r}; resume may change only "
                                  f"{sorted(RESUMABLE_KEYS)} (epochs only upwards). Use another "
                                  "--out for a new run")
    if isinstance(old.get("epochs"), int) and new["epochs"] < old["epochs"]:
        raise ResumeMismatchError(f"--resume: config key 'epochs' is {new['epochs']}, below the "
                                  f"{old['epochs']} of the interrupted run in {partial}; epochs "
                                  "may only increase")
    fp_path = partial / FINGERPRINT
    if fp_path.is_file():
        old_fp = read_json(fp_path, "fingerprint")
        for what in ("data", "split"):
            if old_fp.get(what) != fp.get(what):
                raise ResumeMismatchError(f"--resume: the {what} differ from those the "
                                          f"interrupted run in {partial} trained on ({fp_path}); "
                                          "the dataset's files changed. Use another --out for a "
                                          "new run")


def _first(e: Exception) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0][:200]


# ---- writing ---------------------------------------------------------------------------

def _save(path: Path, arrays: dict, meta: dict) -> None:
    from safetensors.numpy import save_file

    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        save_file(arrays, str(tmp), metadata={k: str(v) for k, v in meta.items()})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _small_int(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if len(a) and (a.min() < np.iinfo(np.int32).min or a.max() > np.iinfo(np.int32).max):
        return a.astype(np.int64)
    return a.astype(np.int32)


def exclusion_csr(dataset) -> tuple[np.ndarray, np.ndarray]:
    """``(indptr int64 [n_users + 1], indices int32)``: each user's items anywhere in the
    dataset (its interactions and a given test file), sorted and unique."""
    users, items = [dataset.inter.user], [dataset.inter.item]
    if dataset.given_test is not None:
        users.append(dataset.given_test.user)
        items.append(dataset.given_test.item)
    n_items = dataset.n_items
    keys = np.unique(np.concatenate(users) * n_items + np.concatenate(items))
    u, i = keys // n_items, keys % n_items
    indptr = np.zeros(dataset.n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(u, minlength=dataset.n_users), out=indptr[1:])
    return indptr, i.astype(np.int32)


def _interactions(arrays: dict, prefix: str, inter) -> dict:
    arrays[f"{prefix}.user"] = _small_int(inter.user)
    arrays[f"{prefix}.item"] = _small_int(inter.item)
    cols = {}
    for col in ("rating", "timestamp"):
        v = getattr(inter, col)
        if v is not None:
            v = np.asarray(v)
            arrays[f"{prefix}.{col}"] = v
            cols[col] = str(v.dtype)
    return {"rows": len(inter), **cols}


def _item_columns(arrays: dict, dataset) -> list[dict]:
    """The item table's columns, each under ``col<j>.*``; returns their names and types."""
    out = []
    for j, (name, col) in enumerate(dataset.item_features.items()):
        typ = dataset.item_feature_types.get(name, "token")
        key = f"col{j}"
        if typ == "float":
            arrays[f"{key}.values"] = np.asarray(col, dtype=np.float64)
        elif typ in ("token_seq", "float_seq"):
            flat, counts = [], []
            for v in col:
                vals = [] if _missing(v) else list(v) if isinstance(v, (list, tuple, np.ndarray)) else [v]
                flat += vals
                counts.append(len(vals))
            _put_strings(arrays, key, flat)
            arrays[f"{key}.indptr"] = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
        else:
            typ = "token"
            present = np.array([not _missing(v) for v in col], dtype=bool)
            _put_strings(arrays, key, ["" if not p else v for v, p in zip(col, present)])
            arrays[f"{key}.present"] = present
        out.append({"name": name, "type": typ})
    if dataset.item_entity is not None:
        ent = list(dataset.item_entity)
        present = np.array([not _missing(v) for v in ent], dtype=bool)
        _put_strings(arrays, "item_entity", ["" if not p else v for v, p in zip(ent, present)])
        arrays["item_entity.present"] = present
    return out


def image_folder(dataset, config) -> str | None:
    """The absolute path of the dataset's image folder (config ``image_dir``), when it exists."""
    from .config import config_value

    image_dir = config_value(config, "image_dir")
    if not image_dir:
        return None
    from .features.content import dataset_folder

    folder = Path(os.path.expanduser(str(image_dir)))
    if not folder.is_absolute():
        folder = (dataset_folder(dataset) or Path.cwd()) / folder
    return str(folder.resolve()) if folder.is_dir() else None


def _json_safe(obj):
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def run_kg(model_kg, dataset, config):
    """The KG a run keeps: the model's own (``model_kg``) or, for a dataset with an external KG,
    the one its ``kg_*`` keys give (``None`` when that cannot be built, e.g. under
    ``kg_bad_triples: reject`` with bad triples: the model did not need it)."""
    if model_kg is not None:
        return model_kg
    if dataset.kg is None:
        return None
    from .graph.kg import KnowledgeGraph

    try:
        return KnowledgeGraph.from_dataset(dataset, config)
    except MMKGRecError as e:
        log.warning("the run keeps no KG: %s", e)
        return None


def item_vectors_of(model) -> np.ndarray | None:
    """The model's item vectors (``item_vectors()`` in eval mode), float32 ``[n_items, d]``, or
    ``None`` for a model without them."""
    import torch

    from .evaluation.common import EvalMode

    with torch.no_grad(), EvalMode(model):
        v = model.item_vectors()
        if v is None:
            return None
        v = v.detach().float().cpu().numpy()
    if v.ndim != 2 or v.shape[0] != model.n_items:
        log.warning("item_vectors() of %s has shape %s, not [%d, d]; no item vectors kept",
                    type(model).__name__, v.shape, model.n_items)
        return None
    return np.ascontiguousarray(v)


def write_run_data(folder: str | Path, run_id: str, config, dataset, split, model,
                   features: dict | None = None, kg=None, fingerprint: dict | None = None) -> dict:
    """Write the files of the module docstring into ``folder`` (each to a temporary name, then
    renamed) and return the manifest. ``features``: the raw ``{modality: (matrix, mask)}`` the
    model was built from; ``kg``: its KnowledgeGraph (``None``: built here when the dataset has
    one)."""
    folder = Path(folder)
    name, model_name = str(dataset.name), str(config["model"])
    meta = {"format": FORMAT, "run_id": run_id, "model": model_name, "dataset": name}

    def save(kind: str, arrays: dict) -> None:
        _save(folder / FILES[kind], arrays, {**meta, "kind": kind})

    arrays: dict = {}
    _put_strings(arrays, "user_ids", dataset.user_ids)
    _put_strings(arrays, "item_ids", dataset.item_ids)
    save("ids", arrays)
    indptr, indices = exclusion_csr(dataset)
    save("exclude", {"indptr": indptr, "indices": indices})
    arrays, parts = {}, {}
    for part in PARTS:
        parts[part] = _interactions(arrays, part, split.part(part))
    labelled = getattr(split, "labelled", None)
    if labelled:
        for part, inter in labelled.items():
            parts[f"labelled.{part}"] = _interactions(arrays, f"labelled.{part}", inter)
    classification = getattr(split, "labels", None) is not None  # a ClassificationSplit
    if classification:
        for part, items in split.items.items():
            arrays[f"items.{part}"] = _small_int(np.asarray(items, dtype=np.int64))
        arrays["labels"] = np.asarray(split.labels, dtype=bool)
        _put_strings(arrays, "classes", split.classes)
    save("split", arrays)
    arrays = {}
    columns = _item_columns(arrays, dataset)
    save("items", arrays)
    optional = []
    kg = run_kg(kg, dataset, config)
    kg_info = None
    if kg is not None:
        arrays = {"triples": _small_int(kg.triples.reshape(-1)).reshape(-1, 3)}
        _put_strings(arrays, "entities", kg.entity_tokens)
        _put_strings(arrays, "relations", kg.relation_tokens)
        save("kg", arrays)
        kg_info = _json_safe(kg.stats)
        optional.append("kg")
    if features:
        arrays = {}
        for m, (mat, mask) in features.items():
            arrays[f"{m}.matrix"] = np.asarray(mat, dtype=np.float32)
            arrays[f"{m}.mask"] = np.asarray(mask, dtype=bool)
        save("features", arrays)
        optional.append("features")
    vectors = item_vectors_of(model)
    index_info = None
    if vectors is not None:
        save("vectors", {"vectors": vectors})
        optional.append("vectors")
        from .retrieval import ItemIndex

        index = ItemIndex(vectors, metric="cosine", kind="flat")
        index.save(folder / INDEX_DIR)
        index_info = index.manifest()
    manifest = {
        "format": FORMAT, "run_id": run_id, "model": model_name,
        "dataset": str(config["dataset"]), "dataset_name": name, "n_users": int(dataset.n_users), "n_items": int(dataset.n_items),
        "files": {k: FILES[k] for k in ("ids", "exclude", "split", "items", *optional)},
        "split": {"method": split.method, "stats": _json_safe(split.stats), "parts": parts,
                  "ctr": bool(labelled),
                  "classification": split.mode if classification else None},
        "data": _json_safe(dataset.describe()), "source": str(dataset.source),
        "item_columns": columns, "item_entity": dataset.item_entity is not None,
        "image_dir": image_folder(dataset, config),
        "features": sorted(features or {}), "kg": kg_info,
        "item_vectors": None if vectors is None else {"dim": int(vectors.shape[1])},
        "index": index_info, "exclude_pairs": int(len(indices)),
        "fingerprint": fingerprint, "checksums": _checksums(folder),
    }
    write_text_atomic(folder / MANIFEST, json.dumps(manifest, indent=1))
    return manifest


def _checksums(folder: Path) -> dict:
    """sha256 of the weights, the data files and the index files, by path relative to
    ``folder``."""
    names = ["model.safetensors", *FILES.values()]
    index = folder / INDEX_DIR
    if index.is_dir():
        names += [f"{INDEX_DIR}/{p.name}" for p in sorted(index.iterdir()) if p.is_file()]
    return {n: file_sha256(folder / n) for n in names if (folder / n).is_file()}


# ---- reading ---------------------------------------------------------------------------

def read_json(path: Path, what: str = "JSON") -> dict:
    """A JSON object from ``path``; RunFileError naming it when missing, truncated or not an
    object."""
    if not path.is_file():
        raise RunFileError(path, "missing: not a complete run directory")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunFileError(path, f"unreadable or truncated {what} ({e})") from None
    if not isinstance(data, dict):
        raise RunFileError(path, f"expected a {what} object")
    return data


class RunData:
    """The stored data of the run directory ``folder``; each reader checks that its file exists,
    is complete, and belongs to this run (its ``run_id``)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if not (self.folder / MANIFEST).is_file() and (self.folder / "model.safetensors").is_file():
            raise RunFileError(self.folder / MANIFEST, "missing: the run directory holds weights but "
                               "not its data (a run written before runs kept their data, or an "
                               "incomplete copy); train it again")
        m = read_json(self.folder / MANIFEST, "run manifest")
        if m.get("format") != FORMAT:
            raise RunFileError(self.folder / MANIFEST, f"format {m.get('format')!r}, expected "
                               f"{FORMAT!r}")
        for key in ("run_id", "model", "dataset", "n_users", "n_items", "files", "split"):
            if key not in m:
                raise RunFileError(self.folder / MANIFEST, f"no '{key}' entry")
        self.manifest = m
        self.run_id = m["run_id"]
        self.n_users, self.n_items = int(m["n_users"]), int(m["n_items"])

    def path(self, kind: str) -> Path:
        return self.folder / FILES[kind]

    def verify(self, path: Path) -> None:
        """ChecksumError naming ``path`` when its bytes differ from those the run recorded
        (runs written before checksums were kept are not checked)."""
        sums = self.manifest.get("checksums") or {}
        rel = Path(path).relative_to(self.folder).as_posix()
        if rel in sums and path.is_file() and file_sha256(path) != sums[rel]:
            raise ChecksumError(f"{path}: its bytes differ from those the run wrote (sha256 "
                                f"recorded in {MANIFEST}); the file is damaged or was replaced")

    def check_fingerprint(self, dataset, split) -> None:
        """ChecksumError when the ids, pairs or split read back differ from the run's recorded
        fingerprint."""
        fp = self.manifest.get("fingerprint")
        if not fp:
            return
        now = fingerprint(dataset, split)
        for what in ("data", "split"):
            if now.get(what) != fp.get(what):
                raise ChecksumError(f"{self.folder}: the stored {what} do not match the "
                                    f"run's fingerprint ({MANIFEST}); the run directory was "
                                    "altered")

    def has(self, kind: str) -> bool:
        return kind in self.manifest["files"]

    def read(self, kind: str) -> dict:
        """All arrays of ``kind``'s file (memory-mapped by safetensors), checked."""
        from safetensors import safe_open

        path = self.path(kind)
        if not path.is_file():
            raise RunFileError(path, "missing: the run directory is incomplete")
        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = f.metadata() or {}
                arrays = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as e:  # safetensors raises its own error types on a bad header / data
            raise RunFileError(path, f"unreadable or truncated ({type(e).__name__}: {e})") from None
        self.check_meta(path, meta, kind)
        self.verify(path)
        return arrays

    def check_meta(self, path: Path, meta: dict, kind: str) -> None:
        if meta.get("run_id") != self.run_id:
            other = (f"dataset '{meta.get('dataset')}', model '{meta.get('model')}'"
                     if meta.get("run_id") else "no run id")
            raise RunFileError(path, f"belongs to another run ({other}); this run is "
                               f"{self.manifest['model']} on '{self.manifest['dataset']}'")
        if meta.get("kind") != kind:
            raise RunFileError(path, f"holds '{meta.get('kind')}', expected '{kind}'")

    def _need(self, kind: str, arrays: dict, keys) -> None:
        missing = [k for k in keys if k not in arrays]
        if missing:
            raise RunFileError(self.path(kind), f"lacks arrays {missing}")

    # -- the pieces -------------------------------------------------------------------------
    def ids(self) -> tuple[np.ndarray, np.ndarray]:
        a = self.read("ids")
        self._need("ids", a, ("user_ids.blob", "user_ids.offsets", "item_ids.blob",
                               "item_ids.offsets"))
        users, items = _get_strings(a, "user_ids"), _get_strings(a, "item_ids")
        if len(users) != self.n_users or len(items) != self.n_items:
            raise RunFileError(self.path("ids"), f"{len(users)} users and {len(items)} items; the "
                               f"run has {self.n_users} and {self.n_items}")
        return users, items

    def exclusion(self) -> tuple[np.ndarray, np.ndarray]:
        a = self.read("exclude")
        self._need("exclude", a, ("indptr", "indices"))
        indptr, indices = a["indptr"].astype(np.int64), a["indices"]
        if (len(indptr) != self.n_users + 1 or indptr[-1] != len(indices)
                or (len(indices) and (indices.min() < 0 or indices.max() >= self.n_items))):
            raise RunFileError(self.path("exclude"), "the pairs do not fit the run's "
                               f"{self.n_users} users and {self.n_items} items")
        return indptr, indices

    def _part(self, a: dict, prefix: str):
        from .data.dataset import Interactions

        self._need("split", a, (f"{prefix}.user", f"{prefix}.item"))
        u, i = a[f"{prefix}.user"], a[f"{prefix}.item"]
        if len(u) != len(i) or (len(u) and (u.min() < 0 or u.max() >= self.n_users
                                            or i.min() < 0 or i.max() >= self.n_items)):
            raise RunFileError(self.path("split"), f"part '{prefix}' does not fit the run's "
                               f"{self.n_users} users and {self.n_items} items")
        return Interactions(u, i, a.get(f"{prefix}.rating"), a.get(f"{prefix}.timestamp"))

    def split(self, dataset):
        """The run's :class:`~mmkgrec.data.split.Split` (a CTRSplit for a CTR run) over
        ``dataset``."""
        a = self.read("split")
        info = self.manifest["split"]
        parts = [self._part(a, p) for p in PARTS]
        if info.get("ctr"):
            from .data.ctr import CTRSplit

            labelled = {p: self._part(a, f"labelled.{p}") for p in PARTS}
            return CTRSplit(dataset, *parts, info.get("method", ""), dict(info.get("stats", {})),
                            labelled=labelled)
        if info.get("classification"):
            from .data.targets import ClassificationSplit

            self._need("split", a, ("labels", "classes.blob", "classes.offsets",
                                    *(f"items.{p}" for p in PARTS)))
            labels = a["labels"]
            if labels.ndim != 2 or labels.shape[0] != self.n_items:
                raise RunFileError(self.path("split"), f"the label matrix does not fit the run's "
                                   f"{self.n_items} items")
            items = {p: a[f"items.{p}"].astype(np.int64) for p in PARTS}
            return ClassificationSplit(dataset, *parts, info.get("method", ""),
                                       dict(info.get("stats", {})), items=items, labels=labels,
                                       classes=_get_strings(a, "classes"),
                                       mode=info["classification"])
        from .data.split import Split

        return Split(dataset, *parts, info.get("method", ""), dict(info.get("stats", {})))

    def items(self) -> tuple[dict, dict, np.ndarray | None]:
        """``(item_features, item_feature_types, item_entity)`` as a Dataset holds them."""
        a = self.read("items")
        cols, types = {}, {}
        for j, c in enumerate(self.manifest.get("item_columns", [])):
            key, typ = f"col{j}", c["type"]
            if typ == "float":
                self._need("items", a, (f"{key}.values",))
                col = a[f"{key}.values"]
            elif typ in ("token_seq", "float_seq"):
                self._need("items", a, (f"{key}.blob", f"{key}.offsets", f"{key}.indptr"))
                flat, ptr = _get_strings(a, key), a[f"{key}.indptr"]
                if typ == "float_seq":
                    flat = np.asarray([float(x) for x in flat], dtype=object)
                col = [list(flat[s:e]) for s, e in zip(ptr[:-1].tolist(), ptr[1:].tolist())]
            else:
                self._need("items", a, (f"{key}.blob", f"{key}.offsets", f"{key}.present"))
                col = _get_strings(a, key)
                col[~a[f"{key}.present"]] = None
            if len(col) != self.n_items:
                raise RunFileError(self.path("items"), f"column '{c['name']}' has {len(col)} "
                                   f"rows; the run has {self.n_items} items")
            cols[c["name"]], types[c["name"]] = col, typ
        entity = None
        if self.manifest.get("item_entity"):
            self._need("items", a, ("item_entity.blob", "item_entity.offsets",
                                    "item_entity.present"))
            entity = _get_strings(a, "item_entity")
            entity[~a["item_entity.present"]] = None
        return cols, types, entity

    def kg(self):
        """The stored :class:`~mmkgrec.graph.kg.KnowledgeGraph`, or ``None``."""
        if not self.has("kg"):
            return None
        from .graph.kg import KnowledgeGraph

        a = self.read("kg")
        self._need("kg", a, ("triples", "entities.blob", "entities.offsets", "relations.blob",
                             "relations.offsets"))
        ents, rels = _get_strings(a, "entities"), _get_strings(a, "relations")
        t = a["triples"].astype(np.int64).reshape(-1, 3)
        if len(ents) < self.n_items or (len(t) and (
                t[:, [0, 2]].min() < 0 or t[:, [0, 2]].max() >= len(ents)
                or t[:, 1].min() < 0 or t[:, 1].max() >= len(rels))):
            raise RunFileError(self.path("kg"), "the triples do not fit its entities and "
                               "relations")
        return KnowledgeGraph(self.n_items, ents, rels, t, dict(self.manifest.get("kg") or {}))

    def features(self) -> dict:
        """``{modality: (matrix, mask)}`` the model was built from (empty when none)."""
        if not self.has("features"):
            return {}
        a = self.read("features")
        out = {}
        for m in self.manifest.get("features", []):
            self._need("features", a, (f"{m}.matrix", f"{m}.mask"))
            mat, mask = a[f"{m}.matrix"], a[f"{m}.mask"]
            rows, what = ((self.n_users, "users") if m == "user_text" else
                          (self.n_items, "items"))  # one-pass user texts: a row per user
            if mat.ndim != 2 or len(mat) != rows or mask.shape != (rows,):
                raise RunFileError(self.path("features"), f"'{m}' has shape {mat.shape}; the run "
                                   f"has {rows} {what}")
            out[m] = (mat, mask)
        return out

    def item_vectors(self) -> np.ndarray | None:
        if not self.has("vectors"):
            return None
        a = self.read("vectors")
        self._need("vectors", a, ("vectors",))
        v = a["vectors"]
        if v.ndim != 2 or len(v) != self.n_items:
            raise RunFileError(self.path("vectors"), f"shape {v.shape}; the run has "
                               f"{self.n_items} items")
        return v

    def index(self):
        """The stored :class:`~mmkgrec.retrieval.ItemIndex` over the item vectors, or ``None``."""
        if not self.manifest.get("index"):
            return None
        from .retrieval import ItemIndex

        path = self.folder / INDEX_DIR
        for name in self.manifest.get("checksums") or {}:
            if name.startswith(INDEX_DIR + "/"):
                self.verify(self.folder / name)
        try:
            index = ItemIndex.load(path)
        except ImportError:
            raise
        except Exception as e:
            raise RunFileError(path, f"unreadable item index ({type(e).__name__}: {e})") from None
        if len(index) != self.n_items:
            raise RunFileError(path, f"indexes {len(index)} items; the run has {self.n_items}")
        return index

    def weights(self, path: Path) -> dict:
        """The model weights (safetensors, read on the CPU), checked to be this run's."""
        from safetensors import safe_open

        if not path.is_file():
            raise RunFileError(path, "missing: not a finished run directory")
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                state = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as e:
            raise RunFileError(path, f"unreadable or truncated ({type(e).__name__}: {e})") from None
        self.check_meta(path, meta, "weights")
        self.verify(path)
        return state
