"""MM-RACL-KAL's protocol on ML-100K: the sequential models, the ablations, the equal tuning budget
and its stages (``benchmarks/sequential.py``)."""

from __future__ import annotations

import statistics
from collections import defaultdict

import numpy as np

from . import figures, latency
from .figures import MMRACLKAL, Plan, metric_label, mirrors, need, seed_stats, seeds_note, setting
from .stats import ALPHA, TESTS, adjust, compare, p_holm, significance_rows, verdict
from .tables import (SEQ_KEYS, best_baseline, fmt, header, load, mean_std, suite_runs,
                     user_means)


def section() -> list[str]:
    suite, runs = suite_runs("sequential")
    runs = [r for r in runs if "row" in r]
    if not runs:
        return []
    by_row, side = defaultdict(list), defaultdict(dict)
    tuned, trials = defaultdict(list), defaultdict(list)  # the equal-budget tuning's rows
    long = defaultdict(list)  # the tuned settings with the longer epoch budget
    for r in runs:
        if r.get("side_by_side"):
            side[r["row"]][r["library"]] = r
        elif r.get("lr_stage"):
            continue  # stage 2 of the budget: read by job id in _lr2_seq_lines
        elif r.get("long"):
            long[f"{r['row']} (tuned, {suite.LONG_EPOCHS} epochs)"].append(r)
        elif r.get("tuned"):
            tuned[r["row"]].append(r)
        elif "trial_index" in r:
            trials[r["row"]].append(r)
        else:
            by_row[r["row"]].append(r)
    L = ["## Sequential models and MM-RACL-KAL on ML-100K", "",
         "MM-RACL-KAL's protocol: users >= 5 and items >= 20 interactions (to a fixpoint), only "
         "items with text and a poster, per-user time-ordered 80/10/10, every validation / test "
         "interaction a next-item target predicted from everything before it. Text: "
         "all-MiniLM-L6-v2; image: the hand-crafted poster descriptor (no pre-trained image encoder "
         f"offline). Budget: at most {suite.EPOCHS} epochs (patience {suite.PATIENCE}, validation "
         f"NDCG@10), learning rate {suite.LR} for every model of the main table and the ablations (no "
         "tuning there: the same zero budget for all; the equal tuning budget has its own table "
         "below; an epoch cap is no cap on compute for the CF models, LightGCN, VBPR and MMGCN, "
         "whose epochs take a second and which usually need far more of them), max length 50, one torch thread per run beside other work (s/epoch comparable "
         "within a table, not speed figures). MRR is `mrr@20` (the list length 20). Main rows rank "
         "all items with the user's earlier items removed (`mask_history_seq: true`, CF models "
         "through `eval_next_item: true`); `sampled` columns re-evaluate the same model with 1 "
         "positive among 100 unseen items.", ""]
    L += ["### Side by side with RecBole 1.2.1 (SASRec, GRU4Rec)", "",
          "Identical samples (RecBole reads our next-item samples as pre-augmented benchmark files); "
          "RecBole's convention (nothing masked); CE over all items; RecBole's per-row test metrics "
          "averaged per user first, as ours are; same "
          "epoch cap, patience, learning rate and batch; seed 2020 only. " + _recbole_sasrec_pace(side)
          + f" {suite.RECBOLE_SASREC_EPOCHS} epochs: its row gives speed "
          "and, below the table, its validation curve beside ours, not a converged test figure. "
          "Target: ours >= RecBole's minus 0.005 (one seed: no std), and >= 3x faster per epoch. "
          + ("The GPU section at the end runs both at the full epoch budget with 3 seeds."
             if load("gpu") else ""), "",
          "| model | library | ndcg@10 | hit@10 | ndcg@20 | best epoch | s/epoch | speed-up |",
          "|---|---|---|---|---|---|---|---|"]
    for m in suite.SIDE:
        ours, ref = side[m].get("mmkgrec"), side[m].get("recbole")
        for lib, r in (("mmkgrec", ours), ("RecBole", ref)):
            if r is None:
                L.append(f"| {m} | {lib} | not run | | | | | |")
                continue
            t = r["test"] if lib == "mmkgrec" else user_means(r, ("ndcg@10", "hit@10", "ndcg@20"))
            su = ""
            if lib == "mmkgrec" and ref is not None:
                su = f"{ref['timing']['train_epoch_s'] / r['timing']['train_epoch_s']:.1f}x"
            L.append(f"| {m} | {lib} | {t['ndcg@10']:.4f} | {t['hit@10']:.4f} | {t['ndcg@20']:.4f} | "
                     f"{r['best_epoch']} | {r['timing']['train_epoch_s']:.1f} | {su} |")
    for m in suite.SIDE:
        ours, ref = side[m].get("mmkgrec"), side[m].get("recbole")
        if ours is None or ref is None or not ours.get("history") or not ref.get("history"):
            continue
        a = [h["valid"]["ndcg@10"] for h in ours["history"] if h.get("valid")]
        b = [h["valid_score"] for h in ref["history"] if h.get("valid_score") is not None]
        L += ["", f"{m}, validation NDCG@10 by epoch: mmkgrec " + ", ".join(f"{x:.4f}" for x in a)
              + "; RecBole " + ", ".join(f"{x:.4f}" for x in b) + " (RecBole's validation figure is a "
              "mean over rows, ours over users: the curves show the trend, not equal numbers)."]
    L += figures.embed("sequential-side-by-side", lambda: _side_plan(suite, side))
    head = ("| model | seeds | " + " | ".join(SEQ_KEYS) + " | sampled ndcg@10 | sampled hit@10 | "
            "s/epoch |")

    def table(rows, label=None, by_row=by_row):
        out = header(head)
        for row in rows:
            rs = by_row.get(row, [])
            name = label(row) if label else row
            if not rs:
                out.append(f"| {name} | 0 | " + " | ".join("not run" for _ in SEQ_KEYS) + " | | | |")
                continue
            cells = [fmt(*mean_std([r["test"][k] for r in rs])) for k in SEQ_KEYS]
            sm = [fmt(*mean_std([r.get("test_sampled", {}).get(k) for r in rs])) for k in ("ndcg@10", "hit@10")]
            se = statistics.median(r["timing"]["train_epoch_s"] for r in rs)
            if any(r.get("device", "cpu") != "cpu" for r in rs):
                name += " (GPU)"
            out.append(f"| {name} | {len(rs)} | " + " | ".join(cells + sm) + f" | {se:.1f} |")
        return out

    L += ["", "### Main table (the paper's Tables 2-4)", ""] + table(suite.MAIN)
    L += figures.embed("sequential-validation", lambda: _curves_plan(suite, by_row))
    base = [r for r in suite.MAIN if not r.startswith("MM-RACL-KAL") and by_row.get(r)]
    best = best_baseline(by_row, base, "ndcg@10")
    L += ["", f"Paired t-tests on test NDCG@10 {TESTS} (best baseline by mean test NDCG@10: {best}):", ""]
    L += significance_rows(by_row, [("MM-RACL-KAL", b) for b in dict.fromkeys([best, "RACL-KAL", "SASRec"]) if b]
                            + [("MM-RACL-KAL+ID", best or "SASRec"), ("MM-RACL-KAL+ID", "MM-RACL-KAL"),
                               ("ladder-+S", best or "SASRec")],
                            "ndcg@10")
    if tuned or trials:
        L += _tuned_lines(suite, tuned, trials, table)
    if long:
        L += _long_seq_lines(suite, long, tuned, table)
        L += _lr2_seq_lines(suite, {r["job"]: r for r in runs}, tuned, table)
    L += ["", "### Additive ladder (the paper's Table 5; the rung effects on seed 2020)", "",
          "Base = text only + Transformer + L_rec; +M adds the image (alpha fusion); +RA retrieval "
          "augmentation; +S the static LightGCN interest and gate; +C the contrastive losses "
          "(= MM-RACL-KAL).", ""]
    ladder = list(suite.LADDER) + ["MM-RACL-KAL"]
    L += table(ladder, lambda r: r.replace("ladder-", ""))
    L += ["", "Effect of each rung (test NDCG@10, seed 2020, paired t-test over users against the rung "
          f"below, p-values Holm-adjusted over the {len(ladder) - 1} rungs, verdicts at adjusted p < {ALPHA}):", "",
          "| rung | NDCG@10 change | p over users (Holm) | verdict |", "|---|---|---|---|"]
    rungs = list(zip(ladder, ladder[1:]))
    def s2020(row):  # the ladder's seed (Base and +M have more since, for the learned rung)
        return [r for r in by_row.get(row, []) if r.get("seed") == 2020][:1]

    tests = adjust([compare(s2020(hi), s2020(lo), "ndcg@10") for lo, hi in rungs])
    for (lo, hi), c in zip(rungs, tests):
        if c is None:
            L.append(f"| {hi.replace('ladder-', '')} | not run | | |")
            continue
        L.append(f"| {hi.replace('ladder-', '')} | {c['diff']:+.4f} | {p_holm(c, 'users')} | "
                 f"{verdict(c)} |")
    L += ["", "### Leave-one-out ablation (the paper's Fig. 2; one seed)", ""]
    L += table(["MM-RACL-KAL"] + list(suite.LOO), _loo_name)
    L += figures.embed("mmraclkal-ablation", lambda: _ablation_plan(suite, by_row))
    L += ["", "### Contrastive losses (the paper's Table 6; one seed)", ""]
    L += table(["MM-RACL-KAL"] + list(suite.CL), lambda r: r.replace("cl-", ""))
    L += ["", "### Sensitivity (the paper's Fig. 3-4; one seed)", ""]
    L += table(list(suite.SENS))
    gpu_rows = [r for r in suite.SENS if any(x.get("device", "cpu") != "cpu" for x in by_row.get(r, []))]
    if gpu_rows:
        same = [(r, by_row[r][0]) for r in gpu_rows
                if by_row[r][0]["config"].get("augment_topk") == 10
                and by_row[r][0]["config"].get("augment_p") == 0.1]
        cpu_default = by_row.get("MM-RACL-KAL", [])
        L += ["", "Rows marked (GPU) trained on an H100 (`sequential.py --device cuda --features DIR`; "
              "their s/epoch are GPU times)" + (
                  f"; at the default settings (Top-K 10, p 0.1) the GPU run scores test NDCG@10 "
                  f"{same[0][1]['test']['ndcg@10']:.4f} and the CPU run of the main table "
                  f"{cpu_default[0]['test']['ndcg@10']:.4f}" if same and cpu_default else "") + "."]
    for prefix, key, xl, fig in (("topk", "augment_topk", "Top-K", "Fig. 3"),
                                 ("p", "augment_p", "replacement probability p", "Fig. 4")):
        L += figures.embed(f"sens_{prefix}", lambda: _sweep_plan(suite, by_row, prefix, key, xl, fig))
    L += latency.section()
    L += figures.embed("mmraclkal-efficiency", lambda: _efficiency_plan(suite, by_row, load("latency")))
    L += ["", "Not run rows say so above. Commands: `python benchmarks/sequential.py` (each JSON in "
          "`benchmarks/results/sequential/` holds its exact command)."]
    return L + [""]


