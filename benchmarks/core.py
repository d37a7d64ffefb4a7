"""Core benchmark: mmkgrec vs RecBole 1.2.1 on identical splits (issue: core).

Accuracy: ML-100K, random 8:1:1 per user split by mmkgrec and exported as RecBole benchmark files,
BPR and LightGCN with identical hyper-parameters (embedding 64, batch 2048, same learning rate,
L2 and patience, best epoch on valid MRR@10), 3 seeds.
Speed and memory (jobs named *-speed; run them on a quiet machine): ML-100K 10 epochs and
Amazon-Book (KGAT's train/test, validation carved from train) 2 epochs, one full validation and
one full test evaluation, peak RSS, and the bare matmul + top-20 bound in the same run.

    python benchmarks/core.py [--only SUBSTRING] [--seeds N] [--kind accuracy|speed|bound ...]
Resumable: a job whose JSON exists in benchmarks/results/core/ is skipped.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from common import WORK, export_split, mmkgrec_run, recbole_run, run_queue

HP = {  # identical for both libraries
    "BPR": {"learning_rate": 0.001, "epochs": 300, "stopping_step": 30},
    "LightGCN": {"learning_rate": 0.005, "epochs": 300, "stopping_step": 30, "n_layers": 2,
                 "reg_weight": 1e-5},
}
COMMON = {"embedding_size": 64, "train_batch_size": 2048, "valid_metric": "mrr@10"}
SPEED = {  # a fixed number of epochs, one evaluation at the end
    "ml-100k": {"epochs": 10, "eval_step": 10, "stopping_step": 0},
    "amazon-book": {"epochs": 2, "eval_step": 2, "stopping_step": 0},
}
PER_USER_BOOK = ["ndcg@20", "recall@20"]


def jobs(n_seeds: int) -> list[dict]:
    out = []
    for seed in [2020, 2021, 2022][:n_seeds]:
        for model in HP:
            for lib in ("mmkgrec", "recbole"):
                out.append({"id": f"ml-100k-{model}-{lib}-s{seed}", "kind": "accuracy", "lib": lib,
                            "model": model, "dataset": "ml-100k", "seed": seed})
    out.append({"id": "amazon-book-bound", "kind": "bound"})
    for ds in SPEED:
        for model in HP:
            for lib in ("mmkgrec", "recbole"):
                out.append({"id": f"{ds}-{model}-{lib}-speed", "kind": "speed", "lib": lib,
                            "model": model, "dataset": ds, "seed": 2020})
    return out


def run(job: dict) -> dict:
    if job["kind"] == "bound":
        cmd = [sys.executable, "benchmarks/bound.py", "--users", "70679", "--items", "24915",
               "--dim", "64", "--k", "20", "--chunk", "4096"]
        res = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
        return {"library": "torch", "model": "matmul+topk", "dataset": "amazon-book", "config": res,
                "timing": {"eval_s": res["bound_s"]}, "command": " ".join(cmd),
                "versions": {"torch": res["torch"]}}
    model, seed, ds = job["model"], job["seed"], job["dataset"]
    hp = dict(HP[model])
    if job["kind"] == "speed":
        hp.update(SPEED[ds])
    split_cfg = {"seed": seed, "split_seed": seed}
    export_dir = export_split(ds, WORK / "splits" / f"{ds}-s{seed}", split_cfg)
    log = WORK / "logs" / f"{job['id']}.log"
    keys = PER_USER_BOOK if ds == "amazon-book" else None
    if job["lib"] == "mmkgrec":
        ov = {**COMMON, **hp, **split_cfg, "show_progress": False}
        if ds == "amazon-book":
            ov["eval_batch_size"] = 4096
        r = mmkgrec_run(model, ds, ov, WORK / "runs" / job["id"], log, keys)
    else:
        ov = {**{k: v for k, v in COMMON.items() if k != "valid_metric"}, **hp, "seed": seed,
              "valid_metric": "MRR@10"}
        if ov.get("stopping_step") == 0:
            ov["stopping_step"] = 1000
        r = recbole_run(model, export_dir, ds, ov, WORK / "runs" / f"{job['id']}.json", log, keys)
    r["seed"] = seed
    return r


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--only")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--kind", choices=["accuracy", "speed", "bound"], action="append",
                   help="run only jobs of these kinds (default: all)")
    a = p.parse_args()
    todo = [j for j in jobs(a.seeds) if not a.kind or j["kind"] in a.kind]
    run_queue("core", todo, run, a.only)
