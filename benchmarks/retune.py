"""Equal tuning budgets for the rows behind a contested claim, through ``mmkgrec tune``.

The KG suite chose each row's learning rate under a 50-epoch cap; BPR's chosen rate was bound by
that cap while KGAT's later rows ran 150 epochs, and every KG row read ML-100K's ``.link`` as
given (keyed by MovieLens-1M ids: each film's KG is another film's). Here each row of a claim gets
the same budget, through the library's own tuner: the same grid (``GRID``: learning rate x L2
weight, every point tried: ``len(GRID)`` trials), the same epoch cap and patience, the same
validation metric; the chosen configuration (``best.yaml``) then trains with seeds ``SEEDS``, and
the rows are compared on those seeds with paired tests in docs/BENCHMARKS.md.

Claim ``kg``: does a knowledge graph of the right films help? KGAT against BPR and LightGCN on
ML-100K, random 8:1:1 per user, full ranking, the packaged settings (the link re-keyed).

Jobs: ``tune-ROW`` (one ``mmkgrec tune`` into ``$WORK/retune/ROW``; a killed tune resumes from
its finished trials) and ``ROW-sSEED`` (``mmkgrec train --config best.yaml --set seed=...``).

    python benchmarks/retune.py [--only SUBSTRING]
Resumable: a job whose JSON exists in benchmarks/results/retune/ is skipped.
"""

from __future__ import annotations

import json
import shutil
import sys

import common
from common import RESULTS, WORK, mmkgrec_run, queue_main, relative_command, run_cmd

SUITE = "retune"
SEEDS = [2020, 2021, 2022]
METRIC = "ndcg@20"
# the same for every row: a 2 x 2 grid, each point tried once
GRID = {"learning_rate": [0.001, 0.005], "reg_weight": [1e-5, 1e-3]}
FIXED = {"epochs": 50, "stopping_step": 10, "valid_metric": METRIC, "show_progress": False,
         "embedding_size": 64, "train_batch_size": 2048, "threads": 1}
CLAIMS = {"kg": {"dataset": "ml-100k", "rows": {"BPR": "BPR", "LightGCN": "LightGCN",
                                                "KGAT": "KGAT"},
                 "pairs": [("KGAT", "BPR"), ("KGAT", "LightGCN")]}}


def rows() -> dict[str, tuple[str, str, str]]:
    """row -> (claim, model, dataset)."""
    return {row: (claim, model, c["dataset"]) for claim, c in CLAIMS.items()
            for row, model in c["rows"].items()}


def jobs() -> list[dict]:
    out = [{"id": f"tune-{row}", "row": row} for row in rows()]
    out += [{"id": f"{row}-s{s}", "row": row, "seed": s} for row in rows() for s in SEEDS]
    return out


def tune_dir(row: str):
    return WORK / SUITE / row


def tune(job: dict) -> dict:
    claim, model, dataset = rows()[job["row"]]
    cmd = [sys.executable, "-m", "mmkgrec.cli", "tune", model, dataset,
           "--out", str(tune_dir(job["row"]))]
    for key, values in GRID.items():
        cmd += ["--grid", f"{key}=" + ",".join(json.dumps(v) for v in values)]
    for key, value in {**FIXED, "seed": SEEDS[0]}.items():
        cmd += ["--set", f"{key}={json.dumps(value)}"]
    run_cmd(cmd, WORK / "logs" / SUITE / f"{job['id']}.log")
    summary = json.loads((tune_dir(job["row"]) / "tune.json").read_text())
    trials = sorted((tune_dir(job["row"]) / "trials").glob("trial-*.json"))
    records = [json.loads(p.read_text()) for p in trials]
    return {"row": job["row"], "claim": claim, "model": model, "dataset": dataset,
            "tuning": True, "grid": GRID, "fixed": FIXED, "metric": METRIC,
            "trials": [{"params": r["params"], "value": r["value"], "best_epoch": r["best_epoch"],
                        "epochs_run": r["epochs_run"], "seconds": r["seconds"]} for r in records],
            "best": summary.get("best", {}).get("params") if isinstance(summary.get("best"), dict)
            else None,
            "command": relative_command(cmd)}


def train(job: dict) -> dict:
    claim, model, dataset = rows()[job["row"]]
    best = tune_dir(job["row"]) / "best.yaml"
    if not best.exists():
        raise common.NotReady(f"tune-{job['row']} has not finished ({best} missing)")
    run_dir = WORK / "runs" / SUITE / job["id"]
    ov = {"config_file": str(best), "seed": job["seed"], "split_seed": job["seed"]}
    r = mmkgrec_run(model, dataset, ov, run_dir, WORK / "logs" / SUITE / f"{job['id']}.log")
    shutil.rmtree(run_dir, ignore_errors=True)
    chosen = {k: r["config"].get(k) for k in GRID}
    r.update(row=job["row"], claim=claim, seed=job["seed"], chosen=chosen)
    return r


def run(job: dict) -> dict:
    return train(job) if "seed" in job else tune(job)


if __name__ == "__main__":
    queue_main(SUITE, jobs(), run)