def _tuned_lines(suite, tuned: dict, trials: dict, table) -> list[str]:
    """The equal tuning budget: every tuned model's settings tried, the one chosen on validation,
    its seeds, and the paired tests of MM-RACL-KAL against the best tuned baseline."""
    L = ["", f"### Equal tuning budget ({suite.TRIALS} settings per model, chosen on validation)", "",
         f"Every model below gets the same budget: {suite.TRIALS} settings with seed 2020 (its "
         "defaults, then settings drawn at random from its search space, `sequential.TUNED`: "
         "learning rate, dropout and weight decay for all, BERT4Rec's mask ratio, MM-RACL-KAL's "
         "beta, tau, contrastive weights and p), the same epoch cap and patience; the setting with "
         "the best validation NDCG@10 then runs with 3 seeds. Test figures play no part in the "
         "choice. Runs marked (GPU) trained on an H100, 8 jobs at once (`python "
         "benchmarks/sequential.py --only tune- --workers 8 --device cuda --features DIR`, then "
         "`--only tuned-`): their s/epoch are not speed figures.", "",
         "| model | settings run | default valid ndcg@10 | chosen valid ndcg@10 | chosen setting |",
         "|---|---|---|---|---|"]
    for row in suite.TUNED:
        ts = sorted(trials.get(row, []), key=lambda r: r["trial_index"])
        if not ts:
            L.append(f"| {row} | 0 | not run | | |")
            continue
        k = tuned[row][0]["trial_index"] if tuned.get(row) else None
        best = next((r for r in ts if r["trial_index"] == k), None) or max(
            ts, key=lambda r: r["valid"]["ndcg@10"])  # tuning still running: the best so far
        default = next((r for r in ts if r["trial_index"] == 0), None)
        setting = ", ".join(f"{k} {v}" for k, v in best["trial"].items()) or "defaults"
        L.append(f"| {row} | {len(ts)} | {fmt(default['valid']['ndcg@10']) if default else '-'} | "
                 f"{best['valid']['ndcg@10']:.4f} | {setting} |")
    by = {f"{row} (tuned)": rs for row, rs in tuned.items()}
    L += ["", "Chosen settings, 3 seeds:", ""]
    L += table([f"{row} (tuned)" for row in suite.TUNED if row in tuned], by_row=by)
    base = [r for r in by if not r.startswith("MM-RACL-KAL")]
    best = best_baseline(by, base, "ndcg@10")
    if best:
        L += ["", f"Paired t-tests on test NDCG@10 {TESTS} (best tuned baseline by mean test NDCG@10: {best}):",
              ""]
        L += significance_rows(by, [(a, b) for a in ("MM-RACL-KAL (tuned)", "MM-RACL-KAL+ID (tuned)")
                                     for b in dict.fromkeys([best, "SASRec (tuned)"])], "ndcg@10")
    return L


