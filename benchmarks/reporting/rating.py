"""Rating prediction on ML-100K's 5 folds: our BiasedMF and BiasOnly beside scikit-surprise's SVD
and SVD++ (``benchmarks/rating.py``)."""

from __future__ import annotations

import statistics
from collections import defaultdict

import numpy as np

from .stats import TESTS, _p, _significant, adjust, compare, test_cells
from .tables import command, fmt, header, load_sentence, mean_std, suite_runs

KEYS = ["rmse", "mae", "mse"]
PAIRS = [("BiasedMF", "SVD"), ("BiasedMF", "SVDpp"), ("BiasedMF", "BiasOnly"), ("SVDpp", "SVD")]


def _median(xs) -> float:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def _chosen(rs: list[dict]) -> str:
    """The settings the folds chose, with how many folds chose each."""
    counts = defaultdict(int)
    for r in rs:
        chosen = r.get("chosen") or r["config"]["chosen"]  # ours, Surprise's
        counts[", ".join(f"{k}={v}" for k, v in sorted(chosen.items()))] += 1
    return "; ".join(f"{s} ({n})" for s, n in sorted(counts.items(), key=lambda x: -x[1]))


def _sentence(a: str, b: str, c: dict, n_comp: int) -> str:
    """A comparison on RMSE (lower is better) in words chosen by the adjusted test over users."""
    word = "lower" if c["diff"] < 0 else "higher"
    over_folds = (f", {_p(c['holm_seeds'])} over {c['n_seeds']} folds' RMSE" if c["n_seeds"] > 1
                  else "")
    stats = (f"{c['diff']:+.4f}; p = {_p(c['holm_users'])} over {c['n_users']} users' means over "
             f"the folds{over_folds}; Holm-adjusted over {n_comp} comparisons")
    if _significant(c["holm_users"]):
        return f"{a}'s test RMSE is {word} than {b}'s ({stats})."
    return f"{a}'s test RMSE is not significantly different from {b}'s ({stats})."


def section() -> list[str]:
    suite, runs = suite_runs("rating")
    if not runs:
        return []
    by_row = defaultdict(list)
    for r in runs:
        by_row[r["row"]].append(r)
    L = ["## Rating prediction on ML-100K: BiasedMF beside scikit-surprise", "",
         f"Our `kfold` split, {suite.N_FOLDS} folds per user (seed {suite.SEED}; validation: the "
         "`valid_ratio` 0.1 slice of each user's training folds), exported fold by fold and read "
         "by scikit-surprise 1.1.5 through `PredefinedKFold`. One grid for every model, searched on "
         "the validation ratings inside the training folds (the test fold is never read while "
         f"choosing): factors {suite.FACTORS} x L2 weight {suite.REGS} (BiasOnly: the L2 weights). "
         "Surprise: `GridSearchCV` over (train, valid) with its default 20 SGD epochs at lr 0.005, "
         "the chosen setting refitted on the whole of the training folds; ours: Adam at lr 0.02 "
         "on batches of 4096 ratings, early stopping on validation RMSE, the chosen run as trained "
         "(on the training folds without the validation slice). Every prediction is clipped to the training ratings' range. "
         "*fit s*: training of the chosen setting (median over folds); *tuning s*: the whole grid. "
         "Published ML-100K RMSE (Surprise's documentation, its own 5-fold split): SVD 0.934, "
         "SVD++ 0.920. Every timed process runs one thread on a 2-core machine, so a load "
         "average up to about 2 leaves it a core of its own. " + load_sentence(runs), ""]
    L += header("| model | folds | test RMSE | test MAE | test MSE | fit s | tuning s | chosen "
                "(folds) | published RMSE |")
    for row in suite.ROWS:
        rs = sorted(by_row.get(row, []), key=lambda r: r["fold"])
        if not rs:
            L.append(f"| {row} | 0 | not run | | | | | | |")
            continue
        cells = [fmt(*mean_std([r["test"][k] for r in rs])) for k in KEYS]
        fit = _median([r["timing"].get("fit_s") for r in rs])
        tune = _median([r["timing"].get("tune_s") for r in rs])
        pub = suite.PUBLISHED.get(row)
        published = f"{pub:.3f}" if pub else "-"
        L.append(f"| {row} | {len(rs)} | " + " | ".join(cells) + f" | {fit:.1f} | {tune:.1f} | "
                 f"{_chosen(rs)} | {published} |")
    cs = adjust([compare(by_row.get(a, []), by_row.get(b, []), "rmse") for a, b in PAIRS])
    L += ["", f"Paired tests on test RMSE, {TESTS.replace('seeds', 'folds')} (a negative "
          "difference: the first model's RMSE is lower, i.e. better).", ""]
    L += header("| comparison | mean difference (RMSE) | p over users (Holm) | p over folds "
                "(Holm) |")
    for (a, b), c in zip(PAIRS, cs):
        L.append(f"| {a} vs {b} | " + ("not run | - | - |" if c is None else
                                       f"{c['diff']:+.4f} | {test_cells(c)} |"))
    done = [(a, b, c) for (a, b), c in zip(PAIRS, cs) if c is not None]
    L += [""] + [_sentence(a, b, c, len(done)) for a, b, c in done]
    ours, svd = by_row.get("BiasedMF", []), by_row.get("SVD", [])
    if ours and svd:
        r_ours, r_svd = (np.mean([r["test"]["rmse"] for r in x]) for x in (ours, svd))
        f_ours, f_svd = (_median([r["timing"].get("fit_s") for r in x]) for x in (ours, svd))
        L += ["", f"Target (our BiasedMF at or below Surprise's SVD, and faster): RMSE "
              f"{r_ours:.4f} vs {r_svd:.4f}, {'met' if r_ours <= r_svd else 'not met'}; fit "
              f"{f_ours:.1f} s vs {f_svd:.1f} s per fold, "
              + (f"faster ({f_svd / f_ours:.1f}x)." if f_ours < f_svd
                 else f"not faster ({f_ours / f_svd:.1f}x slower).")]
        for row in ("SVD", "SVDpp"):
            rs = by_row.get(row, [])
            if rs:
                m = np.mean([r["test"]["rmse"] for r in rs])
                L.append(f"Surprise's {row} here: RMSE {m:.4f}, {m - suite.PUBLISHED[row]:+.4f} "
                         f"against its published {suite.PUBLISHED[row]:.3f}.")
    example = next((r for r in runs if r["row"] == "BiasedMF"), runs[0])
    L += ["", "Commands: `python benchmarks/rating.py` (Surprise in the venv of "
          "`bash benchmarks/surprise_env.sh`); each JSON in `benchmarks/results/rating/` holds its "
          f"exact command, e.g. `{command(example)}`."]
    return L + [""]
