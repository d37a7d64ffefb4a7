"""Feature extraction throughput through the store vs the bare encoder (``benchmarks/features.py``)."""

from __future__ import annotations

from .tables import command, load


def section() -> list[str]:
    runs = load("features")
    if not runs:
        return []
    L = ["## Feature extraction throughput (ML-100K)", "",
         "Items per second through the feature store (fresh cache) next to the bare encoder on the "
         "same inputs in the same process, median of repetitions. Target: store >= 0.9x bare.", "",
         "| encoder | dim | items | bare items/s | store items/s | store / bare | served again from the store, items/s |",
         "|---|---|---|---|---|---|---|"]
    for r in runs:
        f = r["features"]
        L.append(f"| {f['store_stats']['encoder']} | {f['dim']} | {f['n_items_encoded']} | "
                 f"{f['bare_items_per_s']:.0f} | {f['store_items_per_s']:.0f} | {f['store_over_bare']:.2f} | "
                 f"{f['reuse_items_per_s']:.0f} |")
    notes = [r["features"].get("note") for r in runs if r["features"].get("note")]
    L += [""] + [f"Note: {n}." for n in notes] + [""]
    L += [f"- `{r['job']}`: `{command(r)}` (git {r.get('git_sha', '?')[:12]})" for r in runs]
    return L + [""]