def _long_seq_lines(suite, long: dict, tuned: dict, table) -> list[str]:
    """The tuned settings again with the longer epoch budget, and MM-RACL-KAL's paired tests
    against the best baseline at that budget."""
    label = f" (tuned, {suite.LONG_EPOCHS} epochs)"
    rows = [r + label for r in suite.LONG_ROWS]
    near_cap, n = _cap_bound(suite, tuned)
    L = ["", f"### The tuned settings with {suite.LONG_EPOCHS} epochs (patience {suite.LONG_PATIENCE})",
         "", f"{near_cap} of the {n} chosen runs above had their best epoch in the "
         f"last two of {suite.EPOCHS}: the cap bound {'them' if near_cap else 'none of them'}. Each chosen "
         f"setting (unchanged: tuning stays at {suite.EPOCHS} epochs) trains again with at most "
         f"{suite.LONG_EPOCHS} epochs and patience {suite.LONG_PATIENCE}, 3 seeds. These runs used "
         "one torch thread on the 2-core machine beside other work (`python "
         "benchmarks/sequential.py --only long-`); the contenders ran first, and rows the machine "
         "had no time for say not run.", ""]
    L += table(rows, by_row=long)
    L += ["", "| model | best epochs | epochs run |", "|---|---|---|"]
    for row in rows:
        rs = sorted(long.get(row, []), key=lambda r: r["seed"])
        if rs:
            L.append(f"| {row} | {', '.join(str(r['best_epoch']) for r in rs)} | "
                     f"{', '.join(str(r['epochs_run']) for r in rs)} |")
    base = [r for r in rows if not r.startswith("MM-RACL-KAL") and len(long.get(r, [])) == 3]
    best = best_baseline(long, base, "ndcg@10")
    if best:
        L += ["", f"Paired t-tests on test NDCG@10 {TESTS} (best baseline with 3 seeds at this budget: {best}):",
              ""]
        L += significance_rows(long, [(a + label, b) for a in ("MM-RACL-KAL+ID", "MM-RACL-KAL")
                                       for b in dict.fromkeys([best, "SASRec" + label])
                                       if long.get(a + label) and long.get(b)], "ndcg@10")
    return L


