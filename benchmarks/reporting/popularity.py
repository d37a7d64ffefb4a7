"""Accuracy by item-popularity group of the tuned multimodal and sequential rows
(``benchmarks/popularity.py``)."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np

from . import figures
from .figures import Plan, metric_label, seed_stats, setting
from .stats import P_HEAD, TESTS, adjust, compare, p_cells
from .tables import fmt, header, load, mean_std, suite_runs


def section(suite_rows: str) -> list[str]:
    """The rows of ``benchmarks/popularity.py`` from the suite ``suite_rows`` ("multimodal" or
    "sequential") per item-popularity group, with paired tests per group."""
    pop, runs = suite_runs("popularity")
    seq = suite_rows == "sequential"
    runs = [r for r in runs if ("row" in r) == seq]
    if not runs:
        return []
    by_row = defaultdict(list)
    for r in runs:
        by_row[r["variant"]].append(r)
    first = runs[0]["groups"]
    names = ["head", "middle", "tail"] if len(first) == 3 else [f"group {g['group']}" for g in first]
    stage2 = [r + pop.sequential.LR2_LABEL for r in pop.SEQ2_ROWS]
    rows = pop.SEQ_ROWS + stage2 if seq else pop.ROWS + pop.LEARNED_ROWS
    pairs = ([("MM-RACL-KAL+ID", "GRU4Rec"), ("MM-RACL-KAL+ID", "SASRec"), ("MM-RACL-KAL", "GRU4Rec"),
              ("MM-RACL-KAL+ID", "MM-RACL-KAL"), tuple(stage2)] if seq else
             [("VBPR-both+reg", "BPR+reg"), ("VBPR-text+reg", "BPR+reg"), ("MMGCN-both", "LightGCN")])
    keys = ("ndcg@10", "recall@20")
    L = ["### Accuracy by item popularity", "",
         ("The 30-epoch tuned rows above (MM-RACL-KAL's protocol, next-item targets), and "
          f"{' and '.join(pop.SEQ2_ROWS)} at the rates stage 2 chose (rows marked{pop.sequential.LR2_LABEL})" if seq else
          "The tuned rows above") +
         ", trained again with the settings their budget chose (same seeds and splits), then "
         f"evaluated per item-popularity group (`mmkgrec evaluate RUN --by-popularity {pop.GROUPS}`): "
         f"the items cut into {pop.GROUPS} groups of equal size by training interactions, every item "
         "ranked as usual, only the targets on the group's items counted, users without one left "
         "out" + (" (recall@20 is hit@20 for one target)" if seq else "") +
         ". Groups (seed 2020's split; the other seeds' differ a little):", "",
         "| group | items | training interactions per item | test interactions | users |",
         "|---|---|---|---|---|"]
    for name, g in zip(names, first):
        lo, hi = g["train_interactions"]
        L.append(f"| {name} | {g['items']} | {lo}-{hi} | {g['targets']} | {g['users']} |")
    differ = []  # runs whose overall test NDCG@10 is not their row's, with both figures
    for r in runs:
        path = pop.row_file(r)  # the row as stored now (it may have been written again since)
        stored = json.loads(path.read_text()) if path.exists() else None
        if stored is None:
            differ.append(f"{r['job']} {r['test']['ndcg@10']:.6f} vs no row")
            continue
        row = stored["test"]["ndcg@10"]
        if abs(r["test"]["ndcg@10"] - row) >= 1e-6:
            differ.append(f"{r['job']} {r['test']['ndcg@10']:.6f} vs {row:.6f} (the row's git "
                          f"{stored['git_sha'][:7]})")
    L += ["", f"{len(runs) - len(differ)} of {len(runs)} retrained runs reproduce their row's overall "
          "test NDCG@10 exactly" + (f"; the others (retrained vs row): {', '.join(differ)}." if differ
                                    else "."),
          "", "Test metrics per group, mean ± std over seeds:", ""]
    cols = [(n, k) for n in names for k in keys]
    head = "| row | seeds | " + " | ".join(f"{n} {k}" for n, k in cols) + " |"
    L += header(head)
    for v in rows:
        rs = by_row.get(v, [])
        if not rs:
            L.append(f"| {v} | 0 | " + " | ".join("not run" for _ in cols) + " |")
            continue
        cells = [fmt(*mean_std([r["groups"][names.index(n)]["metrics"][k] for r in rs]))
                 for n, k in cols]
        L.append(f"| {v} | {len(rs)} | " + " | ".join(cells) + " |")
    L += figures.embed(f"popularity-{suite_rows}", lambda: _plan(by_row, rows, names, keys, pop.GROUPS))
    L += ["", f"Paired t-tests per group {TESTS}:", "",
          "| comparison | group | " + " | ".join(f"difference ({k}) | {P_HEAD}" for k in keys) + " |",
          "|---|---|" + "---|---|---|---|" * len(keys)]
    L += _group_tests(by_row, pairs, names, keys)
    learned = [("VBPR-image-lite1", "BPR"), ("VBPR-both-lite1", "BPR")]
    if not seq and any(by_row.get(a) for a, _ in learned):
        L += ["", "With learned image features (EfficientNet-Lite1, the learned-features section's "
              "rows and its BPR), a table of its own (Holm over its comparisons):", "",
              "| comparison | group | " + " | ".join(f"difference ({k}) | {P_HEAD}" for k in keys)
              + " |", "|---|---|" + "---|---|---|---|" * len(keys)]
        L += _group_tests(by_row, learned, names, keys)
    if not seq:
        L += ["", "For comparison, MMRec's published figures (Amazon Baby, 5-core, random 8:1:1, full "
              "ranking; ANCHORS.md) have MMGCN below LightGCN: Recall@20 0.0615 vs 0.0754, "
              "NDCG@20 0.0261 vs 0.0328" + _as_here("MMGCN-both", "LightGCN", -1) + "; and VBPR above "
              "BPR, Recall@20 0.0663 vs 0.0575" + _as_here("VBPR-both+reg", "BPR+reg", +1)
              + ", with pre-trained CNN image features on a sparse catalogue."]
    L += ["", "Command: `python benchmarks/popularity.py` (each JSON in `benchmarks/results/popularity/` "
          "holds its `mmkgrec train` command; the groups come from the trained run)."]
    return L + [""]



def _group_tests(by_row: dict, pairs, names: list[str], keys) -> list[str]:
    """One table row per (pair, group): the paired tests on each key, Holm over all of them."""
    cells = [(a_v, b_v, name, k) for a_v, b_v in pairs for name in names for k in keys]
    tests = adjust([compare(*_group_runs(by_row, names.index(name), a_v, b_v), k)
                    for a_v, b_v, name, k in cells])
    out = []
    for j in range(0, len(cells), len(keys)):
        a_v, b_v, name, _ = cells[j]
        out.append(f"| {a_v} vs {b_v} | {name} | "
                   + " | ".join(p_cells(c) for c in tests[j:j + len(keys)]) + " |")
    return out


def _as_here(a: str, b: str, sign: int) -> str:
    """`` (as here: ...)`` or `` (unlike here: ...)``: whether the multimodal section's rows
    ``a`` and ``b`` order as the published figures do (``sign`` +1: a above b, -1: below) on mean
    test Recall@20, with both means (empty while either row has no runs)."""
    final = {}
    for r in load("multimodal"):
        if not r.get("tuning") and r["variant"] in (a, b):
            final.setdefault(r["variant"], []).append(r["test"]["recall@20"])
    if len(final) < 2:
        return ""
    ma, mb = (float(np.mean(final[v])) for v in (a, b))
    same = (ma - mb) * sign > 0
    return f" ({'as' if same else 'unlike'} here: {a} {ma:.4f} vs {b} {mb:.4f} Recall@20)"


def _group_runs(by_row: dict, gi: int, *rows: str) -> list[list[dict]]:
    """Each row's runs cut to popularity group ``gi``: the group's metrics and per-user values as
    a run of their own (seed kept, for pairing)."""
    return [[{"seed": r["seed"], "test": r["groups"][gi]["metrics"], "per_user": r["groups"][gi]["per_user"]}
             for r in by_row.get(v, [])] for v in rows]


def _plan(by_row: dict, rows: list[str], names: list[str], keys, n_groups: int) -> Plan | None:
    """Each row's test metrics per item-popularity group: bars over seeds."""
    rows = [v for v in rows if by_row.get(v)]
    if not rows:
        return None
    st = {k: {v: [seed_stats(by_row[v], "groups", gi, "metrics", k) for gi in range(len(names))]
              for v in rows} for k in keys}
    runs = [r for v in rows for r in by_row[v]]

    def paint(fig):
        axes = fig.subplots(1, len(keys))
        for ax, k in zip(axes, keys):
            figures.bars(ax, names, [(v, [m for m, _, _ in st[k][v]], [s for _, s, _ in st[k][v]])
                                     for v in rows], f"test {metric_label(k)}", annotate=False)
            ax.set_xlabel("items by training interactions (head: the most)")
        for ax in axes[1:]:
            ax.get_legend().remove()

    return Plan("Accuracy by item popularity",
                f"test {' and '.join(metric_label(k) for k in keys)} of each row on the targets of "
                f"each of {n_groups} item groups of equal size by training interactions (bars: mean "
                "over seeds; error bars: ± one std). Not a figure of either paper; "
                f"{setting(runs)}.", (11.0, 4.2), paint)
