"""Last.FM under KGCN's click-through protocol (``benchmarks/ctr.py``)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from .tables import fmt, mean_std, suite_runs


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
         "| model | seeds | test AUC | test F1 | test accuracy | published AUC / F1 | AUC gap |",
         "|---|---|---|---|---|---|---|"]
    for row in suite.ROWS:
        rs = by_row.get(row, [])
        if not rs:
            L.append(f"| {row} | 0 | not run | | | | |")
            continue
        cells = [fmt(*mean_std([r["test"][k] for r in rs])) for k in keys]
        pub = suite.PUBLISHED.get(row)
        gap = (f"{np.mean([r['test']['auc'] for r in rs]) - pub['auc']:+.4f}" if pub else "-")
        pub_s = f"{pub['auc']} / {pub['f1']}" if pub else "-"
        L.append(f"| {row} | {len(rs)} | " + " | ".join(cells) + f" | {pub_s} | {gap} |")
    L += ["", "Commands: `python benchmarks/ctr.py` (each JSON in `benchmarks/results/ctr/` holds its "
          "exact command)."]
    return L + [""]