def _cap_bound(suite, tuned: dict) -> tuple[int, int]:
    """How many of stage 1's chosen runs (``tuned``: row -> runs) had their best epoch in the last
    two of the epoch cap, and of how many."""
    best_epochs = [r["best_epoch"] for rs in tuned.values() for r in rs]
    return sum(e >= suite.EPOCHS - 2 for e in best_epochs), len(best_epochs)


def _recbole_sasrec_pace(side: dict) -> str:
    """``RecBole's SASRec takes 245 s per epoch here, so it ran``: the reason its side-by-side
    run has a smaller epoch cap, from that run's own timing."""
    r = side.get("SASRec", {}).get("recbole")
    if r is None:
        return "RecBole's SASRec runs"
    return f"RecBole's SASRec takes {r['timing']['train_epoch_s']:.0f} s per epoch here, so it ran"


def _lr2_seq_lines(suite, by_job: dict, tuned: dict, table) -> list[str]:
    """Stage 2 of the sequential budget: the learning rate chosen again at the longer budget,
    the chosen rates' seeds, and MM-RACL-KAL+ID's paired tests against the best baseline."""
    label = suite.LR2_LABEL
    near_cap, n = _cap_bound(suite, tuned)
    L = ["", f"### Stage 2: the learning rate chosen again at {suite.LONG_EPOCHS} epochs", "",
         f"Stage 1 chose every setting under the {suite.EPOCHS}-epoch cap, which bound {near_cap} of "
         f"its {n} chosen runs; a cap that binds favours large steps. Stage 2 gives MM-RACL-KAL+ID and the sequential "
         "baselines the same budget again at the longer one: the stage-1 setting at its own "
         f"learning rate (the seed-2020 run above) and at the next {suite.LR2_STEPS} smaller rates of "
         f"{suite.LRS}, everything else unchanged, seed 2020; validation NDCG@10 chooses, and the "
         "chosen rate runs 3 seeds (stage 1's rate keeps the seeds above). Test figures play no part "
         "in the choice. One torch thread a run, two runs at once on the 2-core machine (`python "
         "benchmarks/sequential.py --only lr2- --workers 2`).", "",
         "| model | learning rate | valid ndcg@10 (seed 2020) | test ndcg@10 (seed 2020) | "
         "best epoch | epochs run | chosen |", "|---|---|---|---|---|---|---|"]
    final, capped, edge = {}, [], []
    for row in suite.LR2_ROWS:
        rates = suite.lr2_rates(row)
        try:
            pick = suite.lr2_choice(row)
        except suite.NotReady:
            pick = None
        for k, rate in enumerate(rates):
            r = by_job.get(suite.lr2_runs(row, k)[0])
            if r is None:
                L.append(f"| {row} | {rate} | not run | | | | |")
                continue
            L.append(f"| {row} | {rate} | {r['valid']['ndcg@10']:.4f} | {r['test']['ndcg@10']:.4f} | "
                     f"{r['best_epoch']} | {r['epochs_run']} | {'yes' if k == pick else ''} |")
            if r["best_epoch"] >= suite.LONG_EPOCHS - 2:
                capped.append(f"{row} at {rate}")
        if pick is not None:
            final[row + label] = [by_job[j] for j in suite.lr2_runs(row, pick) if j in by_job]
            if pick == len(rates) - 1 and rates[pick] != min(suite.LRS):
                edge.append(f"{row} ({rates[pick]})")
    if capped or edge:
        L.append("")
    if capped:
        L.append(f"Best epoch within the last two of {suite.LONG_EPOCHS} (the cap bound, its score "
                 f"may be low): {', '.join(capped)}.")
    if edge:
        L.append(f"Chosen at the smallest rate its stage 2 tried, so a smaller one might do better "
                 f"still (not run): {', '.join(edge)}.")
    if not final:
        return L
    rows = [row + label for row in suite.LR2_ROWS]
    L += ["", "The chosen rates, 3 seeds:", ""] + table(rows, by_row=final)
    base = [r for r in rows if not r.startswith("MM-RACL-KAL") and len(final.get(r, [])) == 3]
    best = best_baseline(final, base, "ndcg@10")
    ours = "MM-RACL-KAL+ID" + label
    if best and len(final.get(ours, [])) == 3:
        L += ["", f"Paired t-tests on test NDCG@10 {TESTS} (best baseline after stage 2: {best}):", ""]
        L += significance_rows(final, [(ours, b) for b in base], "ndcg@10")
    return L


