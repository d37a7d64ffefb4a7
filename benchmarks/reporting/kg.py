"""The knowledge-graph models and Multi-KG4Rec on ML-100K (``benchmarks/kg.py``), with the case study
of Multi-KG4Rec's attention (``benchmarks/case_study.py``)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from . import figures
from .figures import MULTIKG4REC, Plan, mirrors, need, setting
from .stats import TESTS, significance_rows
from .tables import (KG_KEYS, best_baseline, cells, epoch_times, fmt, header, load, suite_runs,
                     target_cells, work_path)


def grouped(suite, runs: list[dict]):
    """The KG suite's results by kind: ``final`` (row -> its runs at the chosen rate),
    ``side`` (row -> library -> runs), ``tune`` (row -> rate -> validation NDCG@20), ``chosen``
    (row -> the rate its tuning chose) and ``speed`` (row -> its quiet-machine run)."""
    final, side, tune = defaultdict(list), defaultdict(lambda: defaultdict(list)), defaultdict(dict)
    chosen = {}
    for row in suite.MAIN:
        try:
            chosen[row] = suite.chosen_lr(row)
        except RuntimeError:
            pass
    speed = {r["row"]: r for r in runs if r.get("speed")}
    for r in runs:
        if r.get("speed") or r.get("link_rekeyed") or r.get("link_audit"):  # own subsection
            continue
        if r.get("side_by_side"):
            side[r["row"]][r["library"]].append(r)
        elif r.get("tuning"):
            tune[r["row"]][r["lr"]] = r["valid"]["ndcg@20"]
            if chosen.get(r["row"]) == r["lr"]:
                final[r["row"]].append(r)
        else:
            final[r["row"]].append(r)
    return final, side, tune, chosen, speed


def early_stops(rows: dict, patience: int) -> str:
    """``KGAT seeds 2021, 2022 (best epochs 2, 4; test NDCG@20 0.1, 0.1)`` for the runs of
    ``rows`` (name -> runs) whose best epoch came before ``patience``: runs that the patience
    stopped in a dip after their first epochs. Empty when there are none."""
    out = []
    for name, rs in rows.items():
        early = sorted((r for r in rs if r["best_epoch"] < patience), key=lambda r: r["seed"])
        if early:
            out.append(f"{name} seed{'s' * (len(early) > 1)} "
                       + ", ".join(str(r["seed"]) for r in early) + " (best epoch"
                       + "s" * (len(early) > 1) + " " + ", ".join(str(r["best_epoch"]) for r in early)
                       + "; test NDCG@20 " + ", ".join(f"{r['test']['ndcg@20']:.4f}" for r in early)
                       + ")")
    return "; ".join(out)


def section() -> list[str]:
    suite, runs = suite_runs("kg")
    if not runs:
        return []
    final, side, tune, chosen, speed = grouped(suite, runs)
    L = ["## Knowledge-graph models and Multi-KG4Rec on ML-100K", "",
         f"ML-100K with its Freebase KG, random 8:1:1 per user, full ranking. The KG is linked as "
         f"RecBole ships it: `ml-100k.link` is keyed by MovieLens-1M ids, so each film's KG is "
         f"another film's (the last subsection reruns the main KG rows with the link re-keyed). "
         f"Text: all-MiniLM-L6-v2 "
         f"over title, year and genres; image: the hand-crafted poster descriptor (no pre-trained "
         f"image encoder offline). Same tuning budget for every main row: learning rate in "
         f"{suite.LRS} chosen on validation NDCG@20 (seed 2020, at most {suite.EPOCHS} epochs, "
         f"patience {suite.PATIENCE}); the chosen rate's seed-2020 run is the first seed, then "
         f"seeds 2021 and 2022. Ablation rows reuse their model's rate with one seed (2020). Test "
         f"metrics, mean ± std over seeds. One torch thread per run beside other work: s/epoch and "
         f"time to best are comparable within this table, not speed figures. \"Best at the cap\" "
         f"counts runs whose best validation epoch was the last one allowed: those models were "
         f"still improving when the {suite.EPOCHS}-epoch cap stopped them.", "",
         "### Main comparison (the paper's Table 2)", ""]
    head = ("| model | lr | seeds | " + " | ".join(KG_KEYS)
            + " | s/epoch | s to best epoch | best at the cap |")
    L += header(head)

    def row_line(name, rs, lr):
        if not rs:
            return f"| {name} | - | 0 | " + " | ".join("not run" for _ in KG_KEYS) + " | - | - | - |"
        se, tb = epoch_times(rs)
        capped = sum(r["best_epoch"] >= suite.EPOCHS - 1 for r in rs)
        return (f"| {name} | {lr} | {len(rs)} | " + " | ".join(cells(rs, KG_KEYS))
                + f" | {se:.2f} | {tb:.0f} | {capped}/{len(rs)} |")

    for row in suite.MAIN:
        L.append(row_line(row, final.get(row, []), chosen.get(row, "-")))
    L += figures.embed("kg-validation", lambda: figures.curves_plan(
        final, suite.MAIN, suite.BASE["valid_metric"], suite.EPOCHS, suite.PATIENCE, "main comparison"))
    baselines = [r for r in suite.MAIN if not r.startswith("MultiKG4Rec") and final.get(r)]
    best = best_baseline(final, baselines, "ndcg@20")
    pairs = ([("MultiKG4Rec", b) for b in dict.fromkeys([best, "MKGAT", "KGAT"]) if b]
             + [("KGAT", "BPR"), ("MKGAT", "KGAT"), ("MultiKG4Rec-no fusion", "MultiKG4Rec"),
                ("MultiKG4Rec-no fusion", "KGAT"), ("MultiKG4Rec-no fusion", "MKGAT"),
                ("MultiKG4Rec-w/o t&v", "KGAT")])
    L += ["", f"Paired t-tests on test NDCG@20 {TESTS} (best baseline by mean test NDCG@20: {best}; rows with "
          "one seed pair users within seed 2020):", ""]
    L += significance_rows(final, pairs, "ndcg@20")
    for title, rows in (("Modality ablations (the paper's Table 3; one seed)",
                         ["MKGAT", "MKGAT-w/o v", "MKGAT-w/o t", "MKGAT-w/o t&v", "MultiKG4Rec",
                          "MultiKG4Rec-w/o v", "MultiKG4Rec-w/o t", "MultiKG4Rec-w/o t&v"]),
                        ("Fusion ablations (the paper's Table 4, whose \"w/o t&v\" is the no-fusion row; one seed)",
                         ["MultiKG4Rec", "MultiKG4Rec-no fusion", "MultiKG4Rec-t2v", "MultiKG4Rec-v2t"]),
                        ("Regularisation of Multi-KG4Rec (one seed; not in the paper)",
                         ["MultiKG4Rec", *suite.REGULARISATION])):
        note = ", ".join(f"{m} chose {chosen[m]}" for m in ("MKGAT", "MultiKG4Rec") if m in chosen)
        L += ["", f"### {title}", "", f"Seed 2020 only; ablation rows at learning rate "
              f"{suite.ABLATION_LR} (tuning: {note or 'not finished'}); full-model rows at their chosen rate.", "",
              "| variant | " + " | ".join(KG_KEYS) + " | s/epoch |", "|" + "---|" * (len(KG_KEYS) + 2)]
        for row in rows:
            rs = [r for r in final.get(row, []) if r["seed"] == 2020]
            if not rs:
                L.append(f"| {row} | " + " | ".join("not run" for _ in KG_KEYS) + " | - |")
                continue
            L.append(f"| {row} | " + " | ".join(cells(rs, KG_KEYS)) + f" | {epoch_times(rs)[0]:.2f} |")
    L += _l2_stage_lines(suite, final)
    L += ["", "### Side by side with RecBole 1.2.1 (KG-only CKE and KGCN)", "",
          f"Identical split files (exported by mmkgrec), learning rate {suite.SIDE_LR} (RecBole's "
          f"default), at most {suite.EPOCHS} epochs, patience {suite.PATIENCE}, validation NDCG@20, "
          f"3 seeds. Target: ours >= RecBole's minus max(0.005, one std). RecBole's KGAT needs dgl, "
          f"which cannot be installed here.", "",
          "| model | library | seeds | ndcg@20 | recall@20 | ndcg@10 | difference (ndcg@20) | allowed | met | s/epoch |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for m in suite.SIDE:
        ours, ref = side[m].get("mmkgrec", []), side[m].get("recbole", [])
        for lib, rs in (("mmkgrec", ours), ("RecBole", ref)):
            if not rs:
                L.append(f"| {m} | {lib} | 0 | not run | | | | | | |")
                continue
            shown = cells(rs, ["ndcg@20", "recall@20", "ndcg@10"])
            if lib == "mmkgrec" and ref:
                extra = target_cells([r["test"]["ndcg@20"] for r in rs], [r["test"]["ndcg@20"] for r in ref])
            else:
                extra = " | | |"
            L.append(f"| {m} | {lib} | {len(rs)} | " + " | ".join(shown) + f" | {extra} {epoch_times(rs)[0]:.2f} |")
    L += figures.embed("kg-side-by-side-speed", lambda: figures.speed_plan(
        [(m, side[m].get("mmkgrec"), side[m].get("recbole")) for m in suite.SIDE],
        "KG-only models beside RecBole, CPU"))
    L += ["", "Tuning (validation NDCG@20 per learning rate, seed 2020):", "",
          "| row | " + " | ".join(f"lr {lr}" for lr in suite.LRS) + " |", "|---|" + "---|" * len(suite.LRS)]
    for row in suite.MAIN:
        if row in tune:
            L.append(f"| {row} | " + " | ".join(fmt(tune[row].get(lr, float('nan'))) for lr in suite.LRS) + " |")
    L += ["", "### Seconds per epoch on a quiet machine", "",
          f"One torch thread, nothing else running, {suite.SPEED_EPOCHS} epochs (median s/epoch: the "
          "CF phase, the KG phase and the attention refresh where the model has them). Target: one "
          "Multi-KG4Rec epoch at most 3x our KGAT's.", ""]
    L += speed_table(speed, suite.SPEED_ROWS, suite.SPEED_ROWS)
    L += _approx_fusion_lines(suite, final, speed)
    L += case_study_lines(runs)
    L += _link_lines(suite, final, runs)
    L += ["", "Commands: `python benchmarks/kg.py` (each JSON in `benchmarks/results/kg/` holds its "
          "exact command)."]
    return L + [""]


def _link_lines(suite, final: dict, runs: list[dict]) -> list[str]:
    """The main KG rows again with ML-100K's ``.link`` re-keyed by the title map, beside the
    same rows with the link as given, and against the ID-only baselines."""
    link = defaultdict(list)
    for r in runs:
        if r.get("link_rekeyed"):
            link[f"{r['row']} (re-keyed)"].append(r)
    if not link:
        return []
    L = ["", "### The KG linked to the right films", "",
         "RecBole's `ml-100k.link` is keyed by MovieLens-1M movie ids: read as given, ML-100K's "
         "item 260 (Event Horizon) carries Star Wars' Freebase entity and Star Wars (item 50) "
         "another film's, so every row above trained on a KG of mismatched films. Re-keyed "
         "through the title-and-year map beside the posters (`link_item_map`, now the packaged "
         "ML-100K setting), 1,529 of 1,682 films link to their own entity (the rows above: "
         "1,598 links, to the wrong films). "
         + _sequel_sentence(next((r for r in runs if r.get("link_audit")), None))
         + "Each re-keyed row reruns its main row: same learning "
         "rate, settings, seeds and splits; only the link differs. Test metrics, mean ± std over "
         "seeds.", ""]
    L += header("| row | seeds | " + " | ".join(KG_KEYS) + " |")
    for row in suite.LINK_ROWS:
        for name, rs in ((row, final.get(row, [])), (f"{row} (re-keyed)", link.get(f"{row} (re-keyed)", []))):
            L.append(f"| {name} | {len(rs)} | "
                     + (" | ".join(cells(rs, KG_KEYS)) if rs
                        else " | ".join("not run" for _ in KG_KEYS)) + " |")
    both = {**final, **link}
    pairs = [(f"{r} (re-keyed)", r) for r in suite.LINK_ROWS]
    pairs += [(f"{r} (re-keyed)", b) for r in ("KGAT", "MKGAT") for b in ("BPR", "LightGCN")]
    L += ["", f"Paired t-tests on test NDCG@20 {TESTS}:", ""]
    L += significance_rows(both, pairs, "ndcg@20")
    seeds = "; ".join(
        f"{name}: " + ", ".join(f"{r['test']['ndcg@20']:.4f}" for r in sorted(rs, key=lambda r: r["seed"]))
        for name, rs in both.items() if name.split(" (")[0] in suite.LINK_ROWS and rs)
    early = early_stops({k: v for k, v in both.items() if k.split(" (")[0] in suite.LINK_ROWS},
                        suite.PATIENCE)
    L += ["", f"Test NDCG@20 per seed ({', '.join(map(str, suite.SEEDS))}): {seeds}."
          + (f" Runs whose best epoch came before the patience ({suite.PATIENCE}), stopped in an "
             f"early dip of validation: {early}; a difference that rests on such runs is the "
             "early stopping's, not the link's." if early else "")]
    return L


def _sequel_sentence(audit: dict | None) -> str:
    """What the sequel audit (``kg.sequel_audit``) found, as a sentence ending in a space."""
    if audit is None:
        return ""
    a, b = audit["sequels"]["as given"], audit["sequels"]["re-keyed"]
    ex = "; ".join(f"{x} -> {y}" for x, y in b["examples"][:3])
    bad = "; ".join(f"{x} -> {y}" for x, y in a["examples"][:2])
    return (f"A check against the titles, which the KG does not hold: of the KG's sequel triples "
            f"between two catalogue films, {a['sharing_a_title_word']} of {a['sequel_pairs']} "
            f"pairs share a title word under the link as given (e.g. {bad}), "
            f"{b['sharing_a_title_word']} of {b['sequel_pairs']} re-keyed (e.g. {ex}). ")


def _l2_stage_lines(suite, final: dict) -> list[str]:
    """Stage 2 of the KG budget: the regulariser of the graph models, chosen on validation."""
    L = ["", "### Stage 2 of the budget: the regulariser (KGAT, MKGAT, Multi-KG4Rec)", "",
         "SPEC.md leaves Multi-KG4Rec's L2 to validation. At the learning rate stage 1 chose, each "
         "graph model also ran with `reg_weight` 1e-3 beside the default 1e-5 (seed 2020); the "
         "better on validation NDCG@20 is its row here, with 3 seeds. The chosen KGAT and MKGAT "
         f"rows also ran again with at most {_long_budget(suite)} (the rows so named).", "",
         "| model | valid ndcg@20, L2 1e-5 | valid ndcg@20, L2 1e-3 | chosen | seeds | "
         + " | ".join(KG_KEYS) + " | best epochs |", "|" + "---|" * (len(KG_KEYS) + 6)]

    def best_epochs(rs):
        return ", ".join(str(r["best_epoch"]) for r in sorted(rs, key=lambda r: r["seed"]))

    chosen = {}
    for row, variant in suite.L2_ROWS.items():
        valid = [fmt(next((r["valid"]["ndcg@20"] for r in final.get(v, []) if r["seed"] == 2020),
                          float("nan"))) for v in (row, variant)]
        pick = suite.l2_choice(row)
        if pick is None:
            L.append(f"| {row} | {valid[0]} | {valid[1]} | not run | 0 | "
                     + " | ".join("" for _ in KG_KEYS) + " | |")
            continue
        chosen[row] = final.get(pick, [])
        label = "L2 1e-3" if pick != row else "L2 1e-5"
        L.append(f"| {row} | {valid[0]} | {valid[1]} | {label} | {len(chosen[row])} | "
                 + " | ".join(cells(chosen[row], KG_KEYS)) + f" | {best_epochs(chosen[row])} |")
    for long_row in suite.LONG_L2.values():
        long = final.get(long_row, [])
        if long:
            chosen[long_row] = long
            L.append(f"| {long_row}, patience 30 | | | L2 1e-3 | {len(long)} | "
                     + " | ".join(cells(long, KG_KEYS)) + f" | {best_epochs(long)} |")
    early = early_stops({row: chosen[row] for row in suite.L2_ROWS if row in chosen}, suite.PATIENCE)
    if early:
        L += ["", f"Seeds whose best epoch came before the patience of {suite.PATIENCE}, so that "
              f"the patience stopped them in a dip of validation after the first epochs: {early}."]
    if "MultiKG4Rec" in chosen:
        kgat, mkgat = suite.LONG_L2["KGAT"], suite.LONG_L2["MKGAT"]
        L += ["", f"Paired t-tests on test NDCG@20 {TESTS}, each model at its chosen regulariser:", ""]
        L += significance_rows(chosen, [("MultiKG4Rec", "KGAT"), ("MultiKG4Rec", kgat),
                                         ("MultiKG4Rec", "MKGAT"), ("MultiKG4Rec", mkgat),
                                         ("MKGAT", "KGAT"), (mkgat, kgat)], "ndcg@20")
    wider = [(row, lo, hi) for row, (lo, hi) in suite.L2_WIDER.items() if final.get(hi)]
    if wider:
        L += ["", "The grid one step further (seed 2020, each model's 1e-3 epoch budget): L2 1e-2 "
              "beside 1e-3; a model whose validation prefers 1e-2 would need its seeds again at "
              "1e-2.", "",
              "| model | valid ndcg@20, L2 1e-3 | valid ndcg@20, L2 1e-2 | test ndcg@20, L2 1e-3 | "
              "test ndcg@20, L2 1e-2 | best epoch, L2 1e-2 |", "|---|---|---|---|---|---|"]
        for row, lo, hi in wider:
            a = next((r for r in final.get(lo, []) if r["seed"] == 2020), None)
            b = next(r for r in final[hi] if r["seed"] == 2020)
            L.append(f"| {row} | {fmt(a['valid']['ndcg@20']) if a else '-'} | "
                     f"{b['valid']['ndcg@20']:.4f} | {fmt(a['test']['ndcg@20']) if a else '-'} | "
                     f"{b['test']['ndcg@20']:.4f} | {b['best_epoch']} |")
        prefer = [row for row, lo, hi in wider
                  if any(r["seed"] == 2020 for r in final.get(lo, []))
                  and next(r for r in final[hi] if r["seed"] == 2020)["valid"]["ndcg@20"]
                  > next(r for r in final[lo] if r["seed"] == 2020)["valid"]["ndcg@20"]]
        L += ["", f"Validation prefers 1e-2 for {', '.join(prefer)} (its seeds at 1e-2 not run)."
              if prefer else "Validation prefers 1e-3 for every model here."]
    return L


def _long_budget(suite) -> str:
    """``150 epochs with patience 30``: the budget of the stage-2 rows run again (LONG_L2)."""
    model, ov = suite.ABLATIONS[next(iter(suite.LONG_L2.values()))]
    return f"{ov['epochs']} epochs with patience {ov['stopping_step']}"


def _approx_fusion_lines(suite, final: dict, speed: dict) -> list[str]:
    """What the approximate fusion (``fusion_items_per_batch``) costs in accuracy, beside the
    exact fusion at the same regulariser, with the quiet machine's s/epoch of each."""
    pairs = [(exact, approx) for exact, approx in suite.APPROX.items()
             if final.get(exact) and final.get(approx)]
    if not pairs:
        return []
    L = ["", f"Approximate fusion: with `fusion_items_per_batch: {suite.FUSE_CAP}` each CF step fuses "
         f"{suite.FUSE_CAP} items drawn at random, with gradients, and the other items keep the "
         "vectors of the epoch-start pass (refreshed every epoch, without gradients). Accuracy "
         "beside the exact fusion at stage 2's chosen L2 (1e-3), same learning rate, seeds and "
         "splits; s/epoch from the quiet machine's rows above.", "",
         "| model | seeds | " + " | ".join(KG_KEYS) + " | best epochs | quiet s/epoch |",
         "|" + "---|" * (len(KG_KEYS) + 4)]
    for row in [r for pair in pairs for r in pair]:
        rs = sorted(final[row], key=lambda r: r["seed"])
        t = speed.get(suite.APPROX_SPEED[row], {}).get("timing", {}).get("train_epoch_s")
        L.append(f"| {row} | {len(rs)} | " + " | ".join(cells(rs, KG_KEYS)) + " | "
                 + ", ".join(str(r["best_epoch"]) for r in rs)
                 + f" | {f'{t:.2f}' if t else 'not run'} |")
    L += ["", f"Paired t-tests on test NDCG@20 {TESTS}:", ""]
    L += significance_rows(final, [p for exact, approx in pairs
                                    for p in [(approx, exact), *((approx, b) for b in
                                              suite.LONG_L2.values() if final.get(b))]], "ndcg@20")
    return L


