"""Speed at scale (``benchmarks/scale.py``): KGCN's evaluation pass beside a training epoch, BPR
beside the ``implicit`` library on Amazon-Book, and 1 vs 2 processes."""

from __future__ import annotations

import statistics

from .tables import load, load_cell


def _kgcn(rows) -> list[str]:
    rows = [r for r in rows if r["job"].startswith("kgcn-eval-")]
    if not rows:
        return []
    n_rep = len(rows[0].get("repeats", [])) or 1
    L = ["", "### KGCN: a full-ranking evaluation pass beside a training epoch", "",
         "One torch thread; KGCN's defaults (H = 1, K = 4, d = 64, sum aggregator); one training "
         "epoch as the trainer runs it, then one validation pass (every validation user ranked "
         "against every item, training items masked). CPU seconds of the process (the work: the "
         "machine was shared, its wall seconds include waiting for a core); "
         f"{n_rep} repeats of (epoch, pass, exact pass, previous pass) in one process, the medians "
         "of their ratios. *Pass*: the evaluator's, in which the model bounds every score that "
         "cannot reach a user's top 20 and computes the others exactly (`score_all_for_top`: "
         "over an item's receptive field tanh lies within a known distance of its secant, so "
         "a few matrix products bound every user's scores, one over every relation or, where "
         "the relations are many, one per group of neighbours sharing a relation; *exact "
         "share*: the (user, item) "
         "pairs it scored exactly); the metrics are those of the exact pass (*max metric diff*). "
         "*Exact*: every item scored exactly (`score_all`, the pass before the bounds). *Fixed "
         "items*: items whose sampled receptive field has one relation per entity, so their "
         "vector does not depend on the user (scored by one matrix product). *Previous*: the "
         "one-hop computation before that and the `exp2` form (same evaluator, same process). "
         "*Before the issue*: the computation before the user-independent parts moved to once per "
         "pass, timed on the first users and scaled to all of them. *exp2 floor*: the CPU time of "
         "the one `exp2` per user, item (not fixed) and dimension alone, at the speed measured in "
         "the same process: no pass that scores every item exactly can cost less. *Max abs "
         "diff*: exact full ranking against the per-pair `score` of the first users. "
         "Target: a pass at most 5x an epoch. `python benchmarks/scale.py --only kgcn-eval`.", "",
         "| catalogue | users | items | fixed items | epoch CPU s | pass CPU s | pass / epoch "
         "| exact share | max metric diff | exact / epoch | previous / epoch "
         "| before the issue / epoch | exp2 floor / epoch | max abs diff "
         "| load 1-min before / after |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        e = r["train_epoch_cpu_s"]
        prev = f"{r['previous_over_epoch_cpu']:.1f}x" if "previous_over_epoch_cpu" in r else "-"
        exact = f"{r['exact_over_epoch_cpu']:.1f}x" if "exact_over_epoch_cpu" in r else "-"
        pairs = [x["exact_pairs"] for x in r.get("repeats", []) if x.get("exact_pairs")]
        share = (f"{statistics.median(a / b for a, b in pairs if b):.2%}"
                 if any(b for _, b in pairs) else "-")
        diff = (f"{r['max_metric_diff_exact']:.1e}" if "max_metric_diff_exact" in r else "-")
        fixed = r.get("user_independent_items", "-")
        floor = f"{r['exp2_floor_over_epoch']:.1f}x" if "exp2_floor_over_epoch" in r else "-"
        L.append(f"| {r['catalogue']} | {r['eval_users']} | {r['n_items']} | {fixed} | "
                 f"{e:.2f} | {r['eval_pass_cpu_s']:.2f} | **{r['eval_over_epoch_cpu']:.1f}x** | "
                 f"{share} | {diff} | {exact} | "
                 f"{prev} | {r['old_pass_cpu_s_extrapolated'] / e:.1f}x "
                 f"(from {r['sample_users']} users) | {floor} | "
                 f"{r.get('max_abs_diff_per_pair', r['max_abs_diff_old_new']):.1e} | "
                 f"{load_cell(r)} |")
    prof = [r for r in rows if "profile" in r]
    if prof:
        L += ["", "Where a pass's CPU time goes (torch profiler, self time of the top operators; "
              "`score_all` alone beside the pass):", "",
              "| catalogue | score_all (every item exact) CPU s / pass CPU s | top operators "
              "(share of self time) |",
              "|---|---|---|"]
        for r in prof:
            p = r["profile"]
            ops = ", ".join(f"{o['op'].removeprefix('aten::')} {o['share']:.0%}"
                            for o in p["top_ops"][:7])
            L.append(f"| {r['catalogue']} | {p['score_all_cpu_s']:.2f} / "
                     f"{r['eval_pass_cpu_s']:.2f} | {ops} |")
    return L


def _bpr(rows) -> list[str]:
    rows = [r for r in rows if r["job"].startswith("bpr-")]
    L = []
    for threads in sorted({r.get("threads", 1) for r in rows}):
        L += _bpr_threads([r for r in rows if r.get("threads", 1) == threads], threads)
    return L


def _bpr_threads(rows, threads: int) -> list[str]:
    each = "one thread each" if threads == 1 else f"{threads} threads each"
    L = ["", f"### BPR beside implicit (Amazon-Book, {each})", "",
         f"64 factors, {each}, each library at its default learning rate and 5x it (the "
         f"same budget); both scored by our evaluator on the same {rows[0]['eval_users']} "
         "validation / test users (full ranking, training items masked); evaluation time "
         "excluded from the training seconds. Capped: our BPR runs "
         f"{next((r['epochs'] for r in rows if r['library'] == 'mmkgrec'), '-')} epochs, "
         f"implicit {next((r['epochs'] for r in rows if r['library'] == 'implicit'), '-')}.", "",
         "| library | learning rate | s / epoch (training) | best valid recall@20 (epoch) | "
         "test recall@20 (last epoch) | load before / after |", "|---|---|---|---|---|---|"]
    for r in rows:
        b = r["best"]
        lib = f"{r['library']} {r['versions'].get(r['library'], '')}".strip()
        L.append(f"| {lib} | {r['lr']} | "
                 f"{r['train_epoch_s']:.2f} | {b['valid']['recall@20']:.4f} ({b['epoch']}) | "
                 f"{r['test_last_epoch']['recall@20']:.4f} | {load_cell(r)} |")
    imp = [r for r in rows if r["library"] == "implicit"]
    ours = [r for r in rows if r["library"] == "mmkgrec"]
    if imp and ours:
        best_imp = max(imp, key=lambda r: r["best"]["valid"]["recall@20"])
        target = best_imp["best"]["valid"]["recall@20"]
        reach = [(h["train_s_cum"], r["lr"]) for r in ours for h in r["history"]
                 if h["valid"]["recall@20"] >= target]
        ours_s = min(reach) if reach else None
        L += ["", f"Time to implicit's best validation recall@20 ({target:.4f}, learning rate "
              f"{best_imp['lr']}): implicit {best_imp['best']['train_s_cum']:.1f} s of training; "
              + (f"ours {ours_s[0]:.1f} s (learning rate {ours_s[1]}): "
                 + ("met (ours no longer)." if ours_s[0] <= best_imp["best"]["train_s_cum"]
                    else "not met (ours longer).") if ours_s else
                 "ours did not reach it within its capped epochs: not met.")]
    return L


def _shared(rows) -> bool:
    """Whether the machine was shared while these rows ran (a 1-minute load average above 1.5
    before or after any of them, on 2 cores)."""
    return any(max(r["load_before"][0], r["load_after"][0]) > 1.5 for r in rows)


def _ddp(rows) -> list[str]:
    rows = [r for r in rows if r["job"].startswith("ddp-")]
    L = []
    for rep in sorted({r.get("repeat", 1) for r in rows}):
        L += _ddp_repeat([r for r in rows if r.get("repeat", 1) == rep], rep)
    return L


def _ddp_repeat(rows, rep: int) -> list[str]:
    machine = ("On a machine shared with other work (its load below: 2 cores, other jobs) these "
               "say little." if _shared(rows) else
               "Nothing else ran (the load below): these are the figures of this 2-core machine.")
    title = "" if rep == 1 else f", measured again (ids `-r{rep}`)"
    L = ["", f"### 1 vs 2 processes (`mmkgrec train --nproc N`){title}", "",
         f"Amazon-Book capped to {rows[0]['subsample_users']} users (`subsample_users`), "
         f"{rows[0]['epochs']} epochs, one thread per process, gloo, the same global batch: the "
         "validation scores per epoch are the same at 1 and 2 processes, so the time to a "
         "target validation score is the sum of the epoch times until it is reached. Speed-up: "
         "median training seconds per epoch at 1 process over those at 2; efficiency: speed-up "
         f"/ 2. {machine} What does not shrink with more processes: every step "
         "all-reduces the dense gradient of the whole embedding table (BPR: 43k rows x 64 "
         "floats, 11 MB, over gloo), and LightGCN propagates the whole graph in every process; "
         "the validation pass, divided by users, does shrink. A GPU run was not made (no GPU "
         "in this session).", "",
         "| model | processes | s / epoch (median) | s / validation pass (median) | valid "
         "recall@20 per epoch | speed-up | efficiency | load before / after |",
         "|---|---|---|---|---|---|---|---|"]
    base = {r["model"]: statistics.median(r["train_epoch_s"]) for r in rows if r["nproc"] == 1}
    for r in sorted(rows, key=lambda r: (r["model"], r["nproc"])):
        ep = statistics.median(r["train_epoch_s"])
        ev = [e for e in r["eval_s"] if e is not None]
        sp = base.get(r["model"], float("nan")) / ep
        L.append(f"| {r['model']} | {r['nproc']} | {ep:.2f} | "
                 f"{statistics.median(ev) if ev else float('nan'):.2f} | "
                 f"{', '.join(f'{v:.4f}' for v in r['valid'] if v is not None)} | {sp:.2f}x | "
                 f"{sp / r['nproc']:.0%} | {load_cell(r)} |")
    return L


def _lightgcn(rows) -> list[str]:
    rows = {r["library"]: r for r in rows if r["job"].startswith("lightgcn-amazon-")}
    if not rows:
        return []
    L = ["", "### LightGCN beside RecBole on Amazon-Book, measured again", "",
         "The core suite's speed job (2 epochs, identical settings, the same exported split, "
         "each library at its default threads), the libraries one after the other in one queue "
         "run (`python benchmarks/scale.py --only lightgcn-amazon`). Target: our training epoch "
         "at most a third of RecBole's. "
         + ("The machine was shared while they ran (load below): the ratio says little."
            if _shared(list(rows.values())) else "Nothing else ran (the load below)."), "",
         "| library | s / epoch (training, median) | s / full evaluation | peak RSS MB | "
         "load before / after |", "|---|---|---|---|---|"]
    for lib in ("mmkgrec", "recbole"):
        if lib in rows:
            r = rows[lib]
            L.append(f"| {lib} | {r['timing']['train_epoch_s']:.2f} | "
                     f"{r['timing']['eval_s']:.2f} | {r.get('peak_rss_mb', float('nan')):.0f} | "
                     f"{load_cell(r)} |")
    if len(rows) == 2:
        ratio = rows["recbole"]["timing"]["train_epoch_s"] / rows["mmkgrec"]["timing"][
            "train_epoch_s"]
        L += ["", f"RecBole's epoch over ours: **{ratio:.2f}x** (target at least 3x: "
              f"{'met' if ratio >= 3 else 'not met'})."]
    return L


def section() -> list[str]:
    rows = load("scale")
    if not rows:
        return []
    L = ["", "## Speed at scale", "",
         "`python benchmarks/scale.py` (one JSON per job in `benchmarks/results/scale/`)."]
    return L + _kgcn(rows) + _bpr(rows) + _ddp(rows) + _lightgcn(rows)
