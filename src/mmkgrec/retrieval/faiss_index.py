"""Nearest-item search over item vectors: FAISS when installed, an exact torch search otherwise.

``ItemIndex(vectors, metric, kind)``:

* ``metric``: ``"ip"`` (inner product) or ``"cosine"`` (vectors and queries L2-normalised, then
  inner product; MM-RACL-KAL's retrieval over normalised ``e_i``, eq. 4).
* ``kind``: ``"flat"`` (exact), ``"ivf"`` (inverted lists: ``nlist`` k-means cells trained on the
  vectors, ``nprobe`` searched), ``"hnsw"`` (graph with ``M`` links per node, ``ef_search``).
  IVF and HNSW are approximate and meant for large catalogues.

``search(queries, k) -> (scores, ids)``: float32 ``[Q, k]`` and int64 ``[Q, k]``, best first;
``ids`` are row numbers of ``vectors`` (dense item ids when the rows are items); ``-1`` with score
``-inf`` where fewer than ``k`` results exist. The exact torch search breaks ties by lower id.
``neighbours(k)``: each item's ``k`` nearest other items.

``save(path)`` writes a folder with ``index.faiss`` (``faiss.write_index``) or, for the torch
backend, ``vectors.npy``, plus ``manifest.json`` (metric, kind, sizes, parameters, backend);
``ItemIndex.load(path)`` reads it back. Without faiss, ``kind`` other than ``flat`` falls back to
the exact search (logged); loading a saved faiss index needs faiss.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

try:  # optional: the exact torch search works without it
    import faiss  # type: ignore
except ImportError:  # pragma: no cover - depends on the environment
    faiss = None

METRICS = ("ip", "cosine")
KINDS = ("flat", "ivf", "hnsw")


def have_faiss() -> bool:
    return faiss is not None


def _as_f32(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D array [n, dim], got shape {x.shape}")
    return x


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class ItemIndex:
    def __init__(self, vectors, metric: str = "ip", kind: str = "flat", nlist: int = 100,
                 nprobe: int = 10, M: int = 32, ef_search: int = 64, backend: str = "auto",
                 seed: int = 0):
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if backend not in ("auto", "faiss", "torch"):
            raise ValueError(f"backend must be auto, faiss or torch, got {backend!r}")
        if backend == "faiss" and faiss is None:
            raise ImportError("backend='faiss' but faiss is not installed (pip install faiss-cpu)")
        x = _as_f32(vectors)
        if metric == "cosine":
            x = _normalise(x)
        self.metric, self.kind = metric, kind
        self.nlist, self.nprobe, self.M, self.ef_search = int(nlist), int(nprobe), int(M), int(ef_search)
        self.n, self.dim = x.shape
        self.backend = "faiss" if (backend != "torch" and faiss is not None) else "torch"
        if self.backend == "torch" and kind != "flat":
            log.warning("faiss is not installed: index kind '%s' falls back to exact search", kind)
        self._vectors = None
        self._index = None
        if self.backend == "torch":
            self._vectors = torch.from_numpy(x)
        else:
            self._index = self._build_faiss(x, seed)

    def _build_faiss(self, x: np.ndarray, seed: int):
        ip = faiss.METRIC_INNER_PRODUCT
        if self.kind == "flat":
            index = faiss.IndexFlatIP(self.dim)
        elif self.kind == "ivf":
            nlist = max(1, min(self.nlist, self.n))
            self.nlist = nlist
            quantizer = faiss.IndexFlatIP(self.dim)
            index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, ip)
            index.cp.seed = seed
            index.train(x)
            index.nprobe = min(self.nprobe, nlist)
        else:
            index = faiss.IndexHNSWFlat(self.dim, self.M, ip)
            index.hnsw.efSearch = self.ef_search
        index.add(x)
        return index

    def __len__(self) -> int:
        return self.n

    def search(self, queries, k: int, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` rows for each query, best first (see the module docstring)."""
        q = _as_f32(queries)
        if q.shape[1] != self.dim:
            raise ValueError(f"queries have dimension {q.shape[1]}, the index {self.dim}")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if self.metric == "cosine":
            q = _normalise(q)
        kk = min(k, self.n)
        if self.backend == "faiss":
            scores, ids = self._index.search(q, kk)
            scores = scores.astype(np.float32)
            ids = ids.astype(np.int64)
            scores[ids < 0] = -np.inf
        else:
            from ..evaluation.metrics import topk_with_ties

            out_s, out_i = [], []
            qt = torch.from_numpy(q)
            for s in range(0, len(qt), chunk):
                sc = qt[s:s + chunk] @ self._vectors.T
                top = topk_with_ties(sc, kk)
                out_i.append(top)
                out_s.append(sc.gather(1, top))
            scores = torch.cat(out_s).numpy() if out_s else np.zeros((0, kk), np.float32)
            ids = torch.cat(out_i).numpy().astype(np.int64) if out_i else np.zeros((0, kk), np.int64)
        if kk < k:  # fewer rows than k: pad
            pad = k - kk
            scores = np.concatenate([scores, np.full((len(q), pad), -np.inf, np.float32)], 1)
            ids = np.concatenate([ids, np.full((len(q), pad), -1, np.int64)], 1)
        return scores, ids

    def vectors(self) -> np.ndarray:
        """The indexed (normalised, for cosine) vectors."""
        if self.backend == "torch":
            return self._vectors.numpy()
        if self.kind == "ivf":
            self._index.make_direct_map()
        return self._index.reconstruct_n(0, self.n)

    def neighbours(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Each row's ``k`` nearest other rows: ``(scores [n, k], ids [n, k])``."""
        scores, ids = self.search(self.vectors(), k + 1)
        self_hit = ids == np.arange(self.n)[:, None]
        # drop the row itself where found, else the last column
        drop = np.where(self_hit.any(1), self_hit.argmax(1), k)
        keep = np.ones_like(self_hit)
        keep[np.arange(self.n), drop] = False
        return scores[keep].reshape(self.n, k), ids[keep].reshape(self.n, k)

    # ---- persistence -------------------------------------------------------------------
    def manifest(self) -> dict:
        return {"format": "mmkgrec.ItemIndex/1", "metric": self.metric, "kind": self.kind,
                "n": self.n, "dim": self.dim, "nlist": self.nlist, "nprobe": self.nprobe,
                "M": self.M, "ef_search": self.ef_search, "backend": self.backend}

    def save(self, path: str | Path) -> Path:
        """Write the index to folder ``path`` (created; files replaced atomically)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if self.backend == "faiss":
            tmp = path / f".index.faiss.tmp{os.getpid()}"
            faiss.write_index(self._index, str(tmp))
            os.replace(tmp, path / "index.faiss")
        else:
            tmp = path / f".vectors.tmp{os.getpid()}.npy"
            np.save(tmp, self._vectors.numpy())
            os.replace(tmp, path / "vectors.npy")
        tmp = path / f".manifest.json.tmp{os.getpid()}"
        tmp.write_text(json.dumps(self.manifest(), indent=2))
        os.replace(tmp, path / "manifest.json")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "ItemIndex":
        path = Path(path)
        mf = path / "manifest.json"
        if not mf.is_file():
            raise FileNotFoundError(f"{mf} not found: {path} is not a saved ItemIndex")
        m = json.loads(mf.read_text())
        obj = cls.__new__(cls)
        obj.metric, obj.kind, obj.n, obj.dim = m["metric"], m["kind"], m["n"], m["dim"]
        obj.nlist, obj.nprobe, obj.M, obj.ef_search = m["nlist"], m["nprobe"], m["M"], m["ef_search"]
        obj._vectors = obj._index = None
        if m["backend"] == "faiss":
            if faiss is None:
                raise ImportError(f"{path} holds a faiss index but faiss is not installed "
                                  "(pip install faiss-cpu)")
            obj.backend = "faiss"
            obj._index = faiss.read_index(str(path / "index.faiss"))
            if obj.kind == "ivf":
                faiss.extract_index_ivf(obj._index).nprobe = obj.nprobe
            elif obj.kind == "hnsw":
                obj._index.hnsw.efSearch = obj.ef_search
        else:
            obj.backend = "torch"
            obj._vectors = torch.from_numpy(np.load(path / "vectors.npy", allow_pickle=False))
        if (obj._index.ntotal if obj._index is not None else len(obj._vectors)) != obj.n:
            raise ValueError(f"{path}: the index holds a different number of vectors than its "
                             "manifest says")
        return obj