DEEP_KGAT = "KGAT-64-32-16"  # KGAT at Multi-KG4Rec's layer widths (kg.SPEED_ONLY)


def speed_table(speed: dict, rows, kg_rows) -> list[str]:
    """Median s/epoch of each speed row; KG rows also as a multiple of our KGAT's (RecBole's one
    layer, the KGAT row of the tables) and of KGAT at Multi-KG4Rec's depth (64, 32, 16)."""
    def secs(row):
        return speed.get(row, {}).get("timing", {}).get("train_epoch_s")

    L = ["| model | s/epoch | x KGAT (64) | x KGAT (64, 32, 16) |", "|---|---|---|---|"]
    for row in rows:
        t = secs(row)
        if t is None:
            L.append(f"| {row} | not run | | |")
            continue
        ratios = [f"{t / secs(k):.2f}x" if secs(k) and row in kg_rows else ""
                  for k in ("KGAT", DEEP_KGAT)]
        L.append(f"| {row} | {t:.2f} | " + " | ".join(ratios) + " |")
    return L + ["", "The Multi-KG4Rec target reads most fairly against KGAT at the same depth: "
                "Multi-KG4Rec propagates two graphs (text, image) of three layers and runs the "
                "fusion over every item in every CF step, where our KGAT row has one graph of one "
                "layer (RecBole's default)."]


