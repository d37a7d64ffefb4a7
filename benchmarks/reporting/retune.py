"""Equal tuning budgets through ``mmkgrec tune`` for the rows behind contested claims
(``benchmarks/retune.py``)."""

from __future__ import annotations

from collections import defaultdict

from .stats import TESTS, claim, compare, adjust, significance_rows
from .tables import KG_KEYS, cells, fmt, header, suite_runs


def section() -> list[str]:
    suite, runs = suite_runs("retune")
    if not runs:
        return []
    tunes = {r["row"]: r for r in runs if r.get("tuning")}
    final = defaultdict(list)
    for r in runs:
        if not r.get("tuning"):
            final[r["row"]].append(r)
    grid = " x ".join(f"`{k}` in {v}" for k, v in suite.GRID.items())
    n = 1
    for v in suite.GRID.values():
        n *= len(v)
    L = ["## Equal tuning budgets for contested claims", "",
         f"`python benchmarks/retune.py`. Every row gets the same budget through `mmkgrec tune`: "
         f"{grid} ({n} trials, every point), at most {suite.FIXED['epochs']} epochs with patience "
         f"{suite.FIXED['stopping_step']}, chosen on validation {suite.METRIC} with seed "
         f"{suite.SEEDS[0]}; the chosen configuration then trains with seeds {suite.SEEDS}. One "
         "torch thread per run.", ""]
    for name, c in suite.CLAIMS.items():
        L += [f"### Claim `{name}`: " + ", ".join(c["rows"]) + f" on {c['dataset']}", "",
              "The packaged settings: ML-100K's `.link` re-keyed through the title map, so the "
              "KG is that of the right films." if c["dataset"] == "ml-100k" else "", ""]
        L += ["Tuning (validation " + suite.METRIC + " per trial, seed "
              f"{suite.SEEDS[0]}):", ""]
        keys = list(suite.GRID)
        L += header("| row | " + " | ".join(f"`{k}`" for k in keys) + " | validation | best epoch | epochs run |")
        for row in c["rows"]:
            t = tunes.get(row)
            if t is None:
                L.append(f"| {row} | " + " | ".join("-" for _ in keys) + " | not run | - | - |")
                continue
            for tr in sorted(t["trials"], key=lambda x: [x["params"].get(k) for k in keys]):
                mark = " (chosen)" if t.get("best") == tr["params"] else ""
                L.append(f"| {row}{mark} | " + " | ".join(f"{tr['params'].get(k)}" for k in keys)
                         + f" | {fmt(tr['value'])} | {tr['best_epoch']} | {tr['epochs_run']} |")
        capped = [row for row in c["rows"] if tunes.get(row) and any(
            tr["params"] == tunes[row].get("best")
            and tr["best_epoch"] >= suite.FIXED["epochs"] - 1 for tr in tunes[row]["trials"])]
        if capped:
            L += ["", "Chosen trials whose best epoch was the cap's last (still improving when "
                  f"the {suite.FIXED['epochs']}-epoch cap stopped them; the budget binds them): "
                  + ", ".join(capped) + "."]
        L += ["", "Test metrics of the chosen configurations, mean ± std over seeds:", ""]
        L += header("| row | seeds | " + " | ".join(KG_KEYS) + " |")
        for row in c["rows"]:
            rs = final.get(row, [])
            L.append(f"| {row} | {len(rs)} | " + (" | ".join(cells(rs, KG_KEYS)) if rs else
                                                  " | ".join("not run" for _ in KG_KEYS)) + " |")
        L += ["", f"Paired t-tests on test {suite.METRIC} {TESTS}:", ""]
        L += significance_rows(final, c["pairs"], suite.METRIC)
        cs = adjust([compare(final.get(a, []), final.get(b, []), suite.METRIC)
                     for a, b in c["pairs"]])
        said = [claim(a, b, x, suite.METRIC) for (a, b), x in zip(c["pairs"], cs) if x]
        if said:
            L += ["", "Under one budget: " + "; ".join(said) + "."]
        L.append("")
    return L
