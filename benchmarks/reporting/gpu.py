"""The GPU machine's runs: side by side with RecBole, seconds per epoch, and the KG models with a
longer budget (``benchmarks/gpu.py``)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from . import figures
from .kg import early_stops, grouped, speed_table
from .stats import TESTS, significance_rows
from .tables import (KG_KEYS, cells, epoch_times, fmt, load, mean_std, suite_runs, target_cells,
                     user_means)


def section() -> list[str]:
    suite, runs = suite_runs("gpu")
    kg, seq = suite.kg, suite.seq
    if not runs:
        return []
    side, speed, long = defaultdict(lambda: defaultdict(list)), {}, defaultdict(list)
    for r in runs:
        if r.get("speed"):
            speed[r["row"]] = r
        elif r.get("long"):
            long[r["row"]].append(r)
        else:
            side[(r["protocol"], r["row"])][r["library"]].append(r)
    v = runs[0]["versions"]
    L = ["## On a GPU: side by side with RecBole, and seconds per epoch", "",
         f"One NVIDIA H100 (80 GB), 16 CPU cores; torch {v.get('torch')}, both libraries on the "
         "GPU in the same run, torch's default CPU threads for both, features read from files "
         "exported from the CPU machine's store (`--features`). Each job copies its settings from "
         "the CPU suite (sequential: at most "
         f"{seq.EPOCHS} epochs, patience {seq.PATIENCE}, validation NDCG@10, learning rate "
         f"{seq.LR}; KG: at most {kg.EPOCHS} epochs, patience {kg.PATIENCE}, validation NDCG@20, "
         f"learning rate {kg.SIDE_LR}), so RecBole's SASRec runs its full epoch budget here (the "
         "CPU suite capped it). Both libraries of a seed train on the same files (`split` is the "
         "first 8 hex digits of their sha256; the sequential split is time-ordered, so every seed "
         "has the same one and seeds change the initialisation only). RecBole's sequential metrics "
         "are averaged per user first, as ours are. Target: ours >= RecBole's minus max(0.005, one "
         "std), and >= 3x faster per epoch.", "",
         "| protocol | model | library | seeds | metric | test | difference | allowed | met | "
         "s/epoch | speed-up | split |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (proto, m), libs in sorted(side.items()):
        key = "ndcg@10" if proto == "seq" else "ndcg@20"
        val = {lib: [user_means(r, [key])[key] if (lib == "recbole" and proto == "seq")
                     else r["test"][key] for r in rs] for lib, rs in libs.items()}
        secs = {lib: epoch_times(rs)[0] for lib, rs in libs.items()}
        for lib in ("mmkgrec", "recbole"):
            rs = libs.get(lib, [])
            if not rs:
                L.append(f"| {proto} | {m} | {lib} | 0 | {key} | not run | | | | | | |")
                continue
            extra = " | | |"
            su = ""
            if lib == "mmkgrec" and val.get("recbole"):
                extra = target_cells(val["mmkgrec"], val["recbole"])
                su = f"{secs['recbole'] / secs['mmkgrec']:.1f}x"
            hashes = sorted({r["split_sha256"][:8] for r in rs})
            L.append(f"| {proto} | {m} | {'RecBole' if lib == 'recbole' else lib} | {len(rs)} | "
                     f"{key} | {fmt(*mean_std(val[lib]))} | {extra} {secs[lib]:.2f} | {su} | "
                     f"{', '.join(hashes)} |")
    L += figures.embed("gpu-speed", lambda: figures.speed_plan(
        [(f"{m} ({proto})", libs.get("mmkgrec"), libs.get("recbole")) for (proto, m), libs in sorted(side.items())],
        "side by side with RecBole on the GPU"))
    L += ["", f"Seconds per epoch of our models on the GPU ({suite.SPEED_EPOCHS} epochs, median; KG "
          "rows on the KG protocol, sequential rows on the sequential one). Target (issue 4): one "
          "Multi-KG4Rec epoch at most 3x our KGAT's.", ""]
    L += speed_table(speed, suite.SPEED_KG + suite.SPEED_SEQ, suite.SPEED_KG)
    L += long_budget_lines(suite, long)
    L += ["", "Commands: `python benchmarks/gpu.py --features DIR` on the GPU machine (each JSON in "
          "`benchmarks/results/gpu/` holds its exact command); `tests/test_device.py` trains every "
          "registered model there and checks that the CPU scores the same weights alike."]
    return L + [""]


def long_budget_lines(suite, long: dict) -> list[str]:
    """The KG rows with the longer epoch budget and their paired tests."""
    if not long:
        return []
    L = ["", f"### KG models with a longer budget (at most {suite.LONG_EPOCHS} epochs, patience "
         f"{suite.LONG_PATIENCE})", "",
         _cpu_budget_note(suite.kg) + "Here each row trains at the learning rate the CPU suite's tuning chose, 3 seeds, same "
         "splits and settings otherwise, several jobs at once on the GPU (s/epoch are not speed "
         "figures).", "",
         "| model | lr | seeds | " + " | ".join(KG_KEYS) + " | best epochs | epochs run |",
         "|" + "---|" * (len(KG_KEYS) + 5)]
    for row in suite.LONG_ROWS:
        rs = sorted(long.get(row, []), key=lambda r: r["seed"])
        if not rs:
            L.append(f"| {row} | - | 0 | " + " | ".join("not run" for _ in KG_KEYS) + " | | |")
            continue
        L.append(f"| {row} | {rs[0]['lr']} | {len(rs)} | " + " | ".join(cells(rs, KG_KEYS))
                 + f" | {', '.join(str(r['best_epoch']) for r in rs)} | "
                 f"{', '.join(str(r['epochs_run']) for r in rs)} |")
    L += figures.embed("gpu-long-validation", lambda: figures.curves_plan(
        long, suite.LONG_ROWS, "ndcg@20", suite.LONG_EPOCHS, suite.LONG_PATIENCE, "KG models, longer budget"))
    L += ["", f"Paired t-tests on test NDCG@20 {TESTS}:", ""]
    L += significance_rows(long, [("KGAT", "BPR"), ("MKGAT", "KGAT"), ("MKGAT", "BPR"),
                                   ("MultiKG4Rec", "KGAT"), ("MultiKG4Rec", "MKGAT"),
                                   ("MultiKG4Rec", "BPR")], "ndcg@20")
    multi = long.get("MultiKG4Rec", [])
    if multi:
        curve = [h["valid"]["ndcg@20"] for h in sorted(multi, key=lambda r: r["seed"])[0]["history"]
                 if h.get("valid")]
        peak = int(np.argmax(curve))
        others = [r["best_epoch"] for row in ("KGAT", "MKGAT") for r in long.get(row, [])]
        fall = curve[peak] - curve[-1]
        L += ["", f"Multi-KG4Rec, validation NDCG@20 by epoch (seed {min(r['seed'] for r in multi)}): "
              f"peak {curve[peak]:.4f} at epoch {peak}, then {curve[-1]:.4f} at epoch "
              f"{len(curve) - 1}"
              + (f": it falls by {fall:.4f} after its peak" if fall > 0 else "")
              + (f"; KGAT's and MKGAT's best epochs are {min(others)}-{max(others)}."
                 if others else ".")]
    L += ["", "Command: `python benchmarks/gpu.py --only long- --workers 9 --features DIR`."]
    return L


def _cpu_budget_note(kg_suite) -> str:
    """What the CPU suite's budget did to the KGAT and MKGAT rows of the KG section: the seeds
    whose best epoch was the cap's last, and those the patience stopped early (empty without
    those results)."""
    final = grouped(kg_suite, load("kg"))[0]
    rows = {row: final[row] for row in ("KGAT", "MKGAT") if final.get(row)}
    if not rows:
        return ""
    capped = [f"{sum(r['best_epoch'] >= kg_suite.EPOCHS - 1 for r in rs)} of {len(rs)} {row} seeds"
              for row, rs in rows.items()]
    early = early_stops(rows, kg_suite.PATIENCE)
    return (f"In the KG section (at most {kg_suite.EPOCHS} epochs, patience {kg_suite.PATIENCE}) "
            f"{' and '.join(capped)} had their best epoch at the cap, validation still rising when "
            "it stopped them" + (f", and the patience stopped {early} in a dip after the first epochs"
                                 if early else "") + ". ")
