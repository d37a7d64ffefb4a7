"""The side-by-side rows and epoch times on a GPU (both libraries on the same GPU, same run).

The CPU suites (``sequential.py``, ``kg.py``) capped RecBole's SASRec at a few epochs because it
takes minutes per epoch on this 2-core machine; on a GPU both libraries run the full budget. Every
job copies its settings from those suites (same protocol, epoch cap, patience, learning rate,
validation metric), adds ``device: cuda`` (RecBole: ``use_gpu: true``) and leaves the CPU thread
count at torch's default for both libraries:

- ``seq-*``: SASRec and GRU4Rec against RecBole on the sequential protocol (identical split files,
  RecBole's convention: nothing masked), seeds 2020-2022;
- ``kg-*``: CKE and KGCN (KG only) against RecBole on ML-100K with its KG, random 8:1:1, seeds
  2020-2022;
- ``speed-*``: seconds per epoch of our models (SPEED_EPOCHS epochs, features already extracted,
  one job at a time), including KGAT (also at Multi-KG4Rec's depth), MKGAT and Multi-KG4Rec for
  the ``one Multi-KG4Rec epoch <= 3x KGAT's`` target on a GPU;
- ``long-*``: BPR, KGAT, MKGAT and Multi-KG4Rec with a longer epoch budget (LONG_EPOCHS,
  LONG_PATIENCE).

A GPU machine may lack the posters (or the network for the text encoder's weights): ``--features
DIR`` reads item features from ``DIR/<dataset>-text.npz`` and ``DIR/<dataset>-image.npz``, written
where the store has them by ``mmkgrec features export`` (the image file with ``--encoder
descriptor``, the encoder every job here that reads images pins, ``pins``). The split files
each job trained on are hashed into its JSON (``split_sha256``), so they can be compared with the
CPU suites' exports.

    python benchmarks/gpu.py [--only SUBSTRING] [--features DIR] [--workers N]
Resumable: a job whose JSON exists in benchmarks/results/gpu/ is skipped.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
from pathlib import Path

import kg
import sequential as seq
from common import WORK, export_split, feature_files, mmkgrec_run, recbole_run, run_queue
from pins import pinned

SUITE = "gpu"
SEEDS = seq.SEEDS
SPEED_EPOCHS = 6  # the first epoch warms the GPU up: the median of 6 is steadier than of 3
SPEED_KG = kg.SPEED_ROWS
SPEED_SEQ = ["SASRec", "GRU4Rec", "BERT4Rec", "MM-RACL-KAL"]
# KG rows with the budget the CPU suite could not give (its cap of kg.EPOCHS stopped KGAT and MKGAT
# with validation still rising, and patience kg.PATIENCE stopped one KGAT seed on an early
# plateau): at most LONG_EPOCHS epochs, patience LONG_PATIENCE, each row's learning rate chosen by
# the CPU suite's tuning, seeds 2020-2022.
LONG_ROWS = ["BPR", "KGAT", "MKGAT", "MultiKG4Rec"]
LONG_EPOCHS = 200
LONG_PATIENCE = 30
FEATURES: dict = {}  # encoder overrides from --features


def jobs() -> list[dict]:
    out = [{"id": f"speed-{r}", "row": r, "speed": True} for r in SPEED_KG + SPEED_SEQ]
    out += [{"id": f"seq-{m}-{lib}-s2020", "row": m, "lib": lib, "seed": 2020, "suite": "seq"}
            for m in seq.SIDE for lib in ("mmkgrec", "recbole")]
    out += [{"id": f"kg-{m}-{lib}-s2020", "row": m, "lib": lib, "seed": 2020, "suite": "kg"}
            for m in kg.SIDE for lib in ("mmkgrec", "recbole")]
    out += [{"id": f"seq-{m}-{lib}-s{s}", "row": m, "lib": lib, "seed": s, "suite": "seq"}
            for s in SEEDS[1:] for m in seq.SIDE for lib in ("mmkgrec", "recbole")]
    out += [{"id": f"kg-{m}-{lib}-s{s}", "row": m, "lib": lib, "seed": s, "suite": "kg"}
            for s in SEEDS[1:] for m in kg.SIDE for lib in ("mmkgrec", "recbole")]
    out += [{"id": f"long-{kg.slug(r)}-s{s}", "row": r, "seed": s, "long": True}
            for r in LONG_ROWS for s in SEEDS]
    return out


def split_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(folder.rglob("*.inter")):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


def _ours(model: str, ov: dict, job: dict) -> dict:
    ov = pinned(model, {**ov, **FEATURES, "device": "cuda", "threads": 0})
    run_dir = WORK / "runs" / SUITE / job["id"]
    r = mmkgrec_run(model, "ml-100k", ov, run_dir, WORK / "logs" / SUITE / f"{job['id']}.log")
    shutil.rmtree(run_dir, ignore_errors=True)
    return r


def _export(job: dict, split_cfg: dict) -> Path:
    """The suite's split files, exported here (``gpu-`` folders: features may come from files)."""
    seed = job["seed"]
    if job["suite"] == "seq":
        return export_split("ml-100k", WORK / "splits" / f"gpu-ml-100k-seq-aug-s{seed}",
                            pinned(None, {**seq.PROTO, **split_cfg, **FEATURES}), sequential=True,
                            max_len=50)
    return export_split("ml-100k", WORK / "splits" / f"gpu-ml-100k-s{seed}",
                        {**split_cfg, **FEATURES})


