"""Multi-KG4Rec's speed against KGAT's on ML-100K (issue: exact fusion made cheap).

Two measurements, each written to ``results/multikg_speed/<kind>-<tag>.json``:

* ``profile``: one CF step of Multi-KG4Rec (ML-100K, its packaged defaults, the exact fusion),
  forward + backward + optimiser step, under ``torch.profiler`` at one torch thread after
  ``--warmup`` unprofiled steps; the operator table (self CPU time per operator, summed over
  ``--steps`` profiled steps and divided by their number), largest first.
* ``ratio``: the training epoch time (the trainer's loop: ``on_epoch_start``, then every CF and KG
  batch with zero_grad / loss / backward / Adam step) of Multi-KG4Rec and of KGAT in this same
  process, alternating ``--rounds`` times (KGAT, Multi-KG4Rec, KGAT, ...), at ``--threads``
  threads; the medians and their ratios, by wall time and by process CPU time. On a shared
  machine the seconds mean little; the ratios, measured in one run, are the figures (target: at
  most 3), and under heavy load the CPU-time ratio is the steadier one.

    python benchmarks/multikg_speed.py profile --tag before
    python benchmarks/multikg_speed.py ratio --tag before [--threads 2] [--rounds 1]
        [--max-steps 3] [--approx '{"fusion_items_per_batch": 256}'] [--code COMMIT]

A measurement whose JSON exists is not repeated (delete it to measure again). ``--set KEY=VALUE``
(JSON values) overrides Multi-KG4Rec's config (e.g. ``--set fusion_items_per_batch=256``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import RESULTS, git_sha, relative_command, write_json  # noqa: E402

from mmkgrec.api import prepare  # noqa: E402
from mmkgrec.config import load_config  # noqa: E402
from mmkgrec.training.trainer import make_optimizer, training_batches  # noqa: E402

DATASET = "ml-100k"
OUT = RESULTS / "multikg_speed"
QUIET = {"show_progress": False}


def build(model: str, threads: int, overrides: dict | None = None):
    cfg = load_config(model, DATASET, overrides={**QUIET, "threads": threads, **(overrides or {})})
    _, split, net, _, _ = prepare(cfg)
    return net, split, cfg, training_batches(net, split, cfg), make_optimizer(net.parameters(), cfg)


def step(net, opt, batch) -> None:
    opt.zero_grad(set_to_none=True)
    net.loss(batch).backward()
    opt.step()


def trainer_epoch(net, batches, opt, epoch: int) -> dict:
    """One epoch as the trainer runs it (``on_epoch_start``, then every batch, drawn inside the
    timing): its wall and process CPU seconds (``wall_epoch_s``, ``cpu_epoch_s``)."""
    torch.manual_seed(epoch)
    rng = np.random.default_rng(epoch)
    net.train()
    t0, c0 = time.perf_counter(), time.process_time()
    net.on_epoch_start(epoch)
    for batch in batches.epoch(rng):
        step(net, opt, batch)
    return {"wall_epoch_s": time.perf_counter() - t0, "cpu_epoch_s": time.process_time() - c0}


def cf_batches(net, batches, n: int) -> list[dict]:
    out = []
    for b in batches.epoch(np.random.default_rng(0)):
        if b.get("phase", "cf") == "cf":
            out.append(b)
            if len(out) == n:
                break
    return out


def profile(args, overrides: dict) -> dict:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    net, _, cfg, batches, opt = build("MultiKG4Rec", 1, overrides)
    net.train()
    net.on_epoch_start(1)
    todo = cf_batches(net, batches, args.warmup + args.steps)
    for b in todo[:args.warmup]:
        step(net, opt, b)
    t0 = time.perf_counter()
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for b in todo[args.warmup:]:
            step(net, opt, b)
    wall = (time.perf_counter() - t0) / args.steps
    rows = []
    for e in prof.key_averages():
        rows.append({"op": e.key, "calls": e.count / args.steps,
                     "self_ms": e.self_cpu_time_total / 1000 / args.steps,
                     "total_ms": e.cpu_time_total / 1000 / args.steps})
    rows.sort(key=lambda r: -r["self_ms"])
    total = sum(r["self_ms"] for r in rows)
    for r in rows:
        r["self_share"] = r["self_ms"] / total if total else 0.0
    return {"kind": "profile", "model": "MultiKG4Rec", "dataset": DATASET, "threads": 1,
            "steps": args.steps, "warmup": args.warmup,
            "train_batch_size": cfg["train_batch_size"], "overrides": overrides,
            "step_wall_s_profiled": wall, "self_ms_total": total,
            "table": rows[:args.top]}


def timed_epoch(net, batches, opt, epoch: int, max_steps: int) -> dict:
    """One epoch's wall time and process CPU time (all threads): all of it (``max_steps`` 0),
    or ``on_epoch_start`` plus the first ``max_steps`` CF and ``max_steps`` KG steps, scaled to
    the epoch's counts of each (an estimate, for a machine too loaded to run whole epochs of
    every model). On a loaded machine the CPU time varies far less than the wall time."""
    torch.manual_seed(epoch)
    net.train()
    todo = list(batches.epoch(np.random.default_rng(epoch)))
    counts = {"cf": 0, "kg": 0}
    for b in todo:
        counts[b.get("phase", "cf")] += 1
    out = {clock: {"start_s": 0.0, "cf": 0.0, "kg": 0.0} for clock in ("wall", "cpu")}
    t0, c0 = time.perf_counter(), time.process_time()
    net.on_epoch_start(epoch)
    out["wall"]["start_s"] = time.perf_counter() - t0
    out["cpu"]["start_s"] = time.process_time() - c0
    done = {"cf": 0, "kg": 0}
    for b in todo:
        phase = b.get("phase", "cf")
        if max_steps and done[phase] >= max_steps:
            continue
        t0, c0 = time.perf_counter(), time.process_time()
        step(net, opt, b)
        out["wall"][phase] += time.perf_counter() - t0
        out["cpu"][phase] += time.process_time() - c0
        done[phase] += 1
    res = {"steps": counts, "timed_steps": done}
    for clock, o in out.items():
        step_s = {k: o[k] / done[k] for k in counts if done[k]}
        res[f"{clock}_start_s"], res[f"{clock}_step_s"] = o["start_s"], step_s
        res[f"{clock}_epoch_s"] = o["start_s"] + sum(step_s[k] * counts[k] for k in step_s)
    return res


def ratio(args, overrides: dict) -> dict:
    mkg_layers = load_config("MultiKG4Rec", DATASET)["layers"]
    models = {"KGAT": build("KGAT", args.threads),
              "KGAT-depth": build("KGAT", args.threads, {"layers": mkg_layers}),
              "MultiKG4Rec": build("MultiKG4Rec", args.threads, overrides)}
    for ov in args.approx:
        models[f"MultiKG4Rec {json.dumps(ov)}"] = build("MultiKG4Rec", args.threads,
                                                        {**overrides, **ov})
    runs = {k: [] for k in models}
    load_before = list(os.getloadavg())
    # epoch 0 first (no attention refresh), untimed, as a warm-up; then epochs 1, 2, ... timed,
    # the models alternating
    for net, _, _, batches, opt in models.values():
        timed_epoch(net, batches, opt, 0, min(args.max_steps, 1) if args.max_steps else 0)
    for r in range(args.rounds):
        for name, (net, _, _, batches, opt) in models.items():
            runs[name].append(timed_epoch(net, batches, opt, r + 1, args.max_steps))
    out = {"kind": "ratio", "dataset": DATASET, "threads": args.threads, "rounds": args.rounds,
           "max_steps": args.max_steps, "overrides": overrides, "kgat_depth_layers": mkg_layers,
           "runs": runs, "load_before": load_before, "load_after": list(os.getloadavg())}
    for clock in ("wall", "cpu"):
        med = {k: statistics.median(x[f"{clock}_epoch_s"] for x in v) for k, v in runs.items()}
        out[f"median_{clock}_epoch_s"] = med
        for ref, key in (("KGAT", "ratio"), ("KGAT-depth", "ratio_same_depth")):
            out[f"{key}_{clock}"] = {k: med[k] / med[ref] for k in med
                                     if k.startswith("MultiKG4Rec")}
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("kind", choices=("profile", "ratio"))
    p.add_argument("--tag", required=True, help="names the result file: <kind>-<tag>.json")
    p.add_argument("--threads", type=int, default=2, help="ratio: torch threads")
    p.add_argument("--rounds", type=int, default=1, help="ratio: timed epochs per model")
    p.add_argument("--max-steps", type=int, default=0, help="ratio: time this many CF and KG "
                   "steps per epoch and scale to the epoch (0: whole epochs)")
    p.add_argument("--approx", action="append", type=json.loads, default=[], metavar="JSON",
                   help="ratio: also time Multi-KG4Rec with these overrides (an approximation, "
                        "or an ablation such as {\"fusion\": \"none\"})")
    p.add_argument("--code", default=None, help="the code measured, when not this checkout's "
                   "HEAD (e.g. the commit before a change, run from its own copy of src)")
    p.add_argument("--steps", type=int, default=2, help="profile: profiled CF steps")
    p.add_argument("--warmup", type=int, default=1, help="profile: unprofiled CF steps first")
    p.add_argument("--top", type=int, default=30, help="profile: operators kept")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a Multi-KG4Rec config override (JSON value)")
    args = p.parse_args(argv)
    overrides = {}
    for kv in args.set:
        k, _, v = kv.partition("=")
        try:
            overrides[k] = json.loads(v)
        except json.JSONDecodeError:
            overrides[k] = v
    out = OUT / f"{args.kind}-{args.tag}.json"
    if out.exists():
        print(f"{out.relative_to(ROOT)} exists; delete it to measure again")
        return
    t0 = time.time()
    result = profile(args, overrides) if args.kind == "profile" else ratio(args, overrides)
    result.update(tag=args.tag, command=relative_command(sys.argv and [sys.executable, *sys.argv]),
                  git_sha=git_sha(), code=args.code, finished_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
                  wall_s=time.time() - t0, torch=torch.__version__)
    write_json(out, result)
    if args.kind == "ratio":
        for clock in ("cpu", "wall"):
            print(f"{clock}: ratio {result[f'ratio_{clock}']} same depth "
                  f"{result[f'ratio_same_depth_{clock}']}")
    else:
        print(f"profiled step {result['step_wall_s_profiled']:.3f} s")
        for r in result["table"][:15]:
            print(f"{r['op']:40s} {r['self_ms']:9.2f} ms {100 * r['self_share']:5.1f}%")


if __name__ == "__main__":
    main()
