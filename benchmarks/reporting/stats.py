"""Paired tests between the runs of two rows, and the tables that show them: shared by every
section (the tests themselves live in ``mmkgrec.evaluation.significance``)."""

from __future__ import annotations

import numpy as np

from mmkgrec.evaluation.significance import align_per_user, paired_ttest


def pooled_pairs(runs_a: list[dict], runs_b: list[dict], key: str):
    """Per-user values of two libraries/models, aligned by user within each seed, pooled."""
    by_seed_b = {r["seed"]: r for r in runs_b}
    a_all, b_all = [], []
    for ra in runs_a:
        rb = by_seed_b.get(ra["seed"])
        if rb is None or key not in ra.get("per_user", {}) or key not in rb.get("per_user", {}):
            continue
        a, b = align_per_user(np.asarray(ra["per_user"]["user_ids"], dtype=str), np.asarray(ra["per_user"][key], dtype=float),
                              np.asarray(rb["per_user"]["user_ids"], dtype=str), np.asarray(rb["per_user"][key], dtype=float))
        a_all.append(a)
        b_all.append(b)
    if not a_all:
        return None, None
    return np.concatenate(a_all), np.concatenate(b_all)


def seed_ttest(runs_a: list[dict], runs_b: list[dict], key: str) -> dict:
    """Paired t-test of mean test ``key`` over the seeds both sets of runs have."""
    sa = {r["seed"]: r["test"][key] for r in runs_a}
    sb = {r["seed"]: r["test"][key] for r in runs_b}
    common = sorted(set(sa) & set(sb))
    return paired_ttest([sa[x] for x in common], [sb[x] for x in common])


def comparison_cells(a_runs: list[dict], b_runs: list[dict], key: str) -> str:
    """``difference | p (users x seeds) | p (seeds)`` of test ``key``, a over b (``not run`` cells
    when either side has no runs)."""
    if not a_runs or not b_runs:
        return "not run | - | -"
    t = paired_ttest(*pooled_pairs(a_runs, b_runs, key))
    ts = seed_ttest(a_runs, b_runs, key) if min(len(a_runs), len(b_runs)) > 1 else {"p": float("nan")}
    return f"{t['mean_diff']:+.4f} | {t['p']:.3g} | {ts['p']:.3g}"


def significance_rows(final: dict, pairs, key: str) -> list[str]:
    L = [f"| comparison | mean difference ({key}) | p (users x seeds) | p (seeds) |", "|---|---|---|---|"]
    for a_v, b_v in pairs:
        L.append(f"| {a_v} vs {b_v} | {comparison_cells(final.get(a_v, []), final.get(b_v, []), key)} |")
    return L
