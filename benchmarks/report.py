"""Generate docs/BENCHMARKS.md from the JSON files under benchmarks/results/ (never typed by hand).

    python benchmarks/report.py
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from mmkgrec.evaluation.significance import align_per_user, paired_ttest  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
OUT = ROOT / "docs" / "BENCHMARKS.md"
ACC_KEYS = ["ndcg@10", "recall@10", "mrr@10", "hit@10", "ndcg@20", "recall@20"]


def load(suite: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((RESULTS / suite).glob("*.json"))]


def best_baseline(by_row: dict, rows, key: str) -> str | None:
    """The row of ``rows`` with the best mean test ``key`` over its runs (None without rows)."""
    return max(rows, key=lambda r: np.mean([x["test"][key] for x in by_row[r]]), default=None)


def suite_runs(name: str):
    """A benchmark queue's module (its own definitions: rows, rates, budget) and its results."""
    import importlib

    sys.path.insert(0, str(ROOT / "benchmarks"))
    return importlib.import_module(name), load(name)


def mean_std(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return float("nan"), float("nan")
    return float(np.mean(xs)), float(np.std(xs, ddof=1)) if len(xs) > 1 else float("nan")


def fmt(m, s=None, nd=4):
    if m != m:
        return "-"
    return f"{m:.{nd}f}" if s is None or s != s else f"{m:.{nd}f} ± {s:.{nd}f}"  # one value: no ±


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


def target_cells(ours: list[float], ref: list[float]) -> str:
    """``difference | allowed | met |`` cells of the side-by-side target: our mean at least the
    reference library's minus max(0.005, the reference's std over seeds)."""
    d = np.mean(ours) - np.mean(ref)
    sd = mean_std(ref)[1]
    allowed = max(0.005, sd if sd == sd else 0.0)
    return f"{d:+.4f} | -{allowed:.4f} | {'yes' if d >= -allowed else 'no'} |"


def seed_cells(rs: list[dict]) -> tuple[list[str], float]:
    """``mean ± std`` over seeds of each ACC_KEYS test metric, and the median s/epoch."""
    cells = _cells(rs, ACC_KEYS)
    secs = [r["timing"]["train_epoch_s"] for r in rs if r["timing"].get("train_epoch_s")]
    return cells, statistics.median(secs) if secs else float("nan")


def core_section() -> list[str]:
    runs = load("core")
    if not runs:
        return ["## Core: mmkgrec vs RecBole 1.2.1", "", "No results yet: run `make bench-core`.", ""]
    acc = defaultdict(list)
    speed = {}
    bound = None
    for r in runs:
        if r["job"].startswith("ml-100k") and "-speed" not in r["job"]:
            acc[(r["model"], r["library"])].append(r)
        elif r["job"].endswith("-speed"):
            speed[(r["dataset"], r["model"], r["library"])] = r
        elif r["job"] == "amazon-book-bound":
            bound = r
    L = ["## Core: mmkgrec vs RecBole 1.2.1 on identical splits", ""]
    L += ["ML-100K, random 8:1:1 per user split by mmkgrec and exported as RecBole benchmark files "
          "(`mmkgrec data export-recbole`), full ranking with training (and, at test, validation) "
          "items masked, best epoch on validation MRR@10. Identical hyper-parameters for both "
          "libraries: embedding 64, batch 2048, one uniform negative, Adam; BPR lr 0.001, no L2; "
          "LightGCN lr 0.005, 2 layers, L2 1e-5; patience 30, at most 300 epochs. "
          "Test metrics, mean ± standard deviation over seeds.", ""]
    head = "| model | library | seeds | " + " | ".join(ACC_KEYS) + " | best epoch | s/epoch |"
    L += [head, "|" + "---|" * (head.count("|") - 1)]
    for (model, lib), rs in sorted(acc.items()):
        cells, se = seed_cells(rs)
        be = mean_std([r["best_epoch"] for r in rs])[0]
        L.append(f"| {model} | {lib} | {len(rs)} | " + " | ".join(cells) + f" | {be:.0f} | {se:.3f} |")
    L += ["", "Accuracy target: mmkgrec's test NDCG@10 and Recall@10 at least RecBole's minus "
          "max(0.005, one standard deviation over seeds). Paired t-test over (user, seed) pairs.", ""]
    L += ["| model | metric | mmkgrec | RecBole | difference | allowed | met | paired p |", "|---|---|---|---|---|---|---|---|"]
    for model in sorted({m for m, _ in acc}):
        ours, ref = acc.get((model, "mmkgrec"), []), acc.get((model, "recbole"), [])
        if not ours or not ref:
            continue
        for key in ("ndcg@10", "recall@10"):
            mo, so = mean_std([r["test"][key] for r in ours])
            mr, sr = mean_std([r["test"][key] for r in ref])
            allowed = max(0.005, sr)
            a, b = pooled_pairs(ours, ref, key)
            p = paired_ttest(a, b)["p"] if a is not None else float("nan")
            L.append(f"| {model} | {key} | {mo:.4f} | {mr:.4f} | {mo - mr:+.4f} | -{allowed:.4f} | "
                     f"{'yes' if mo >= mr - allowed else 'NO'} | {p:.3g} |")
    for lib in ("mmkgrec", "recbole"):
        a_runs, b_runs = acc.get(("LightGCN", lib), []), acc.get(("BPR", lib), [])
        if a_runs and b_runs:
            a, b = pooled_pairs(a_runs, b_runs, "ndcg@10")
            t = paired_ttest(a, b)
            seeds = seed_ttest(a_runs, b_runs, "ndcg@10")
            L.append("")
            L.append(f"LightGCN vs BPR ({lib}), NDCG@10: mean difference {t['mean_diff']:+.4f} over "
                     f"{t['n']} (user, seed) pairs, paired t-test p = {t['p']:.3g}; over seeds "
                     f"p = {seeds['p']:.3g} (n = {seeds['n']}).")
    L.append("")
    if speed or bound:
        L += ["### Speed and memory", "",
              "Training seconds per epoch (sampling included, the span RecBole logs; median over "
              "epochs), seconds per full evaluation, peak resident memory of the whole process. "
              "Target: mmkgrec's s/epoch at most a third of RecBole's; a full Amazon-Book evaluation "
              "within 1.1x the bare matmul + top-20 bound; peak memory at most RecBole's.", ""]
        L += ["| dataset | model | library | s/epoch | ratio RecBole/mmkgrec | s/eval | eval / bound | peak RSS MB |",
              "|---|---|---|---|---|---|---|---|"]
        b_s = bound["timing"]["eval_s"] if bound else None
        for (ds, model, lib), r in sorted(speed.items()):
            ref = speed.get((ds, model, "recbole"))
            ratio = (ref["timing"]["train_epoch_s"] / r["timing"]["train_epoch_s"]) if ref and lib == "mmkgrec" else None
            ev = r["timing"].get("test_eval_s") or r["timing"].get("eval_s")
            eb = f"{ev / b_s:.2f}" if (b_s and ds == "amazon-book" and ev) else "-"
            L.append(f"| {ds} | {model} | {lib} | {r['timing']['train_epoch_s']:.3f} | "
                     f"{'-' if ratio is None else f'{ratio:.1f}x'} | {fmt(ev or float('nan'), nd=2)} | {eb} | "
                     f"{r.get('peak_rss_mb', float('nan')):.0f} |")
        if bound:
            L += ["", f"Bare matmul + top-20 over 70,679 x 24,915 (64-d, chunks of 4,096 users, same run): "
                  f"{b_s:.2f} s (median of {len(bound['config']['all_s'])})."]
        L.append("")
    L += ["### Commands", ""]
    for r in runs:
        L.append(f"- `{r['job']}`: `{r['command']}` (git {r.get('git_sha', '?')[:12]}, {r.get('finished_at', '')})")
    L.append("")
    return L


def features_section() -> list[str]:
    runs = load("features")
    if not runs:
        return []
    L = ["## Feature extraction throughput (ML-100K)", "",
         "Items per second through the feature store (fresh cache) next to the bare encoder on the "
         "same inputs in the same process, median of repetitions. Target: store >= 0.9x bare.", "",
         "| encoder | dim | items | bare items/s | store items/s | store / bare | served again from the store, items/s |",
         "|---|---|---|---|---|---|---|"]
    for r in runs:
        f = r["features"]
        L.append(f"| {f['store_stats']['encoder']} | {f['dim']} | {f['n_items_encoded']} | "
                 f"{f['bare_items_per_s']:.0f} | {f['store_items_per_s']:.0f} | {f['store_over_bare']:.2f} | "
                 f"{f['reuse_items_per_s']:.0f} |")
    notes = [r["features"].get("note") for r in runs if r["features"].get("note")]
    L += [""] + [f"Note: {n}." for n in notes] + [""]
    L += [f"- `{r['job']}`: `{r['command']}` (git {r.get('git_sha', '?')[:12]})" for r in runs]
    return L + [""]


def _set(values) -> str:
    return "{" + ", ".join(str(v) for v in values) + "}"


def multimodal_section() -> list[str]:
    mm, runs = suite_runs("multimodal")
    if not runs:
        return []
    final = defaultdict(list)
    for r in runs:
        if not r.get("tuning"):
            final[r["variant"]].append(r)
    tune, tune_reg = defaultdict(dict), defaultdict(dict)
    for r in runs:
        if r.get("tuning"):
            if "reg" in r:  # stage 2: the regulariser at the stage-1 rate
                tune_reg[r["variant"]][r["reg"]] = r["valid"]["ndcg@10"]
            else:
                tune[r["variant"]][r["chosen_lr"]] = r["valid"]["ndcg@10"]
    L = ["## Multimodal baselines on ML-100K", "",
         "Random 8:1:1 per user, full ranking. Same tuning budget for every variant: learning rate "
         f"in {_set(mm.LRS)} chosen on validation NDCG@10 (seed 2020, at most 150 epochs, "
         "patience 15), then 3 seeds. Text: all-MiniLM-L6-v2 over title, year and genres. Image: "
         "the hand-crafted poster descriptor (colour, texture and layout statistics; no pre-trained "
         "image encoder is available offline here). Controls shuffle the feature rows across "
         "items and keep the variant's hyper-parameters. `sparse-*` rows split each user's "
         "interactions 2:1:7 instead (a fifth for training), the regime where content has more to "
         "add than on the dense 8:1:1 split. `+reg` rows add stage 2 of the same budget for BPR and "
         f"VBPR: at the stage-1 rate, each model's own regulariser in {_set([0] + mm.REGS)} chosen on "
         "validation (BPR: L2 of the batch factors; VBPR: lambda_E on E and beta'). `+L2` rows "
         "give VBPR the same stage 2 over BPR's key instead, reg_weight (the L2 of the batch's ID "
         f"factors), in {_set(['1e-5 (VBPR default, the stage-1 run)'] + mm.REGS)}: BPR+reg chose 0.001 "
         "for that term while the `+reg` VBPR rows kept it at 1e-5. `-std` rows standardise "
         "every feature dimension over the items (`feature_norm: standard`; unstandardised, the "
         "poster descriptor's rows, norm about 4, outweigh the unit-norm text embeddings). Test metrics, "
         "mean ± std over seeds. "
         "These runs used one torch thread beside other work: their s/epoch are not speed figures.", ""]
    head = "| variant | lr | seeds | " + " | ".join(ACC_KEYS) + " | s/epoch |"
    L += [head, "|" + "---|" * (head.count("|") - 1)]
    order = ["BPR", "LightGCN", "VBPR-text", "VBPR-image", "VBPR-both", "VBPR-both-shuffled",
             "VBPR-both-std", "MMGCN-text", "MMGCN-image", "MMGCN-both", "MMGCN-both-shuffled",
             "sparse-BPR", "sparse-LightGCN", "sparse-VBPR-both", "sparse-VBPR-both-shuffled",
             "sparse-MMGCN-both", "BPR+reg", "VBPR-text+reg", "VBPR-both+reg", "VBPR-both-std+reg",
             "VBPR-text+L2", "VBPR-both+L2"]
    for v in order:
        rs = final.get(v, [])
        if not rs:
            L.append(f"| {v} | - | 0 | " + " | ".join("not run" for _ in ACC_KEYS) + " | - |")
            continue
        cells, se = seed_cells(rs)
        L.append(f"| {v} | {rs[0]['chosen_lr']} | {len(rs)} | " + " | ".join(cells) + f" | {se:.3f} |")
    L += ["", "Paired t-tests on test NDCG@10 over (user, seed) pairs, and over seeds:", ""]
    pairs = [("VBPR-both", "BPR"), ("VBPR-both", "VBPR-both-shuffled"), ("VBPR-text", "BPR"),
             ("VBPR-image", "BPR"), ("MMGCN-both", "LightGCN"), ("MMGCN-both", "MMGCN-both-shuffled"),
             ("LightGCN", "BPR"), ("sparse-VBPR-both", "sparse-BPR"),
             ("sparse-VBPR-both", "sparse-VBPR-both-shuffled"), ("sparse-MMGCN-both", "sparse-LightGCN"),
             ("sparse-LightGCN", "sparse-BPR"), ("VBPR-both+reg", "BPR+reg"),
             ("VBPR-text+reg", "BPR+reg"), ("VBPR-both+reg", "BPR"), ("VBPR-both+reg", "VBPR-both-shuffled"),
             ("VBPR-both-std", "BPR"), ("VBPR-both-std", "VBPR-both"),
             ("VBPR-both-std+reg", "BPR+reg"), ("VBPR-both-std+reg", "VBPR-both+reg"),
             ("VBPR-both+L2", "BPR+reg"), ("VBPR-text+L2", "BPR+reg"),
             ("VBPR-both+L2", "VBPR-both-shuffled")]
    L += _significance_rows(final, pairs, "ndcg@10")
    L += ["", "Tuning (validation NDCG@10 per learning rate, seed 2020):", "",
          "| variant | " + " | ".join(f"lr {lr}" for lr in mm.LRS) + " |", "|---" * (1 + len(mm.LRS)) + "|"]
    for v in order:
        if v in tune:
            L.append(f"| {v} | " + " | ".join(fmt(tune[v].get(lr, float('nan'))) for lr in mm.LRS) + " |")
    if tune_reg:
        L += ["", "Stage 2 (validation NDCG@10 per regulariser value at the stage-1 rate, seed 2020; "
              "`stage 1` is the stage-1 run, the key at the model's default):", "",
              "| variant | key | stage 1 | " + " | ".join(str(r) for r in mm.REGS) + " |",
              "|" + "---|" * (3 + len(mm.REGS))]
        for v, (base, key) in mm.REG_TUNED.items():
            if v in tune_reg:
                # the stage-1 point: the best validation score over the rates (the chosen rate)
                L.append(f"| {v} | {key} | {fmt(max(tune[base].values()))} | "
                         + " | ".join(fmt(tune_reg[v].get(r, float("nan"))) for r in mm.REGS) + " |")
    L += ["", "Commands: `python benchmarks/multimodal.py` (each JSON in `benchmarks/results/multimodal/` "
          "holds its exact `mmkgrec train` command)."]
    return L + [""]


def popularity_section(suite_rows: str) -> list[str]:
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
    rows = pop.SEQ_ROWS + stage2 if seq else pop.ROWS
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
        row = r.get("row_test_ndcg@10")
        if row is None:
            differ.append(f"{r['job']} {r['test']['ndcg@10']:.6f} vs no row")
        elif abs(r["test"]["ndcg@10"] - row) >= 1e-6:
            sha = json.loads(pop.row_file(r).read_text())["git_sha"][:7]
            differ.append(f"{r['job']} {r['test']['ndcg@10']:.6f} vs {row:.6f} (the row's git {sha})")
    L += ["", f"{len(runs) - len(differ)} of {len(runs)} retrained runs reproduce their row's overall "
          "test NDCG@10 exactly" + (f"; the others (retrained vs row): {', '.join(differ)}." if differ
                                    else "."),
          "", "Test metrics per group, mean ± std over seeds:", ""]
    cols = [(n, k) for n in names for k in keys]
    head = "| row | seeds | " + " | ".join(f"{n} {k}" for n, k in cols) + " |"
    L += [head, "|" + "---|" * (head.count("|") - 1)]
    for v in rows:
        rs = by_row.get(v, [])
        if not rs:
            L.append(f"| {v} | 0 | " + " | ".join("not run" for _ in cols) + " |")
            continue
        cells = [fmt(*mean_std([r["groups"][names.index(n)]["metrics"][k] for r in rs]))
                 for n, k in cols]
        L.append(f"| {v} | {len(rs)} | " + " | ".join(cells) + " |")
    L += ["", "Paired t-tests per group, over (user, seed) pairs and over seeds:", "",
          "| comparison | group | " + " | ".join(f"difference ({k}) | p (users x seeds) | p (seeds)"
                                              for k in keys) + " |",
          "|---|---|" + "---|---|---|" * len(keys)]
    for a_v, b_v in pairs:
        for gi, name in enumerate(names):
            # each group as a run of its own: its metrics and per-user values, paired by seed
            a_runs, b_runs = ([{"seed": r["seed"], "test": r["groups"][gi]["metrics"],
                                "per_user": r["groups"][gi]["per_user"]} for r in by_row.get(v, [])]
                              for v in (a_v, b_v))
            L.append(f"| {a_v} vs {b_v} | {name} | "
                     + " | ".join(_test_cells(a_runs, b_runs, k) for k in keys) + " |")
    if not seq:
        L += ["", "For comparison, MMRec's published figures (Amazon Baby, 5-core, random 8:1:1, full "
              "ranking; ANCHORS.md) have MMGCN below LightGCN too: Recall@20 0.0615 vs 0.0754, "
              "NDCG@20 0.0261 vs 0.0328; VBPR is above BPR there (0.0663 vs 0.0575), with pre-trained "
              "CNN image features on a sparse catalogue."]
    L += ["", "Command: `python benchmarks/popularity.py` (each JSON in `benchmarks/results/popularity/` "
          "holds its `mmkgrec train` command; the groups come from the trained run)."]
    return L + [""]


def user_means(r: dict, keys) -> dict:
    """RecBole's sequential metrics are means over test rows (one per target); ours are means over
    users of each user's mean over targets. The per-row values RecBole's runner keeps, averaged
    per user first, give the figure that compares with ours."""
    pu = r["per_user"]
    users = np.asarray(pu["user_ids"], dtype=str)
    uniq, inv = np.unique(users, return_inverse=True)
    out = {}
    for k in keys:
        v = np.asarray(pu[k], dtype=float)
        out[k] = float(np.mean(np.bincount(inv, v) / np.bincount(inv)))
    return out


SEQ_KEYS = ["hit@10", "hit@20", "ndcg@10", "ndcg@20", "mrr@20"]
KG_KEYS = ["recall@20", "mrr@20", "ndcg@20", "recall@10", "ndcg@10"]


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


def sequential_section() -> list[str]:
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
          "epoch cap, patience, learning rate and batch; seed 2020 only. RecBole's SASRec takes "
          f"minutes per epoch here, so it ran {suite.RECBOLE_SASREC_EPOCHS} epochs: its row gives speed "
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
        out = [head, "|" + "---|" * (head.count("|") - 1)]
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
    L += ["", f"Paired t-tests on test NDCG@10 over users (best baseline by mean test NDCG@10: {best}):", ""]
    L += _significance_rows(by_row, [("MM-RACL-KAL", b) for b in dict.fromkeys([best, "RACL-KAL", "SASRec"]) if b]
                            + [("MM-RACL-KAL+ID", best or "SASRec"), ("MM-RACL-KAL+ID", "MM-RACL-KAL"),
                               ("ladder-+S", best or "SASRec")],
                            "ndcg@10")
    if tuned or trials:
        L += _tuned_lines(suite, tuned, trials, table)
    if long:
        L += _long_seq_lines(suite, long, tuned, table)
        L += _lr2_seq_lines(suite, {r["job"]: r for r in runs}, table)
    L += ["", "### Additive ladder (the paper's Table 5; one seed)", "",
          "Base = text only + Transformer + L_rec; +M adds the image (alpha fusion); +RA retrieval "
          "augmentation; +S the static LightGCN interest and gate; +C the contrastive losses "
          "(= MM-RACL-KAL).", ""]
    ladder = list(suite.LADDER) + ["MM-RACL-KAL"]
    L += table(ladder, lambda r: r.replace("ladder-", ""))
    L += ["", "Effect of each rung (test NDCG@10, seed 2020, paired over users against the rung below):", "",
          "| rung | NDCG@10 change | p (users) |", "|---|---|---|"]
    for lo, hi in zip(ladder, ladder[1:]):
        a, b = by_row.get(hi, [])[:1], by_row.get(lo, [])[:1]
        if a and b:
            x, y = pooled_pairs(a, b, "ndcg@10")
            t = paired_ttest(x, y)
            L.append(f"| {hi.replace('ladder-', '')} | {t['mean_diff']:+.4f} | {t['p']:.3g} |")
        else:
            L.append(f"| {hi.replace('ladder-', '')} | not run | |")
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
    lat = load("latency")
    if lat:
        L += ["", "### Inference latency (history -> top-20, one user per request)", "",
              "Static parts prepared offline (fused item table, every user's LightGCN interest; a flat "
              "index for the FAISS path); retrieval augmentation off at inference; one torch thread; "
              "1,000 requests after 50 warm-up ones; untrained weights and random histories (latency "
              "depends on neither). Target: p99 < 5 ms at 25,000 items. `python benchmarks/latency.py`.", "",
              "| catalogue | items | path | p50 ms | p99 ms | mean ms |", "|---|---|---|---|---|---|"]
        for r in lat:
            for path in ("torch_exact", "faiss_flat"):
                x = r[path]
                L.append(f"| {r['catalogue']} | {r['n_items']} | {path} | {x['p50_ms']:.2f} | "
                         f"{x['p99_ms']:.2f} | {x['mean_ms']:.2f} |")
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
        L += ["", f"Paired t-tests on test NDCG@10 (best tuned baseline by mean test NDCG@10: {best}):",
              ""]
        L += _significance_rows(by, [(a, b) for a in ("MM-RACL-KAL (tuned)", "MM-RACL-KAL+ID (tuned)")
                                     for b in dict.fromkeys([best, "SASRec (tuned)"])], "ndcg@10")
    return L


def _long_seq_lines(suite, long: dict, tuned: dict, table) -> list[str]:
    """The tuned settings again with the longer epoch budget, and MM-RACL-KAL's paired tests
    against the best baseline at that budget."""
    label = f" (tuned, {suite.LONG_EPOCHS} epochs)"
    rows = [r + label for r in suite.LONG_ROWS]
    best_epochs = [r["best_epoch"] for rs in tuned.values() for r in rs]
    near_cap = sum(e >= suite.EPOCHS - 2 for e in best_epochs)
    L = ["", f"### The tuned settings with {suite.LONG_EPOCHS} epochs (patience {suite.LONG_PATIENCE})",
         "", f"{near_cap} of the {len(best_epochs)} chosen runs above had their best epoch in the "
         f"last two of {suite.EPOCHS}: the cap bound. Each chosen "
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
        L += ["", f"Paired t-tests on test NDCG@10 (best baseline with 3 seeds at this budget: {best}):",
              ""]
        L += _significance_rows(long, [(a + label, b) for a in ("MM-RACL-KAL+ID", "MM-RACL-KAL")
                                       for b in dict.fromkeys([best, "SASRec" + label])
                                       if long.get(a + label) and long.get(b)], "ndcg@10")
    return L


def _lr2_seq_lines(suite, by_job: dict, table) -> list[str]:
    """Stage 2 of the sequential budget: the learning rate chosen again at the longer budget,
    the chosen rates' seeds, and MM-RACL-KAL+ID's paired tests against the best baseline."""
    label = suite.LR2_LABEL
    L = ["", f"### Stage 2: the learning rate chosen again at {suite.LONG_EPOCHS} epochs", "",
         f"Stage 1 chose every setting under the {suite.EPOCHS}-epoch cap, which bound most of its "
         "runs and so favours large steps. Stage 2 gives MM-RACL-KAL+ID and the sequential "
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
        L += ["", f"Paired t-tests on test NDCG@10 (best baseline after stage 2: {best}):", ""]
        L += _significance_rows(final, [(ours, b) for b in base], "ndcg@10")
    return L


def _cells(rs: list[dict], keys: list[str]) -> list[str]:
    return [fmt(*mean_std([r["test"][k] for r in rs])) for k in keys]


def _epoch_times(rs: list[dict]) -> tuple[float, float]:
    """Median s/epoch (training) and median seconds to the best epoch's end (training plus
    validation of every epoch up to it, from the per-epoch timing)."""
    per_epoch = [r["timing"]["train_epoch_s"] for r in rs if r["timing"].get("train_epoch_s")]
    to_best = [(r["best_epoch"] + 1) * (r["timing"]["train_epoch_s"] + r["timing"].get("eval_s", 0.0))
               for r in rs if r["timing"].get("train_epoch_s") and r.get("best_epoch") is not None]
    med = lambda xs: statistics.median(xs) if xs else float("nan")  # noqa: E731
    return med(per_epoch), med(to_best)


def _test_cells(a_runs: list[dict], b_runs: list[dict], key: str) -> str:
    """``difference | p (users x seeds) | p (seeds)`` of test ``key``, a over b (``not run`` cells
    when either side has no runs)."""
    if not a_runs or not b_runs:
        return "not run | - | -"
    t = paired_ttest(*pooled_pairs(a_runs, b_runs, key))
    ts = seed_ttest(a_runs, b_runs, key) if min(len(a_runs), len(b_runs)) > 1 else {"p": float("nan")}
    return f"{t['mean_diff']:+.4f} | {t['p']:.3g} | {ts['p']:.3g}"


def _significance_rows(final: dict, pairs, key: str) -> list[str]:
    L = [f"| comparison | mean difference ({key}) | p (users x seeds) | p (seeds) |", "|---|---|---|---|"]
    for a_v, b_v in pairs:
        L.append(f"| {a_v} vs {b_v} | {_test_cells(final.get(a_v, []), final.get(b_v, []), key)} |")
    return L


def kg_section() -> list[str]:
    suite, runs = suite_runs("kg")
    if not runs:
        return []
    final, side, tune = defaultdict(list), defaultdict(lambda: defaultdict(list)), defaultdict(dict)
    chosen = {}
    for row in suite.MAIN:
        try:
            chosen[row] = suite.chosen_lr(row)
        except RuntimeError:
            pass
    speed = {r["row"]: r for r in runs if r.get("speed")}
    runs = [r for r in runs if not r.get("speed")]
    for r in runs:
        if r.get("side_by_side"):
            side[r["row"]][r["library"]].append(r)
        elif r.get("tuning"):
            tune[r["row"]][r["lr"]] = r["valid"]["ndcg@20"]
            if chosen.get(r["row"]) == r["lr"]:
                final[r["row"]].append(r)
        else:
            final[r["row"]].append(r)
    L = ["## Knowledge-graph models and Multi-KG4Rec on ML-100K", "",
         f"ML-100K with its Freebase KG, random 8:1:1 per user, full ranking. Text: all-MiniLM-L6-v2 "
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
    L += [head, "|" + "---|" * (head.count("|") - 1)]

    def row_line(name, rs, lr):
        if not rs:
            return f"| {name} | - | 0 | " + " | ".join("not run" for _ in KG_KEYS) + " | - | - | - |"
        se, tb = _epoch_times(rs)
        capped = sum(r["best_epoch"] >= suite.EPOCHS - 1 for r in rs)
        return (f"| {name} | {lr} | {len(rs)} | " + " | ".join(_cells(rs, KG_KEYS))
                + f" | {se:.2f} | {tb:.0f} | {capped}/{len(rs)} |")

    for row in suite.MAIN:
        L.append(row_line(row, final.get(row, []), chosen.get(row, "-")))
    baselines = [r for r in suite.MAIN if not r.startswith("MultiKG4Rec") and final.get(r)]
    best = best_baseline(final, baselines, "ndcg@20")
    pairs = ([("MultiKG4Rec", b) for b in dict.fromkeys([best, "MKGAT", "KGAT"]) if b]
             + [("KGAT", "BPR"), ("MKGAT", "KGAT"), ("MultiKG4Rec-no fusion", "MultiKG4Rec"),
                ("MultiKG4Rec-no fusion", "KGAT"), ("MultiKG4Rec-no fusion", "MKGAT"),
                ("MultiKG4Rec-w/o t&v", "KGAT")])
    L += ["", f"Paired t-tests on test NDCG@20 (best baseline by mean test NDCG@20: {best}; rows with "
          "one seed pair users within seed 2020):", ""]
    L += _significance_rows(final, pairs, "ndcg@20")
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
            L.append(f"| {row} | " + " | ".join(_cells(rs, KG_KEYS)) + f" | {_epoch_times(rs)[0]:.2f} |")
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
            cells = _cells(rs, ["ndcg@20", "recall@20", "ndcg@10"])
            if lib == "mmkgrec" and ref:
                extra = target_cells([r["test"]["ndcg@20"] for r in rs], [r["test"]["ndcg@20"] for r in ref])
            else:
                extra = " | | |"
            L.append(f"| {m} | {lib} | {len(rs)} | " + " | ".join(cells) + f" | {extra} {_epoch_times(rs)[0]:.2f} |")
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
    L += case_study_lines()
    L += ["", "Commands: `python benchmarks/kg.py` (each JSON in `benchmarks/results/kg/` holds its "
          "exact command)."]
    return L + [""]


def _l2_stage_lines(suite, final: dict) -> list[str]:
    """Stage 2 of the KG budget: the regulariser of the graph models, chosen on validation."""
    L = ["", "### Stage 2 of the budget: the regulariser (KGAT, MKGAT, Multi-KG4Rec)", "",
         "SPEC.md leaves Multi-KG4Rec's L2 to validation. At the learning rate stage 1 chose, each "
         "graph model also ran with `reg_weight` 1e-3 beside the default 1e-5 (seed 2020); the "
         "better on validation NDCG@20 is its row here, with 3 seeds. KGAT's and MKGAT's validation "
         "can dip for longer than the patience of 10 after their first epochs, and such a seed "
         "stops there (a best epoch of a few and a low test score): their rows again with a "
         "150-epoch cap and patience 30 follow.", "",
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
                 + " | ".join(_cells(chosen[row], KG_KEYS)) + f" | {best_epochs(chosen[row])} |")
    for long_row in suite.LONG_L2.values():
        long = final.get(long_row, [])
        if long:
            chosen[long_row] = long
            L.append(f"| {long_row}, patience 30 | | | L2 1e-3 | {len(long)} | "
                     + " | ".join(_cells(long, KG_KEYS)) + f" | {best_epochs(long)} |")
    if "MultiKG4Rec" in chosen:
        kgat, mkgat = suite.LONG_L2["KGAT"], suite.LONG_L2["MKGAT"]
        L += ["", "Paired t-tests on test NDCG@20, each model at its chosen regulariser:", ""]
        L += _significance_rows(chosen, [("MultiKG4Rec", "KGAT"), ("MultiKG4Rec", kgat),
                                         ("MultiKG4Rec", "MKGAT"), ("MultiKG4Rec", mkgat),
                                         ("MKGAT", "KGAT"), (mkgat, kgat)], "ndcg@20")
    wider = [(row, lo, hi) for row, (lo, hi) in suite.L2_WIDER.items() if final.get(hi)]
    if wider:
        L += ["", "The grid one step further (seed 2020, each model's 1e-3 epoch budget): L2 1e-2 "
              "beside 1e-3. A model whose validation prefers 1e-2 would need its seeds again at "
              "1e-2.", "",
              "| model | valid ndcg@20, L2 1e-3 | valid ndcg@20, L2 1e-2 | test ndcg@20, L2 1e-3 | "
              "test ndcg@20, L2 1e-2 | best epoch, L2 1e-2 |", "|---|---|---|---|---|---|"]
        for row, lo, hi in wider:
            a = next((r for r in final.get(lo, []) if r["seed"] == 2020), None)
            b = next(r for r in final[hi] if r["seed"] == 2020)
            L.append(f"| {row} | {fmt(a['valid']['ndcg@20']) if a else '-'} | "
                     f"{b['valid']['ndcg@20']:.4f} | {fmt(a['test']['ndcg@20']) if a else '-'} | "
                     f"{b['test']['ndcg@20']:.4f} | {b['best_epoch']} |")
    return L


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
        L.append(f"| {row} | {len(rs)} | " + " | ".join(_cells(rs, KG_KEYS)) + " | "
                 + ", ".join(str(r["best_epoch"]) for r in rs)
                 + f" | {f'{t:.2f}' if t else 'not run'} |")
    L += ["", "Paired t-tests on test NDCG@20:", ""]
    L += _significance_rows(final, [p for exact, approx in pairs
                                    for p in [(approx, exact), *((approx, b) for b in
                                              suite.LONG_L2.values() if final.get(b))]], "ndcg@20")
    return L


def case_study_lines() -> list[str]:
    runs = load("case_study")
    if not runs:
        return ["", "### Case study (the paper's Fig. 4)", "", "Not run (`python benchmarks/case_study.py` "
                "needs the kept seed-2020 Multi-KG4Rec run)."]
    r = runs[0]
    mods = r["modalities"]
    L = ["", "### Case study (the paper's Fig. 4)", "",
         f"From `{r['run']}`: for the first two test users with at least 10 training items, 10 of "
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
    return L


def ctr_section() -> list[str]:
    suite, runs = suite_runs("ctr")
    if not runs:
        return []
    by_row = defaultdict(list)
    for r in runs:
        by_row[r["row"]].append(r)
    keys = ["auc", "f1", "accuracy"]
    L = ["## Last.FM under KGCN's click-through protocol", "",
         "KGCN's labelled pairs (positives and as many sampled unseen items per user), split 6:2:2 at "
         "random; log loss on the labelled training pairs; early stopping on validation AUC; "
         "probabilities = sigmoid(score), F1 of the positive class at 0.5. KGCN with the paper's "
         "music settings (`configs/variant/KGCN-lastfm-ctr.yaml`), KGAT with its Last-FM "
         "architecture (`KGAT-lastfm-ctr.yaml`). Last.FM has no text or images: Multi-KG4Rec runs "
         "as an ID-only graph (one seed). Target: KGCN within 0.01 AUC of the published 0.796.", "",
         "| model | seeds | test AUC | test F1 | test accuracy | published AUC / F1 | AUC gap |",
         "|---|---|---|---|---|---|---|"]
    for row in suite.ROWS:
        rs = by_row.get(row, [])
        if not rs:
            L.append(f"| {row} | 0 | not run | | | | |")
            continue
        cells = [fmt(*mean_std([r["test"][k] for r in rs])) for k in keys]
        pub = suite.PUBLISHED.get(row)
        gap = (f"{np.mean([r['test']['auc'] for r in rs]) - pub['auc']:+.4f}" if pub else "-")
        pub_s = f"{pub['auc']} / {pub['f1']}" if pub else "-"
        L.append(f"| {row} | {len(rs)} | " + " | ".join(cells) + f" | {pub_s} | {gap} |")
    L += ["", "Commands: `python benchmarks/ctr.py` (each JSON in `benchmarks/results/ctr/` holds its "
          "exact command)."]
    return L + [""]


def gpu_section() -> list[str]:
    suite, runs = suite_runs("gpu")
    kg, seq = suite.kg, suite.seq
    if not runs:
        return []
    side, speed, long = defaultdict(lambda: defaultdict(list)), {}, defaultdict(list)
    for r in runs:
        if r.get("speed"):
            speed[r["row"]] = r
        elif r.get("long"):
            long[r["row"]].append(r)
        else:
            side[(r["protocol"], r["row"])][r["library"]].append(r)
    v = runs[0]["versions"]
    L = ["## On a GPU: side by side with RecBole, and seconds per epoch", "",
         f"One NVIDIA H100 (80 GB), 16 CPU cores; torch {v.get('torch')}, both libraries on the "
         "GPU in the same run, torch's default CPU threads for both, features read from files "
         "exported from the CPU machine's store (`--features`). Each job copies its settings from "
         "the CPU suite (sequential: at most "
         f"{seq.EPOCHS} epochs, patience {seq.PATIENCE}, validation NDCG@10, learning rate "
         f"{seq.LR}; KG: at most {kg.EPOCHS} epochs, patience {kg.PATIENCE}, validation NDCG@20, "
         f"learning rate {kg.SIDE_LR}), so RecBole's SASRec runs its full epoch budget here (the "
         "CPU suite capped it). Both libraries of a seed train on the same files (`split` is the "
         "first 8 hex digits of their sha256; the sequential split is time-ordered, so every seed "
         "has the same one and seeds change the initialisation only). RecBole's sequential metrics "
         "are averaged per user first, as ours are. Target: ours >= RecBole's minus max(0.005, one "
         "std), and >= 3x faster per epoch.", "",
         "| protocol | model | library | seeds | metric | test | difference | allowed | met | "
         "s/epoch | speed-up | split |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (proto, m), libs in sorted(side.items()):
        key = "ndcg@10" if proto == "seq" else "ndcg@20"
        val = {lib: [user_means(r, [key])[key] if (lib == "recbole" and proto == "seq")
                     else r["test"][key] for r in rs] for lib, rs in libs.items()}
        secs = {lib: _epoch_times(rs)[0] for lib, rs in libs.items()}
        for lib in ("mmkgrec", "recbole"):
            rs = libs.get(lib, [])
            if not rs:
                L.append(f"| {proto} | {m} | {lib} | 0 | {key} | not run | | | | | | |")
                continue
            extra = " | | |"
            su = ""
            if lib == "mmkgrec" and val.get("recbole"):
                extra = target_cells(val["mmkgrec"], val["recbole"])
                su = f"{secs['recbole'] / secs['mmkgrec']:.1f}x"
            hashes = sorted({r["split_sha256"][:8] for r in rs})
            L.append(f"| {proto} | {m} | {'RecBole' if lib == 'recbole' else lib} | {len(rs)} | "
                     f"{key} | {fmt(*mean_std(val[lib]))} | {extra} {secs[lib]:.2f} | {su} | "
                     f"{', '.join(hashes)} |")
    L += ["", f"Seconds per epoch of our models on the GPU ({suite.SPEED_EPOCHS} epochs, median; KG "
          "rows on the KG protocol, sequential rows on the sequential one). Target (issue 4): one "
          "Multi-KG4Rec epoch at most 3x our KGAT's.", ""]
    L += speed_table(speed, suite.SPEED_KG + suite.SPEED_SEQ, suite.SPEED_KG)
    L += long_budget_lines(suite, long)
    L += ["", "Commands: `python benchmarks/gpu.py --features DIR` on the GPU machine (each JSON in "
          "`benchmarks/results/gpu/` holds its exact command); `tests/test_device.py` trains every "
          "registered model there and checks that the CPU scores the same weights alike."]
    return L + [""]


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


def long_budget_lines(suite, long: dict) -> list[str]:
    """The KG rows with the longer epoch budget and their paired tests."""
    if not long:
        return []
    L = ["", f"### KG models with a longer budget (at most {suite.LONG_EPOCHS} epochs, patience "
         f"{suite.LONG_PATIENCE})", "",
         "The CPU suite's 50-epoch cap stopped KGAT and MKGAT with validation still rising, and its "
         "patience of 10 stopped one KGAT seed on an early plateau (the KGAT row of the KG section). "
         "Here each row trains at the learning rate the CPU suite's tuning chose, 3 seeds, same "
         "splits and settings otherwise, several jobs at once on the GPU (s/epoch are not speed "
         "figures).", "",
         "| model | lr | seeds | " + " | ".join(KG_KEYS) + " | best epochs | epochs run |",
         "|" + "---|" * (len(KG_KEYS) + 5)]
    for row in suite.LONG_ROWS:
        rs = sorted(long.get(row, []), key=lambda r: r["seed"])
        if not rs:
            L.append(f"| {row} | - | 0 | " + " | ".join("not run" for _ in KG_KEYS) + " | | |")
            continue
        L.append(f"| {row} | {rs[0]['lr']} | {len(rs)} | " + " | ".join(_cells(rs, KG_KEYS))
                 + f" | {', '.join(str(r['best_epoch']) for r in rs)} | "
                 f"{', '.join(str(r['epochs_run']) for r in rs)} |")
    L += ["", "Paired t-tests on test NDCG@20:", ""]
    L += _significance_rows(long, [("KGAT", "BPR"), ("MKGAT", "KGAT"), ("MKGAT", "BPR"),
                                   ("MultiKG4Rec", "KGAT"), ("MultiKG4Rec", "MKGAT"),
                                   ("MultiKG4Rec", "BPR")], "ndcg@20")
    multi = long.get("MultiKG4Rec", [])
    if multi:
        curve = [h["valid"]["ndcg@20"] for h in sorted(multi, key=lambda r: r["seed"])[0]["history"]
                 if h.get("valid")]
        peak = int(np.argmax(curve))
        others = [r["best_epoch"] for row in ("KGAT", "MKGAT") for r in long.get(row, [])]
        L += ["", f"Multi-KG4Rec, validation NDCG@20 by epoch (seed {min(r['seed'] for r in multi)}): "
              f"peak {curve[peak]:.4f} at epoch {peak}, then {curve[-1]:.4f} at epoch "
              f"{len(curve) - 1}: it fits the training pairs early and then overfits"
              + (f", where KGAT's and MKGAT's best epochs are {min(others)}-{max(others)}."
                 if others else ".")]
    L += ["", "Command: `python benchmarks/gpu.py --only long- --workers 9 --features DIR`."]
    return L


def main():
    L = ["# Benchmarks", "",
         "Generated by `python benchmarks/report.py` from the JSON files in `benchmarks/results/`; "
         "do not edit by hand. Machine: 2 CPU cores, 24 GiB, no GPU, except the last section's "
         "(a GPU machine, named there). Each JSON holds the config, "
         "metrics, per-user metrics, versions, git SHA and command of one run.", ""]
    L += core_section()
    L += features_section()
    L += multimodal_section()
    L += popularity_section("multimodal")
    L += kg_section()
    L += ctr_section()
    L += sequential_section()
    L += popularity_section("sequential")
    L += gpu_section()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(L) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