def case_study_lines(kg_runs: list[dict]) -> list[str]:
    runs = load("case_study")
    if not runs:
        return ["", "### Case study (the paper's Fig. 4)", "", "Not run (`python benchmarks/case_study.py` "
                "needs the kept seed-2020 Multi-KG4Rec run)."]
    r = runs[0]
    mods = r["modalities"]
    L = ["", "### Case study (the paper's Fig. 4)", "",
         f"From `{work_path(r['run'])}`: for the first two test users with at least 10 training items, 10 of "
         "their training items and the share of cross-modal attention each item's own position puts "
         "on each modality's keys (averaged over heads, blocks and query modalities). The fusion is "
         "not user-specific: a user's profile is that of the items they chose.", ""]
    for u in r["users"]:
        shares = {m: np.mean([it[m] for it in u["items"]]) for m in mods}
        L += [f"User {u['user']} (mean " + ", ".join(f"{m} {v:.3f}" for m, v in shares.items()) + "):", "",
              "| item | " + " | ".join(mods) + " |", "|---|" + "---|" * len(mods)]
        for it in u["items"]:
            L.append(f"| {it['title'] or it['item']} | " + " | ".join(f"{it[m]:.3f}" for m in mods) + " |")
        L.append("")
    fig = figures.embed("multikg4rec-case-study", lambda: _case_study_plan(r, kg_runs))
    return L[:-1] + fig if fig else L


