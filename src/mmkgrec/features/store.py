"""The feature store: item features computed once per dataset and encoder, kept on disk.

Layout under ``$MMKGREC_CACHE`` (default ``~/.cache/mmkgrec``)::

    features/<dataset>-<hash of its folder>/<modality>/<encoder>-<hash of its name>/
        manifest.json       encoder name, version and dim, item ids, one input hash per item
                            and a hash over all of them
        last_run.json       counts of the last extraction and the items that failed
        matrix-<gen>.npy    float32 [n_rows, dim], row k = manifest["ids"][k]; memory-mapped
        chunks/*.npz        batches written during an extraction, merged into the matrix at
                            the end (and by the next run after a kill)
        .lock               held while extracting

Each stored row is keyed by the raw item id and a hash of the item's input (its text, or the
image path with size and mtime, or the URL). An extraction encodes only the items whose key is
not stored: a rerun encodes nothing, new items are appended, an item whose input changed is
re-encoded alone. A changed encoder version starts the store afresh.

Every batch is written durably and atomically (temporary file, fsync, rename) as soon as it is
encoded, so a killed extraction resumes without recomputing what was written. Inputs that cannot
be prepared (corrupt, truncated, non-image or unreadable files) and inputs the encoder rejects are
logged with the item id and reported as missing; they never stop the extraction. If every item
of a batch fails inside the encoder, the encoder itself is broken and the error is raised.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .base import Encoder
from .paths import cache_root  # noqa: F401  (re-exported: features.store.cache_root)

log = logging.getLogger(__name__)

FORMAT = 1
_LOG_EACH = 50  # failures logged one by one at WARNING; later ones at DEBUG, then a summary


def _slug(text: str, n: int = 40) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return s[-n:] or "x"


def _short_hash(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=4).hexdigest()


def dataset_key(dataset) -> str:
    """Store folder name of a dataset: its name and a hash of where it was read from."""
    return f"{_slug(dataset.name)}-{_short_hash(str(getattr(dataset, 'source', '')))}"


@dataclass
class ExtractResult:
    """Features of the requested items in request order (zeros where ``mask`` is False)."""

    matrix: np.ndarray
    mask: np.ndarray
    stats: dict
    failed: dict = field(default_factory=dict)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _atomic_write(path: Path, write: Callable) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    _fsync_dir(path.parent)


@contextlib.contextmanager
def _locked(path: Path):
    try:
        import fcntl
    except ImportError:  # not POSIX: no inter-process lock
        yield
        return
    with open(path, "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


class FeatureStore:
    """Features of one dataset and one encoder in one folder (see the module docstring)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.manifest_path = self.folder / "manifest.json"
        self.chunk_dir = self.folder / "chunks"

    @classmethod
    def for_dataset(cls, dataset, modality: str, encoder: Encoder, root: Path | None = None):
        root = Path(root) if root is not None else cache_root()
        enc = f"{_slug(encoder.name)}-{_short_hash(encoder.name)}"
        return cls(root / "features" / dataset_key(dataset) / modality / enc)

    # ------------------------------------------------------------------ reading
    def manifest(self) -> dict | None:
        try:
            return json.loads(self.manifest_path.read_text())
        except FileNotFoundError:
            return None
        except ValueError:
            log.warning("%s is unreadable; the store is rebuilt", self.manifest_path)
            return None

    def load(self) -> tuple[list[str], np.ndarray] | None:
        """(item ids, memory-mapped float32 matrix) of the consolidated store, or None."""
        man = self.manifest()
        if man is None:
            return None
        return man["ids"], self._matrix(man)

    def _matrix(self, man: dict) -> np.ndarray:
        if man["n_rows"] == 0:
            return np.zeros((0, man["encoder"]["dim"]), dtype=np.float32)
        return np.load(self.folder / man["matrix"], mmap_mode="r")

    def _chunks(self) -> list[Path]:
        if not self.chunk_dir.is_dir():
            return []
        return sorted(p for p in self.chunk_dir.iterdir() if p.suffix == ".npz")

    # ------------------------------------------------------------------ extraction
    def extract(self, item_ids: Sequence, inputs: Sequence, keys: Sequence, encoder: Encoder, *,
                prepare: Callable | None = None, batch_size: int = 64,
                show_progress: bool = False, info: dict | None = None) -> ExtractResult:
        """Features for ``item_ids`` (raw ids) whose inputs are ``inputs`` (``None`` = no
        content) with fingerprints ``keys``. ``prepare(input)`` turns an input into what the
        encoder takes (e.g. decodes an image) and may raise for a bad input."""
        t0 = time.perf_counter()
        ids = [str(i) for i in item_ids]
        if not (len(ids) == len(inputs) == len(keys)):
            raise ValueError("item_ids, inputs and keys differ in length")
        self.folder.mkdir(parents=True, exist_ok=True)
        with _locked(self.folder / ".lock"):
            self._remove_stale_temporaries()
            rows, man, chunk_dim = self._index(encoder)
            todo = [k for k, (x, key) in enumerate(zip(inputs, keys))
                    if x is not None and rows.get(ids[k], (None,))[0] != key]
            n_input = sum(x is not None for x in inputs)
            reused = n_input - len(todo)
            dim = man["encoder"]["dim"] if man else chunk_dim
            failed: dict[str, str] = {}
            n_encoded = 0
            if todo:
                order = sorted(todo, key=lambda k: encoder.sort_key(inputs[k]))
                n_encoded, dim = self._encode(order, ids, inputs, keys, encoder, prepare,
                                              batch_size, show_progress, failed, dim)
            if failed:
                self._log_failures(failed)
            if n_encoded or self._chunks() or man is None:  # failures alone change nothing
                if dim is None:
                    dim = encoder.dim
                man = self._consolidate(encoder, dim, info or {})
            seconds = time.perf_counter() - t0
            stats = {"encoder": encoder.name, "version": encoder.version, "dim": int(dim),
                     "items": len(ids), "encoded": n_encoded, "reused": reused,
                     "missing": len(ids) - n_input, "failed": len(failed),
                     "seconds": round(seconds, 3),
                     "items_per_s": round(n_encoded / seconds, 1) if n_encoded and seconds else None,
                     "store": str(self.folder)}
            self._record_run(man, stats, failed)
            ids_store, mat = man["ids"], self._matrix(man)
        pos = {r: k for k, r in enumerate(ids_store)}
        want = {r: key for r, key in zip(ids_store, man["keys"])}
        out = np.zeros((len(ids), int(dim)), dtype=np.float32)
        mask = np.zeros(len(ids), dtype=bool)
        for k, (r, x, key) in enumerate(zip(ids, inputs, keys)):
            if x is not None and r not in failed and want.get(r) == key:
                mask[k] = True
        sel = np.flatnonzero(mask)
        if len(sel):
            out[sel] = mat[np.asarray([pos[ids[k]] for k in sel])]
        return ExtractResult(out, mask, stats, failed)

    def _remove_stale_temporaries(self) -> None:
        """Temporary files left by a killed writer (only ever renamed into place when whole)."""
        for d in (self.folder, self.chunk_dir):
            if d.is_dir():
                for p in d.glob(".*.tmp"):
                    p.unlink(missing_ok=True)

    def _index(self, encoder: Encoder):
        """Stored rows by id -> (key, source, row) from the matrix and any leftover chunks."""
        man = self.manifest()
        if man is not None and (man.get("format") != FORMAT or
                                man["encoder"]["version"] != encoder.version or
                                man["encoder"]["name"] != encoder.name):
            log.info("%s: encoder %s version changed (%s -> %s); features are recomputed",
                     self.folder, encoder.name, man["encoder"].get("version"), encoder.version)
            man = None
        rows: dict[str, tuple[str, str, int]] = {}
        if man is not None:
            for r, (i, key) in enumerate(zip(man["ids"], man["keys"])):
                rows[i] = (key, "matrix", r)
        chunk_dim = None
        for p in self._chunks():
            try:
                with np.load(p, allow_pickle=False) as z:
                    if str(z["version"]) != encoder.version:
                        p.unlink()
                        continue
                    for r, (i, key) in enumerate(zip(z["ids"].tolist(), z["keys"].tolist())):
                        rows[i] = (key, str(p), r)
                    chunk_dim = chunk_dim or int(z["vectors"].shape[1])
            except Exception as e:  # a chunk cut short cannot exist (atomic), but be safe
                log.warning("%s: unreadable chunk (%s); ignored", p, e)
                p.unlink(missing_ok=True)
        return rows, man, chunk_dim

    def _encode(self, order, ids, inputs, keys, encoder, prepare, batch_size, show_progress,
                failed, dim):
        from tqdm import tqdm

        self.chunk_dir.mkdir(exist_ok=True)
        run = f"{time.strftime('%Y%m%d%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        bar = tqdm(total=len(order), desc=f"{encoder.name}", unit="item", disable=not show_progress,
                   leave=False)
        n_done = 0
        seq = 0
        try:
            for start in range(0, len(order), max(1, batch_size)):
                batch = order[start:start + batch_size]
                ready, xs = [], []
                for k in batch:
                    try:
                        xs.append(prepare(inputs[k]) if prepare else inputs[k])
                        ready.append(k)
                    except Exception as e:
                        failed[ids[k]] = f"{type(e).__name__}: {e}"
                vecs, ok = self._encode_batch(encoder, ready, xs, ids, failed)
                if len(ok):
                    if dim is not None and vecs.shape[1] != dim:
                        raise RuntimeError(f"encoder {encoder.name} returned dim {vecs.shape[1]},"
                                           f" the store holds dim {dim}")
                    dim = vecs.shape[1]
                    self._write_chunk(f"{run}-{seq:06d}", [ids[k] for k in ok],
                                      [keys[k] for k in ok], vecs, encoder.version)
                    seq += 1
                    n_done += len(ok)
                bar.update(len(batch))
        finally:
            bar.close()
        return n_done, dim

    @staticmethod
    def _encode_batch(encoder, ready, xs, ids, failed):
        if not ready:
            return None, []
        try:
            return encoder.encode(xs), ready
        except Exception as batch_error:
            if len(ready) == 1:
                failed[ids[ready[0]]] = f"{type(batch_error).__name__}: {batch_error}"
                return None, []
            # isolate the inputs the encoder rejects; if it rejects all, it is broken
            vecs, ok, errors = [], [], []
            for k, x in zip(ready, xs):
                try:
                    vecs.append(encoder.encode([x])[0])
                    ok.append(k)
                except Exception as e:
                    errors.append((k, e))
            if not ok:
                raise batch_error
            for k, e in errors:
                failed[ids[k]] = f"{type(e).__name__}: {e}"
            return np.stack(vecs), ok

    def _write_chunk(self, name, ids, keys, vecs, version):
        def write(f):
            np.savez(f, ids=np.asarray(ids, dtype=str), keys=np.asarray(keys, dtype=str),
                     vectors=np.ascontiguousarray(vecs, dtype=np.float32),
                     version=np.asarray(version))
        _atomic_write(self.chunk_dir / f"{name}.npz", write)

    def _consolidate(self, encoder: Encoder, dim: int, info: dict) -> dict:
        """Merge the matrix and the chunks into a new matrix and manifest (atomically)."""
        old = self.manifest()
        if old is not None and (old.get("format") != FORMAT or
                                old["encoder"]["version"] != encoder.version or
                                old["encoder"]["name"] != encoder.name):
            old = None
        order: list[str] = []
        where: dict[str, tuple[str, int, str]] = {}
        if old is not None:
            for r, (i, key) in enumerate(zip(old["ids"], old["keys"])):
                where[i] = ("matrix", r, key)
                order.append(i)
        chunks = self._chunks()
        chunk_data = {}
        for p in chunks:
            with np.load(p, allow_pickle=False) as z:
                if str(z["version"]) != encoder.version:
                    continue
                chunk_data[str(p)] = z["vectors"]
                for r, (i, key) in enumerate(zip(z["ids"].tolist(), z["keys"].tolist())):
                    if i not in where:
                        order.append(i)
                    where[i] = (str(p), r, key)
        gen = int(old.get("generation", 0)) + 1 if old is not None else 1
        name = f"matrix-{gen:05d}.npy"
        n = len(order)
        if n:
            src = self._matrix(old) if old is not None else None
            tmp = self.folder / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
            try:
                mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, dim))
                for r, i in enumerate(order):
                    s, row, _ = where[i]
                    mm[r] = src[row] if s == "matrix" else chunk_data[s][row]
                mm.flush()
                del mm
                with open(tmp, "rb+") as f:
                    os.fsync(f.fileno())
                os.replace(tmp, self.folder / name)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
            _fsync_dir(self.folder)
        man = {"format": FORMAT, "generation": gen, "modality": encoder.modality,
               "encoder": {"name": encoder.name, "version": encoder.version, "dim": int(dim)},
               "dtype": "float32", "n_rows": n, "matrix": name if n else None,
               "inputs_hash": hashlib.blake2b("\n".join(
                   f"{i}\t{where[i][2]}" for i in order).encode(), digest_size=16).hexdigest(),
               "ids": order, "keys": [where[i][2] for i in order],
               "updated_at": time.strftime("%Y-%m-%dT%H:%M:%S"), **info}
        _atomic_write(self.manifest_path, lambda f: f.write(json.dumps(man).encode()))
        for p in chunks:
            p.unlink(missing_ok=True)
        for p in self.folder.glob("matrix-*.npy"):
            if p.name != man["matrix"]:
                p.unlink(missing_ok=True)
        return man

    def _record_run(self, man: dict, stats: dict, failed: dict) -> None:
        """Keep the last run's summary next to the manifest (informational only)."""
        last = {**stats, "failed_items": dict(list(failed.items())[:200]),
                "at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        with contextlib.suppress(OSError):
            _atomic_write(self.folder / "last_run.json",
                          lambda f: f.write(json.dumps(last, indent=1).encode()))

    def _log_failures(self, failed: dict) -> None:
        for k, (i, why) in enumerate(failed.items()):
            level = logging.WARNING if k < _LOG_EACH else logging.DEBUG
            log.log(level, "item %s: %s; recorded as missing", i, why)
        if len(failed) > _LOG_EACH:
            log.warning("%d items failed in all (the first %d logged above; every one at DEBUG "
                        "level and in %s)", len(failed), _LOG_EACH, self.folder / "last_run.json")


def store_info(root: Path | None = None) -> list[dict]:
    """One summary per store folder under the cache."""
    root = Path(root) if root is not None else cache_root()
    out = []
    for man_path in sorted((root / "features").glob("*/*/*/manifest.json")):
        try:
            man = json.loads(man_path.read_text())
        except (OSError, ValueError):
            continue
        folder = man_path.parent
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        last = {}
        with contextlib.suppress(OSError, ValueError):
            last = json.loads((folder / "last_run.json").read_text())
        out.append({"dataset": man.get("dataset", folder.parents[1].name),
                    "modality": man.get("modality", folder.parent.name),
                    "encoder": man["encoder"]["name"], "version": man["encoder"]["version"],
                    "dim": man["encoder"]["dim"], "rows": man["n_rows"],
                    "updated_at": man.get("updated_at"), "size_mb": round(size / 2**20, 2),
                    "last_run": {k: last.get(k) for k in ("encoded", "reused", "missing",
                                                          "failed", "seconds")} if last else None,
                    "path": str(folder)})
    return out
