"""Training-epoch times of two coldstart rows in one process, epochs interleaved (issue 20).

On a shared, loaded machine only a ratio measured this way means anything: the epochs of both
models alternate, so load changes hit them alike. Settings are the coldstart queue's capped
random-split jobs (``coldstart.settings``), one torch thread; the feature cache must be warm.
Prints each row's epoch wall times, the median ratio, and the ratio of median CPU times; with
``--profile``, one more epoch of each under ``torch.profiler`` (top operators by self CPU time).

    python benchmarks/epoch_ratio.py [--rows LLMKGRec,LightGCN] [--epochs 5] [--profile]

The report's figure is the queue's own (``coldstart.py``'s ``cap-random-*`` rows, run back to
back); this script is for comparing code changes.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

import coldstart


def trainer(row: str):
    from mmkgrec.api import prepare
    from mmkgrec.config import load_config
    from mmkgrec.training.trainer import Trainer

    model, ov = coldstart.settings({"row": row, "split": "random", "seed": 2020, "capped": True})
    ov = dict(ov)
    cfg = load_config(model, "ml-100k", ov.pop("config_file", None), ov)
    _, split, net, _, _ = prepare(cfg)
    return Trainer(net, split, cfg)


def epoch(tr, e: int) -> tuple[float, float]:
    """One training epoch as the trainer runs it (no evaluation): (wall s, CPU s)."""
    from mmkgrec.training.trainer import epoch_seed

    seed = epoch_seed(tr.config["seed"], e)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    tr.model.train()
    t0, c0 = time.perf_counter(), time.process_time()
    tr.model.on_epoch_start(e)
    tr._epoch(tr.batches.epoch(rng, tr.device), e)
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", default="LLMKGRec,LightGCN")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--profile", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(1)
    rows = a.rows.split(",")
    trs = {r: trainer(r) for r in rows}
    wall = {r: [] for r in rows}
    cpu = {r: [] for r in rows}
    for e in range(a.epochs):
        for r in rows:
            w, c = epoch(trs[r], e)
            wall[r].append(w)
            cpu[r].append(c)
    for r in rows:
        print(f"{r}: epochs {' '.join(f'{t:.2f}' for t in wall[r])} s, median "
              f"{statistics.median(wall[r]):.3f} s (CPU {statistics.median(cpu[r]):.3f} s)")
    if len(rows) == 2:
        (a0, a1), (c0, c1) = ((statistics.median(d[r]) for r in rows) for d in (wall, cpu))
        print(f"ratio {rows[0]}/{rows[1]}: {a0 / a1:.2f} (CPU time {c0 / c1:.2f})")
    if a.profile:
        from torch.profiler import ProfilerActivity, profile

        for r in rows:
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                epoch(trs[r], a.epochs)
            print(f"== {r}")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