def run(job: dict) -> dict:
    row = job["row"]
    if job.get("speed"):
        if row in SPEED_KG:
            model, extra = {**kg.MAIN, **kg.SPEED_ONLY}[row]
            ov = {**kg.BASE, **extra, "learning_rate": 0.001}
        else:
            model, extra = seq.ROWS[row]
            ov = {**seq.BASE, **seq.NEXT, **extra}
        ov.update(seed=2020, split_seed=2020, epochs=SPEED_EPOCHS, eval_step=SPEED_EPOCHS,
                  stopping_step=0)
        r = _ours(model, ov, job)
        r.update(row=row, speed=True, device="cuda")
        return r
    seed = job["seed"]
    split_cfg = {"seed": seed, "split_seed": seed}
    if job.get("long"):
        model, extra = kg.MAIN[row]
        lr = kg.chosen_lr(row)
        ov = {**kg.BASE, **extra, **split_cfg, "learning_rate": lr, "epochs": LONG_EPOCHS,
              "stopping_step": LONG_PATIENCE}
        r = _ours(model, ov, job)
        r.update(row=row, seed=seed, long=True, lr=lr, device="cuda")
        return r
    export_dir = _export(job, split_cfg)
    if job["lib"] == "recbole":
        # the CPU suite's settings at the full epoch budget (seq.RECBOLE_SIDE's epochs: EPOCHS)
        ov = {**(seq.RECBOLE_SIDE if job["suite"] == "seq" else kg.RECBOLE_SIDE),
              "seed": seed, "use_gpu": True}
        r = recbole_run(row, export_dir, "ml-100k", ov, WORK / "runs" / SUITE / f"{job['id']}.json",
                        WORK / "logs" / SUITE / f"{job['id']}.log")
    else:
        if job["suite"] == "seq":
            model, ov = row, {**seq.BASE, **split_cfg}
        else:
            model, extra = kg.MAIN[row]
            ov = {**kg.BASE, **extra, **split_cfg, "learning_rate": kg.SIDE_LR}
        r = _ours(model, ov, job)
    r.update(row=row, seed=seed, side_by_side=True, device="cuda", protocol=job["suite"],
             split_sha256=split_hash(export_dir))
    return r


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--only")
    p.add_argument("--features", help="folder of <dataset>-text.npz / <dataset>-image.npz")
    p.add_argument("--workers", type=int, default=1,
                   help="jobs at once (never for the speed-* jobs, whose times must be alone)")
    a = p.parse_args()
    FEATURES.update(feature_files(a.features))
    run_queue(SUITE, jobs(), run, a.only, a.workers)