# ------------------------------------------------------------------ figures


def _loo_name(row: str) -> str:
    """``loo-wo-image`` -> ``w/o image``."""
    return row.replace("loo-", "w/o ").replace("w/o wo-", "w/o ")


PAPER_DATA = "Amazon-Fashion, CLIP features"  # the setting of MM-RACL-KAL's Fig. 2-4


def _ablation_plan(suite, by_row: dict) -> Plan | None:
    """MM-RACL-KAL and its leave-one-out variants: test NDCG@10 and Hit@10, bars over seeds."""
    rows = [r for r in ["MM-RACL-KAL", *suite.LOO] if by_row.get(r)]
    if len(rows) < 2:
        return None
    keys = ("ndcg@10", "hit@10")
    st = {k: [seed_stats(by_row[r], "test", k) for r in rows] for k in keys}
    names = [f"{_loo_name(r)}\n({seeds_note(n)})" for r, (_, _, n) in zip(rows, st[keys[0]])]
    runs = [x for r in rows for x in by_row[r]]

    def paint(fig):
        for ax, k in zip(fig.subplots(1, 2), keys):
            figures.bars(ax, names, [("", [m for m, _, _ in st[k]], [s for _, s, _ in st[k]])],
                         f"test {metric_label(k)} (full ranking)")
            ax.axhline(st[k][0][0], color="grey", linestyle="--", linewidth=0.8)

    return Plan(f"Leave-one-out ablation of {MMRACLKAL} (cf. the paper's Fig. 2)",
                "test NDCG@10 and Hit@10 of the full model and of each variant without one module "
                "(bars: mean over seeds; error bars: ± one std where a row has two seeds or more; "
                "dashed: the full model). "
                + mirrors(MMRACLKAL, "Fig. 2", f"{PAPER_DATA}, NDCG@10", setting(runs)),
                (9.6, 3.8), paint)


