"""Last.FM under KGCN's click-through protocol (``benchmarks/ctr.py``).

Two kinds of figures: *global* AUC / F1 over all test pairs (the library's ``auc`` / ``f1``), and
the *batch mean* KGCN's reference code reports (``auc_batch`` / ``f1_batch``: the mean over
evaluation batches of ``ctr_batch_size`` pairs, :func:`mmkgrec.evaluation.ctr.batch_mean_metrics`).
Published KGCN figures are batch means, so the gap to them is taken from the batch means; a run
recorded before the batch means existed shows its global figures only and says that it needs a
rerun (its stored per-user results do not hold the per-pair scores the batches need).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from .tables import fmt, mean_std, suite_runs

BATCH = ("auc_batch", "f1_batch")


def batch_size(r: dict) -> int | None:
    """The batch of a run's batch-mean figures (``ctr_batch_size``, null: ``train_batch_size``)."""
    cfg = r.get("config") or {}
    size = cfg.get("ctr_batch_size")
    return size if size is not None else cfg.get("train_batch_size")


def _batch_cells(rs: list[dict]) -> tuple[list[str], bool]:
    """The batch-mean cells of a row's runs, and whether every run has them."""
    have = [r for r in rs if all(k in r["test"] for k in BATCH)]
    if len(have) < len(rs):
        return ["needs a rerun", "needs a rerun"], False
    sizes = sorted({batch_size(r) for r in have})
    tag = f" ({'/'.join(str(s) for s in sizes)})"
    return [fmt(*mean_std([r["test"][k] for r in have])) + (tag if k == "auc_batch" else "")
            for k in BATCH], True


def section() -> list[str]:
    suite, runs = suite_runs("ctr")
    if not runs:
        return []
    by_row = defaultdict(list)
    for r in runs:
        by_row[r["row"]].append(r)
    keys = ["auc", "f1", "accuracy"]
    L = ["## Last.FM under KGCN's click-through protocol", "",
         "KGCN's labelled pairs (positives and as many sampled unseen items per user), split 6:2:2 at "
         "random; log loss on the labelled training pairs; early stopping on validation AUC; "
         "probabilities = sigmoid(score), F1 of the positive class at 0.5. KGCN with the paper's "
         "music settings (`configs/variant/KGCN-lastfm-ctr.yaml`), KGAT with its Last-FM "
         "architecture (`KGAT-lastfm-ctr.yaml`). Last.FM has no text or images: Multi-KG4Rec runs "
         "as an ID-only graph (one seed). Target: KGCN within 0.01 AUC of the published 0.796.", "",
         "Two kinds of figures: *global* AUC and F1 over all test pairs, and the *batch mean* that "
         "KGCN's reference code reports, the mean of each evaluation batch's AUC and F1 (batches "
         "of `ctr_batch_size` pairs, in brackets; the pairs in a fixed random order, the last "
         "incomplete batch dropped, as that code does). The published figures are batch means, so "
         "the AUC gap is taken from the batch means where the runs have them, else from the "
         "global AUC (marked *global*). A run recorded before the batch means were computed "
         "needs a rerun for them (`python benchmarks/ctr.py` after moving its JSON aside): its "
         "stored results hold per-user, not per-pair, scores.", "",
         "| model | seeds | test AUC (global) | test F1 (global) | test accuracy | test AUC (batch "
         "mean) | test F1 (batch mean) | published AUC / F1 (batch mean) | AUC gap |",
         "|---|---|---|---|---|---|---|---|---|"]
    for row in suite.ROWS:
        rs = by_row.get(row, [])
        if not rs:
            L.append(f"| {row} | 0 | not run | | | | | | |")
            continue
        cells = [fmt(*mean_std([r["test"][k] for r in rs])) for k in keys]
        batch, batched = _batch_cells(rs)
        pub = suite.PUBLISHED.get(row)
        gap = "-"
        if pub:
            ours = np.mean([r["test"]["auc_batch" if batched else "auc"] for r in rs])
            gap = f"{ours - pub['auc']:+.4f}" + ("" if batched else " (global)")
        pub_s = f"{pub['auc']} / {pub['f1']}" if pub else "-"
        L.append(f"| {row} | {len(rs)} | " + " | ".join(cells + batch) + f" | {pub_s} | {gap} |")
    L += ["", "Commands: `python benchmarks/ctr.py` (each JSON in `benchmarks/results/ctr/` holds its "
          "exact command)."]
    return L + [""]