def _case_study_plan(r: dict, kg_runs: list[dict]) -> Plan:
    """The case study's attention shares as a heat map per user (items x modalities)."""
    mods = list(need(r, "modalities"))
    users = [(str(need(u, "user")), [(it.get("title") or str(need(it, "item")), [float(need(it, m)) for m in mods])
                                     for it in need(u, "items")]) for u in need(r, "users")]
    vals = [v for _, items in users for _, row in items for v in row]
    lo, hi = min(vals), max(vals)
    run = str(need(r, "run")).rstrip("/").rsplit("/", 1)[-1]  # the trained run: its result file
    trained = [x for x in kg_runs if x.get("job") == run]

    def paint(fig):
        axes = fig.subplots(1, len(users))
        axes = axes if len(users) > 1 else [axes]
        for ax, (user, items) in zip(axes, users):
            im = figures.heatmap(ax, [row for _, row in items],
                                 [t if len(t) <= 26 else t[:25] + "…" for t, _ in items], mods, lo, hi)
            ax.set_title(f"user {user}")
        fig.colorbar(im, ax=axes, label="share of cross-modal attention", shrink=0.8)

    ours = (f"{len(users)} users; {setting(trained)}" if trained else
            f"{len(users)} users of the run {run}")
    return Plan(f"{MULTIKG4REC}'s attention per modality (cf. the paper's Fig. 4)",
                "for each user, the share of cross-modal attention each of their items puts on "
                "each modality's keys (averaged over heads, blocks and query modalities; the table "
                "above). " + mirrors(MULTIKG4REC, "Fig. 4", "a MovieLens user and an Amazon-Books "
                                     "user, CLIP features, drawn as the items of each modality's "
                                     "graph", ours), (9.6, 4.4), paint)

