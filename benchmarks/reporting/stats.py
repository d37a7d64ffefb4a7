"""Paired tests between the runs of two rows, the tables that show them, and the verdicts they
support: shared by every section (the tests themselves live in
``mmkgrec.evaluation.significance``).

Two rows are compared on the replicates (seeds, or folds) both have: over users, each user's
mean over those replicates (``paired_ttest_user_means``), and over the replicates' own means.
Within a table the p-values of each test are Holm-adjusted for the table's comparisons, and a
verdict is drawn at ``ALPHA`` from the adjusted values, so that every claim the document makes
follows from the numbers it shows.
"""

from __future__ import annotations

import numpy as np

from mmkgrec.evaluation.plots import metric_label as metric_name
from mmkgrec.evaluation.significance import holm, paired_ttest, paired_ttest_user_means

ALPHA = 0.05
# the caption's words for what every table of comparisons shows
TESTS = ("over users (each user's mean over the seeds) and over seeds, p-values Holm-adjusted "
         f"within the table, verdicts at adjusted p < {ALPHA}")


def _replicate(r: dict):
    return r["seed"], r.get("fold")


def replicates(runs_a: list[dict], runs_b: list[dict], key: str) -> list[tuple]:
    """``(ids_a, vals_a, ids_b, vals_b)`` of test ``key`` per user, one per seed (or fold) both
    rows ran, in seed order."""
    by_b = {_replicate(r): r for r in runs_b}
    out = []
    for ra in sorted(runs_a, key=lambda r: (r["seed"], r.get("fold") or 0)):
        rb = by_b.get(_replicate(ra))
        if rb is None or key not in ra.get("per_user", {}) or key not in rb.get("per_user", {}):
            continue
        out.append((np.asarray(ra["per_user"]["user_ids"], dtype=str), np.asarray(ra["per_user"][key], dtype=float),
                    np.asarray(rb["per_user"]["user_ids"], dtype=str), np.asarray(rb["per_user"][key], dtype=float)))
    return out


def compare(runs_a: list[dict], runs_b: list[dict], key: str) -> dict:
    """Row a against row b on test ``key``: ``diff`` (mean over users of a - b, each user's values
    averaged over the shared seeds), ``p_users`` / ``n_users`` (paired t-test over those users),
    ``p_seeds`` / ``n_seeds`` (paired t-test over the shared seeds' means; NaN with fewer than
    two), and ``replicates`` (the per-user values it used). Without a seed (or fold) both rows
    ran: ``None``, as for a comparison not run (one row's seed 2020 against the other's seed
    2021 is no pair)."""
    reps = replicates(runs_a, runs_b, key)
    if not reps:  # also where one row has no runs
        return None
    t = paired_ttest_user_means(reps)
    sa = {_replicate(r): r["test"][key] for r in runs_a}
    sb = {_replicate(r): r["test"][key] for r in runs_b}
    common = sorted(set(sa) & set(sb), key=lambda x: (x[0], x[1] or 0))
    ts = (paired_ttest([sa[x] for x in common], [sb[x] for x in common]) if len(common) > 1
          else {"p": float("nan"), "n": len(common)})
    return {"diff": t["mean_diff"], "p_users": t["p"], "n_users": t["n"], "p_seeds": ts["p"],
            "n_seeds": ts["n"], "replicates": reps}


def adjust(comparisons: list[dict | None]) -> list[dict | None]:
    """The comparisons of one table with ``holm_users`` and ``holm_seeds`` added: each test's
    p-values Holm-adjusted over the table's comparisons that have one."""
    done = [c for c in comparisons if c is not None]
    for name in ("users", "seeds"):
        for c, q in zip(done, holm([c[f"p_{name}"] for c in done])):
            c[f"holm_{name}"] = float(q)
    return comparisons


def _significant(p: float) -> bool:
    return p == p and p < ALPHA


def verdict(c: dict | None) -> str:
    """The claim a comparison supports, for a table cell: ``higher`` / ``lower`` (row a against
    row b) where the adjusted test over users finds a difference, with whether the test over
    seeds agrees; ``not significant`` where it does not."""
    if c is None:
        return "-"
    word = "higher" if c["diff"] > 0 else "lower"
    if _significant(c["holm_users"]):
        if c["n_seeds"] < 2:
            return f"{word} (one seed)"
        return f"{word} (seeds too)" if _significant(c["holm_seeds"]) else f"{word} (not over seeds)"
    if _significant(c["holm_seeds"]):
        return f"not significant over users; {word} over seeds"
    return "not significant"


def holds(c: dict) -> str:
    """``holds`` where the first row of the comparison is significantly higher over users,
    ``does not hold`` otherwise: the word for a claim that it beats the second."""
    return "holds" if verdict(c).startswith("higher") else "does not hold"


def claim(a: str, b: str, c: dict, key: str, family: str = "this table's comparisons") -> str:
    """The comparison as a sentence: ``X beats Y on test NDCG@10 (+0.0061; p = 0.041 over 943
    users' means over 3 seeds, 0.06 over seeds; Holm-adjusted over ``family``)`` or ``X does not beat
    Y ...``, the words chosen by the adjusted test over users."""
    users = c["holm_users"]
    if _significant(users):
        head = f"{a} beats {b}" if c["diff"] > 0 else f"{a} trails {b}"
    else:
        head = f"{a} does not beat {b}" if c["diff"] > 0 else f"{a} is not significantly below {b}"
    seeds = (f", {_p(c['holm_seeds'])} over {c['n_seeds']} seeds" if c["n_seeds"] > 1
             else " (one seed)")
    return (f"{head} on test {metric_name(key)} ({c['diff']:+.4f}; p = {_p(users)} over "
            f"{c['n_users']} users' means{seeds}; Holm-adjusted over {family})")


def _p(p: float) -> str:
    return "-" if p != p else f"{p:.3g}"


def p_holm(c: dict, test: str) -> str:
    """``0.0057 (0.034)``: the p-value of ``test`` ("users" or "seeds"), then Holm's."""
    return f"{_p(c[f'p_{test}'])} ({_p(c[f'holm_{test}'])})"


def test_cells(c: dict | None) -> str:
    """``p over users (Holm) | p over seeds (Holm)`` cells."""
    if c is None:
        return "- | -"
    return f"{p_holm(c, 'users')} | {p_holm(c, 'seeds')}"


def p_cells(c: dict | None) -> str:
    """``difference | p over users (Holm) | p over seeds (Holm) | verdict`` cells."""
    if c is None:
        return "not run | - | - | -"
    return f"{c['diff']:+.4f} | {test_cells(c)} | {verdict(c)}"


P_HEAD = "p over users (Holm) | p over seeds (Holm) | verdict"


def comparisons(final: dict, pairs, key: str) -> list[dict | None]:
    """Each pair ``(a, b)`` of rows of ``final`` compared on test ``key``, Holm-adjusted over
    the pairs."""
    return adjust([compare(final.get(a, []), final.get(b, []), key) for a, b in pairs])


def significance_rows(final: dict, pairs, key: str, cs: list | None = None) -> list[str]:
    """A table of comparisons: each pair's difference in test ``key``, the two tests with their
    Holm-adjusted values (over this table's pairs) and the verdict. ``cs``: the pairs'
    :func:`comparisons`, when the caller has them already."""
    pairs = list(pairs)
    cs = comparisons(final, pairs, key) if cs is None else cs
    L = [f"| comparison | mean difference ({key}) | {P_HEAD} |", "|---|---|---|---|---|"]
    for (a_v, b_v), c in zip(pairs, cs):
        L.append(f"| {a_v} vs {b_v} | {p_cells(c)} |")
    return L
