"""Equal tuning budgets through ``mmkgrec tune`` for the rows behind contested claims
(``benchmarks/retune.py``)."""

from __future__ import annotations

import json
from collections import defaultdict

from .stats import TESTS, claim, comparisons, holds, significance_rows
from .tables import KG_KEYS, SEQ_KEYS, cells, fmt, header, load, suite_runs


def section() -> list[str]:
    suite, runs = suite_runs("retune")
    if not runs:
        return []
    tunes = {r["row"]: r for r in runs if r.get("tuning")}
    final = defaultdict(list)
    for r in runs:
        if not r.get("tuning"):
            final[r["row"]].append(r)
    L = ["## Equal tuning budgets for contested claims", "",
         f"`python benchmarks/retune.py`. Within a claim every row gets the same budget through "
         f"`mmkgrec tune`: the claim's grid ({suite.TRIALS} trials, every point), the same epoch "
         f"cap and patience, chosen on the claim's validation metric with seed {suite.SEEDS[0]}; "
         f"the chosen configuration then trains with seeds {suite.SEEDS}. One torch thread per "
         "run.", ""]
    reruns = load("reproduce")
    for name, c in suite.CLAIMS.items():
        metric = c["metric"]
        keys = list(c["grid"])
        shown = SEQ_KEYS if metric == "ndcg@10" else KG_KEYS
        epochs = next((t["fixed"]["epochs"] for row in c["rows"] if (t := tunes.get(row))), None)
        grid = " x ".join(f"`{k}` in {v}" for k, v in c["grid"].items())
        L += [f"### Claim `{name}`: " + ", ".join(c["rows"]) + f" on {c['dataset']}", "",
              c["about"] + f" Grid: {grid}.", "",
              f"Tuning (validation {metric} per trial, seed {suite.SEEDS[0]}):", ""]
        L += header("| row | " + " | ".join(f"`{k}`" for k in keys)
                    + " | validation | best epoch | epochs run |")
        for row in c["rows"]:
            t = tunes.get(row)
            if t is None:
                L.append(f"| {row} | " + " | ".join("-" for _ in keys) + " | not run | - | - |")
                continue
            for tr in sorted(t["trials"], key=lambda x: [x["params"].get(k) for k in keys]):
                mark = " (chosen)" if t.get("best") == tr["params"] else ""
                L.append(f"| {row}{mark} | " + " | ".join(f"{tr['params'].get(k)}" for k in keys)
                         + f" | {fmt(tr['value'])} | {tr['best_epoch']} | {tr['epochs_run']} |")
        capped = [row for row in c["rows"] if epochs and tunes.get(row) and any(
            tr["params"] == tunes[row].get("best") and tr["best_epoch"] >= epochs - 1
            for tr in tunes[row]["trials"])]
        if capped:
            L += ["", "Chosen trials whose best epoch was the cap's last (still improving when "
                  f"the {epochs}-epoch cap stopped them; the budget binds them): "
                  + ", ".join(capped) + "."]
        L += ["", "Test metrics of the chosen configurations, mean ± std over seeds:", ""]
        L += header("| row | seeds | " + " | ".join(shown) + " | best epoch of run, per seed |")
        for row in c["rows"]:
            rs = final.get(row, [])
            L.append(f"| {row} | {len(rs)} | " + (" | ".join(cells(rs, shown)) if rs else
                                                  " | ".join("not run" for _ in shown))
                     + f" | {_epochs(rs)} |")
        L += _capped_lines(c["rows"], final)
        L += ["", f"Paired t-tests on test {metric} {TESTS}:", ""]
        cs = comparisons(final, c["pairs"], metric)
        L += significance_rows(final, c["pairs"], metric, cs)
        said = [claim(a, b, x, metric) for (a, b), x in zip(c["pairs"], cs) if x]
        if said:
            L += ["", "Under one budget: " + "; ".join(said) + "."]
        L += _ablation_lines(c, final, shown) + _claim_lines(c, final)
        L += _rerun_lines({**c["rows"], **c.get("ablations", {})}, final, reruns)
        L.append("")
    return L


