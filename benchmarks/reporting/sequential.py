"""MM-RACL-KAL's protocol on ML-100K: the sequential models, the ablations, the equal tuning budget
and its stages (``benchmarks/sequential.py``)."""

from __future__ import annotations

import statistics
from collections import defaultdict

from . import latency
from .stats import ALPHA, TESTS, adjust, compare, p_holm, significance_rows, verdict
from .tables import (OUT, SEQ_KEYS, best_baseline, fmt, header, load, mean_std, suite_runs,
                     user_means)


def _sensitivity_plot(by_row: dict, prefix: str, values, xlabel: str, name: str) -> str | None:
    """A PNG of test NDCG@10 / Hit@10 against a swept value; the file name, or None."""
    pts = [(v, by_row[f"{prefix}-{v}"][0]["test"]) for v in values if by_row.get(f"{prefix}-{v}")]
    if not pts:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for key in ("ndcg@10", "hit@10"):
        ax.plot([str(v) for v, _ in pts], [t[key] for _, t in pts], marker="o", label=key)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test (full ranking)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = OUT.parent / "img" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"img/{name}"


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
    L += ["", "### Additive ladder (the paper's Table 5; one seed)", "",
          "Base = text only + Transformer + L_rec; +M adds the image (alpha fusion); +RA retrieval "
          "augmentation; +S the static LightGCN interest and gate; +C the contrastive losses "
          "(= MM-RACL-KAL).", ""]
    ladder = list(suite.LADDER) + ["MM-RACL-KAL"]
    L += table(ladder, lambda r: r.replace("ladder-", ""))
    L += ["", "Effect of each rung (test NDCG@10, seed 2020, paired t-test over users against the rung "
          f"below, p-values Holm-adjusted over the {len(ladder) - 1} rungs, verdicts at adjusted p < {ALPHA}):", "",
          "| rung | NDCG@10 change | p over users (Holm) | verdict |", "|---|---|---|---|"]
    rungs = list(zip(ladder, ladder[1:]))
    tests = adjust([compare(by_row.get(hi, [])[:1], by_row.get(lo, [])[:1], "ndcg@10") for lo, hi in rungs])
    for (lo, hi), c in zip(rungs, tests):
        if c is None:
            L.append(f"| {hi.replace('ladder-', '')} | not run | | |")
            continue
        L.append(f"| {hi.replace('ladder-', '')} | {c['diff']:+.4f} | {p_holm(c, 'users')} | "
                 f"{verdict(c)} |")
    L += ["", "### Leave-one-out ablation (the paper's Fig. 2; one seed)", ""]
    L += table(["MM-RACL-KAL"] + list(suite.LOO), lambda r: r.replace("loo-", "w/o ").replace("w/o wo-", "w/o "))
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
    for prefix, vals, xl, fn in (("topk", (1, 3, 5, 10, 20), "Top-K", "sens_topk.png"),
                                 ("p", (0.0, 0.1, 0.2, 0.3, 0.5), "replacement probability p", "sens_p.png")):
        img = _sensitivity_plot(by_row, prefix, vals, xl, fn)
        if img:
            L += ["", f"![{xl}]({img})"]
    L += latency.section()
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