def _sweep_plan(suite, by_row: dict, prefix: str, key: str, xlabel: str, fig_no: str) -> Plan | None:
    """Test NDCG@10 and Hit@10 against a swept setting of the retrieval augmentation, beside the
    spread over seeds of the main table's row at the default setting."""
    rows = [r for r in suite.SENS if r.startswith(f"{prefix}-") and by_row.get(r)]
    if not rows:
        return None
    xs = [need(by_row[r][0], "config", key) for r in rows]
    hollow = [any(x.get("device", "cpu") != "cpu" for x in by_row[r]) for r in rows]
    keys = ("ndcg@10", "hit@10")
    ys = {k: [seed_stats(by_row[r], "test", k)[0] for r in rows] for k in keys}
    main = by_row.get("MM-RACL-KAL", [])
    band = {k: seed_stats(main, "test", k) for k in keys} if main else {}
    default = need(main[0], "config", key) if main else None
    runs = [x for r in rows for x in by_row[r]]

    def paint(fig):
        for ax, k in zip(fig.subplots(1, 2), keys):
            figures.sweep(ax, xs, ys[k], f"{MMRACLKAL}, one run per value"
                          + (" (hollow: on a GPU)" if any(hollow) else ""), "C0", hollow)
            if band:
                m, s, n = band[k]
                ax.axhline(m, color="grey", linewidth=0.8,
                           label=f"main table ({xlabel} {default}): mean ± std, {seeds_note(n)}")
                if s == s:
                    ax.axhspan(m - s, m + s, color="grey", alpha=0.2)
            ax.set(xlabel=xlabel, ylabel=f"test {metric_label(k)} (full ranking)")
            ax.legend(loc="lower left")

    gpu = [str(x) for x, h in zip(xs, hollow) if h]
    return Plan(f"{MMRACLKAL}'s sensitivity to {xlabel} (cf. the paper's {fig_no})",
                f"test NDCG@10 and Hit@10 against {xlabel} of the retrieval augmentation, the rest "
                "at the defaults (line: one run per value; grey band: the main table's row at the "
                "default, mean ± one std over its seeds, the spread a change of seed alone gives)"
                + (f"; hollow points ({xlabel} {', '.join(gpu)}) trained on a GPU" if gpu else "")
                + ". " + mirrors(MMRACLKAL, fig_no, f"{PAPER_DATA}, NDCG@10", setting(runs)),
                (9.6, 3.6), paint)


def _curves_plan(suite, by_row: dict) -> Plan | None:
    """Validation curves of the main table's rows, one line per seed."""
    metric = suite.BASE["valid_metric"]
    rows, without = figures.curve_rows(by_row, suite.MAIN, metric)
    if not rows:
        return None
    runs = [x for r in suite.MAIN for x in by_row.get(r, [])]

    def paint(fig):
        ax = fig.subplots()
        figures.curves(ax, rows, f"validation {metric_label(metric)}")
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5))

    return Plan(f"Validation {metric_label(metric)} by epoch, main table rows",
                f"validation {metric_label(metric)} (full ranking, history masked) after each "
                f"epoch, one line per seed, at most {suite.EPOCHS} epochs with patience "
                f"{suite.PATIENCE}; {setting(runs)}." + figures.without_note(without),
                (9.6, 4.8), paint)