def _ablation_lines(c: dict, final: dict, shown: list[str]) -> list[str]:
    """A claim's ablation rows (each the chosen configuration of the row it ablates with one
    switch set) and their test metrics."""
    abl = c.get("ablations")
    if not abl:
        return []
    L = ["", "Ablations: each row is the chosen configuration of the row it ablates with one "
         "switch set, the seeds listed (test metrics, mean ± std over seeds):", ""]
    L += header("| row | ablates | switch | seeds run / planned | " + " | ".join(shown)
                + " | best epoch of run, per seed |")
    for row, (parent, switch, seeds) in abl.items():
        rs = final.get(row, [])
        sw = ", ".join(f"`{k}: {json.dumps(v)}`" for k, v in switch.items())
        L.append(f"| {row} | {parent} | {sw} | {len(rs)} / {len(seeds)} | "
                 + (" | ".join(cells(rs, shown)) if rs else " | ".join("not run" for _ in shown))
                 + f" | {_epochs(rs)} |")
    return L + _capped_lines(abl, final)


def _by_seed(rs: list[dict]) -> list[dict]:
    return sorted(rs, key=lambda r: r["seed"])


def _epochs(rs: list[dict]) -> str:
    """``24 of 35, 21 of 32``: each seed's best epoch (counted from 0) and the epochs it ran."""
    return ", ".join(f"{r.get('best_epoch', '?')} of {r.get('epochs_run', '?')}"
                     for r in _by_seed(rs)) or "-"


def _capped_lines(rows, final: dict) -> list[str]:
    """A sentence naming, per row, the seeds whose run the epoch cap ended before patience
    would have (best epoch + patience reaches the cap: they may still have been improving)."""

    def capped(r: dict) -> bool:
        cfg = r.get("config") or {}
        cap, patience, best = cfg.get("epochs"), cfg.get("stopping_step"), r.get("best_epoch")
        return None not in (cap, patience, best) and best + patience >= cap

    said = []
    for row in rows:
        seeds = [str(r["seed"]) for r in _by_seed(final.get(row, [])) if capped(r)]
        if seeds:
            said.append(f"{row} (seed{'s' if len(seeds) > 1 else ''} {', '.join(seeds)})")
    if not said:
        return []
    return ["", "Runs the epoch cap ended before patience would have (best epoch + patience "
            "reaches the cap: they may still have been improving, and the claim's budget binds "
            "them): " + "; ".join(said) + "."]


def _claim_lines(c: dict, final: dict) -> list[str]:
    """A claim's further comparisons (``claims``: the paper's claims on its ablations, the
    rows it adds), tested as a family of their own, each with its sentence."""
    if not c.get("claims"):
        return []
    metric = c["metric"]
    pairs = [(a, b) for a, b, _ in c["claims"]]
    cs = comparisons(final, pairs, metric)
    L = ["", f"Further claims, paired t-tests on test {metric} {TESTS}:", ""]
    L += significance_rows(final, pairs, metric, cs) + [""]
    for (a, b, what), x in zip(c["claims"], cs):
        L.append(f"- {what}: " + (f"{holds(x)}. {claim(a, b, x, metric)}." if x else "not run."))
    return L


def _rerun_lines(rows, final: dict, reruns: list[dict]) -> list[str]:
    """A sentence on the stored runs of ``rows`` that ``benchmarks/reproduce.py`` ran again:
    those that did not repeat (with the largest difference), then how many did, so a reader
    of a claim sees which of its runs rest on inputs a rerun no longer gives."""
    job_row = {r["job"]: (row, r["seed"]) for row in rows for r in final.get(row, [])}
    seen = sorted(((job_row[x["job"]], x) for x in reruns
                   if x.get("suite") == "retune" and x.get("job") in job_row),
                  key=lambda t: t[0])
    if not seen:
        return []
    moved = [f"{row} seed {seed} (max abs diff {x['max_abs_diff']:.3g})"
             for (row, seed), x in seen if not x["identical"]]
    same = len(seen) - len(moved)
    text = (f"Stored runs of this claim rerun later (`benchmarks/reproduce.py`, section "
            f"\"Reproduction of stored rows\"): {same} of {len(seen)} repeat exactly")
    if moved:
        text += ("; these do not, so their test metrics carry inputs a rerun here no longer "
                 "gives: " + "; ".join(moved))
    return ["", text + "."]
