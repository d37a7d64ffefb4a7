"""Tables of finished runs with paired significance tests over users."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .metrics import canonical
from .significance import align_per_user, paired_ttest


def read_run(run_dir: str | Path) -> tuple[dict, dict]:
    """(metrics.json, per-user test metrics with ``user_ids``) of a finished run."""
    run_dir = Path(run_dir)
    mpath = run_dir / "metrics.json"
    if not mpath.is_file():
        raise FileNotFoundError(f"{mpath} not found: {run_dir} is not a finished run directory")
    metrics = json.loads(mpath.read_text())
    per_user = {}
    ppath = run_dir / "per_user_test.npz"
    if ppath.is_file():
        with np.load(ppath, allow_pickle=False) as z:
            per_user = {k: z[k] for k in z.files}
    return metrics, per_user


def compare_runs(run_dirs: list, metric: str = "ndcg@10") -> str:
    """A table of the runs' test metrics; each run is tested against the best run on ``metric``
    with a paired t-test over the users both evaluated."""
    metric = canonical(metric)
    runs = [read_run(d) for d in run_dirs]
    keys = list(runs[0][0]["test"])
    if metric not in keys:
        raise KeyError(f"metric '{metric}' not in the runs' test metrics {keys}")
    best = int(np.argmax([m["test"][metric] for m, _ in runs]))
    head = ["run", "model"] + keys + [f"p vs best ({metric})"]
    lines = [head]
    for j, ((m, pu), d) in enumerate(zip(runs, run_dirs)):
        if j == best:
            p = "best"
        elif metric in pu and metric in runs[best][1]:
            a, b = align_per_user(pu["user_ids"], pu[metric], runs[best][1]["user_ids"],
                                  runs[best][1][metric])
            p = f"{paired_ttest(a, b)['p']:.3g}"
        else:
            p = "n/a"
        lines.append([str(d), m["model"]] + [f"{m['test'][k]:.4f}" for k in keys] + [p])
    widths = [max(len(r[c]) for r in lines) for c in range(len(head))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in lines)