def _side_plan(suite, side: dict) -> Plan | None:
    """Ours beside RecBole on identical samples: each model's validation curve per library, and
    seconds per epoch."""
    models = [m for m in suite.SIDE if side[m].get("mmkgrec") and side[m].get("recbole")]
    if not models:
        return None
    metric = suite.BASE["valid_metric"]
    cur = {m: {lib: figures.history(side[m][lib], metric) for lib in ("mmkgrec", "recbole")}
           for m in models}
    pairs = [(m, float(need(side[m]["mmkgrec"], "timing", "train_epoch_s")),
              float(need(side[m]["recbole"], "timing", "train_epoch_s"))) for m in models]
    for m in models:
        for lib, c in cur[m].items():
            if c is None:
                raise figures.MissingField(figures.source(side[m][lib]), "history")

    def paint(fig):
        axes = fig.subplots(1, len(models) + 1)
        for ax, m in zip(axes, models):
            for lib, name in (("mmkgrec", "mmkgrec"), ("recbole", "RecBole")):
                ax.plot(*cur[m][lib], marker="o", markersize=3, label=name)
            ax.set(title=m, xlabel="epoch", ylabel=f"validation {metric_label(metric)}")
            ax.legend(loc="lower right")
        figures.speed(axes[-1], pairs)
        axes[-1].set_title("Seconds per epoch")

    runs = [side[m][lib] for m in models for lib in ("mmkgrec", "recbole")]
    return Plan("Side by side with RecBole: validation curves and seconds per epoch",
                f"validation {metric_label(metric)} by epoch of each library's run (RecBole's a mean "
                "over rows, ours over users: compare the trend, not the level), and training "
                "seconds per epoch on a log scale with RecBole's time as a multiple of ours; "
                f"{setting(runs, modalities=False)}, seed 2020, one torch thread.",
                (11.0, 3.8), paint)


def _efficiency_plan(suite, by_row: dict, latency_runs: list[dict]) -> Plan | None:
    """Training seconds per epoch and per validation pass of the main table's rows, and
    MM-RACL-KAL's inference latency per request."""
    rows = [r for r in suite.MAIN if by_row.get(r)]
    if not rows:
        return None
    med = lambda xs: float(statistics.median(xs))  # noqa: E731
    train = [med([need(x, "timing", "train_epoch_s") for x in by_row[r]]) for r in rows]
    evals = [med([need(x, "timing", "eval_s") for x in by_row[r]]) for r in rows]
    lat = [(f"{need(x, 'catalogue')}\n{need(x, 'n_items')} items", path,
            float(need(x, path, "p50_ms")), float(need(x, path, "p99_ms")))
           for x in latency_runs for path in ("torch_exact", "faiss_flat")]
    runs = [x for r in rows for x in by_row[r]]

    def paint(fig):
        axes = fig.subplots(1, 2 if lat else 1, width_ratios=[3, 2] if lat else None)
        axes = np.atleast_1d(axes)
        ax = axes[0]
        y = np.arange(len(rows))
        ax.barh(y - 0.2, train, 0.4, label="training s/epoch", color="C0")
        ax.barh(y + 0.2, evals, 0.4, label="s per validation pass", color="C2")
        ax.set_yticks(y, rows)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("seconds (log scale)")
        ax.set_title("Training and evaluation, main table rows")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
        if lat:
            cats = list(dict.fromkeys(c for c, _, _, _ in lat))
            series = []
            for path in ("torch_exact", "faiss_flat"):
                for q, col in (("p50", 2), ("p99", 3)):
                    series.append((f"{path} {q}", [next(x[col] for x in lat if x[0] == c and x[1] == path)
                                                   for c in cats], [float("nan")] * len(cats)))
            figures.bars(axes[1], cats, series, "milliseconds per request", annotate=False)
            axes[1].set_title(f"{MMRACLKAL} inference latency")

    return Plan(f"Computational efficiency (cf. {MMRACLKAL}'s Fig. 5)",
                "left: median training seconds per epoch and seconds per full validation pass of "
                "each main-table row (one torch thread beside other work: a comparison within the "
                "table, not speed figures); right: MM-RACL-KAL's latency from history to top-20, "
                "one user per request (the latency table). "
                + mirrors(MMRACLKAL, "Fig. 5", "its data sets, CLIP features, its hardware; the "
                          "text gives no numbers", setting(runs)), (11.0, 4.6), paint)
