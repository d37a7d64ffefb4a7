"""KGBM4Rec on ML-100K (``benchmarks/kgbm4rec.py``): classification, rating, top-N, ablations and
epoch time, each beside its baselines."""

from __future__ import annotations

import statistics
from collections import defaultdict

from .stats import TESTS, adjust, compare, p_cells, P_HEAD
from .tables import command, fmt, header, load, load_cell, mean_std

CLS_KEYS = ["accuracy", "f1_micro", "f1_macro"]
ACCURACY_KINDS = ("cls", "ablation", "rating", "topn")  # the rows the model selection is for
RATING_KEYS = ["mse", "rmse", "mae"]
RATING_ROWS = ["BiasOnly", "BiasedMF", "SVD", "SVDpp"]
TOPN_KEYS = {"full": ["ndcg@10", "recall@10", "hit@10", "ndcg@20"],
             "sampled": ["hit@1", "hit@5", "hit@10", "ndcg@5", "ndcg@10"]}
# published figures of the paper (its own data: Taobao live-stream, Products-10K), as context only
PAPER = ("The paper's own figures (Taobao / Products-10K, not ML-100K; its baselines GPT4Rec, "
         "InstructRec and KAR need large language models that cannot run here, so they have no "
         "row): accuracy 0.8347 / 0.8379, F1 0.9447 / 0.9379, MSE 1.3003 / 1.3012, HR@10 0.9033 / "
         "0.9142, NDCG@10 0.9233 / 0.9413. Its Table 4 cannot be matched in scale: it states no "
         "candidate count, and its NDCG@10 exceeds its HR@10, which is impossible with one "
         "positive per list (NDCG@k <= HR@k).")


def _by_items(rs: list[dict]) -> list[dict]:
    """Classification results with their per-item values under the key the paired tests read
    (the unit of this task is the item)."""
    out = []
    for r in rs:
        r = dict(r)
        pu = dict(r.get("per_user", {}))
        if "item_ids" in pu:
            pu["user_ids"] = pu["item_ids"]
        r["per_user"] = pu
        out.append(r)
    return out


def _cells(r: dict | None, keys) -> str:
    if r is None:
        return " | ".join("not run" for _ in keys)
    return " | ".join(f"{r['test'][k]:.4f}" if k in r["test"] else "-" for k in keys)


def _epoch_s(r: dict) -> float:
    xs = [h["train_s"] for h in r.get("history", []) if h.get("train_s") is not None]
    return statistics.median(xs) if xs else float("nan")


def _comparisons(rows: dict, pairs, key: str, unit: str = "users",
                 reps: str = "seeds") -> list[str]:
    """A table of paired comparisons on test ``key``; ``unit``: what the first test pairs over
    (users, or items for classification); ``reps``: the replicates of the second (seeds,
    folds)."""
    cs = adjust([compare(rows.get(a, []), rows.get(b, []), key) for a, b in pairs])
    head = P_HEAD.replace("users", unit).replace("seeds", reps)
    L = header(f"| comparison | mean difference ({key}) | {head} |")
    for (a, b), c in zip(pairs, cs):
        L.append(f"| {a} vs {b} | {p_cells(c)} |")
    return L


def _classification(suite, runs) -> list[str]:
    L = []
    for mode in ("multi", "single"):
        rows = {r["row"]: r for r in runs if r.get("kind") == "cls" and r.get("mode") == mode}
        if not rows:
            continue
        what = ("multi-label: every labelled item, one sigmoid per genre; accuracy is the subset "
                "accuracy" if mode == "multi" else
                "single-label (the paper's softmax): the single-genre items of the genres with at "
                "least 10 of them")
        L += [f"### Item category classification, {mode}-label", "", f"ML-100K genres, {what}; "
              "items split 8:1:1 (seed 2020). Macro-F1 averages the per-genre F1 (the paper's F1 "
              "exceeds its accuracy, which only a macro or per-class average allows).", ""]
        L += header("| row | " + " | ".join(CLS_KEYS) + " | epochs run |")
        for row in suite.CLS_ROWS:
            r = rows.get(row)
            L.append(f"| {row} | {_cells(r, CLS_KEYS)} | "
                     f"{r['epochs_run'] if r else '-'} |")
        key = "hamming_loss" if mode == "multi" else "accuracy"
        items = {k: _by_items([v]) for k, v in rows.items()}
        pairs = [("KGBM4Rec", b) for b in suite.CLS_ROWS if b != "KGBM4Rec"]
        better = "lower" if mode == "multi" else "higher"
        L += ["", f"Paired over test items, per-item {key.replace('_', ' ')} ({better} is "
              "better; macro-F1 has no per-item value, so its differences above carry no p "
              "value); one seed, so no test over seeds; Holm over the table.", ""]
        L += _comparisons(items, pairs, key, "items") + [""]
    return L


def _ablations(suite, runs) -> list[str]:
    rows = {r["row"]: r for r in runs if r.get("kind") == "ablation"}
    if not rows:
        return []
    full = [r for r in runs if r.get("kind") == "cls" and r.get("mode") == "multi"
            and r["row"] == "KGBM4Rec"]
    rows = {"full": full[0], **rows} if full else rows
    L = ["### Ablations (multi-label classification)", "",
         "Laid out like the paper's: both fusions and the cross-modal attention (full), early "
         "fusion only, late fusion only, no cross-modal attention, each modality removed, the "
         "graph removed. Same budget as above; the full row is the multi-label table's "
         "KGBM4Rec run.", ""]
    L += header("| row | " + " | ".join(CLS_KEYS) + " | epochs run |")
    for row in ("full", *suite.ABLATIONS):
        r = rows.get(row)
        L.append(f"| {row} | {_cells(r, CLS_KEYS)} | {r['epochs_run'] if r else '-'} |")
    items = {k: _by_items([v]) for k, v in rows.items()}
    pairs = [("full", b) for b in suite.ABLATIONS]
    L += ["", "Paired over test items, per-item hamming loss (lower is better).", ""]
    return L + _comparisons(items, pairs, "hamming_loss", "items") + [""]


def _rating(suite, runs) -> list[str]:
    ours = [r for r in runs if r.get("kind") == "rating"]
    if not ours:
        return []
    folds = {r["fold"] for r in ours}
    stored = defaultdict(list)
    for r in load("rating"):
        if r.get("fold") in folds and r.get("row") in RATING_ROWS:
            stored[r["row"]].append(r)
    rows = {"KGBM4Rec": ours, **stored}
    L = ["### Rating prediction", "",
         f"Fold(s) {sorted(folds)} of the rating suite's 5 folds (kfold per user, seed 2020); "
         "BiasOnly, BiasedMF, SVD and SVD++ are that suite's stored rows of the same fold(s) "
         "(tuned on their grid; Surprise 1.1.5). MSE is eq. 3's objective. Published ML-100K RMSE: "
         "SVD 0.934, SVD++ 0.920.", ""]
    L += header("| row | folds | " + " | ".join(RATING_KEYS) + " |")
    for row, rs in rows.items():
        L.append(f"| {row} | {len(rs)} | "
                 + " | ".join(fmt(*mean_std([r["test"][k] for r in rs])) for k in RATING_KEYS)
                 + " |")
    pairs = [("KGBM4Rec", b) for b in RATING_ROWS]
    L += ["", "Paired over test users (each user's MSE averaged over the folds) and over the "
          "folds' MSE, Holm over the table.", ""]
    return L + _comparisons(rows, pairs, "mse", reps="folds") + [""]


def _topn(suite, runs) -> list[str]:
    L = []
    for proto, keys in TOPN_KEYS.items():
        rows = defaultdict(list)
        for r in runs:
            if r.get("kind") == "topn" and r.get("protocol") == proto:
                rows[r["row"]].append(r)
        if not rows:
            continue
        seeds = sorted({r["seed"] for rs in rows.values() for r in rs})
        what = ("full ranking (every item not in the user's training or validation items)"
                if proto == "full" else "sampled: each test item among 99 sampled negatives")
        L += [f"### Top-N, {what}", "", f"Random 8:1:1 per user, seed(s) {seeds} (each seed its "
              f"own split), the same epoch cap ({suite.TOPN_EPOCHS}) and patience "
              f"({suite.PATIENCE}) for every row; mean ± standard deviation over the seeds a row "
              "has run.", ""]
        L += header("| row | seeds | " + " | ".join(keys) + " | epochs run |")
        for row in suite.TOPN_ROWS:
            rs = sorted(rows.get(row, []), key=lambda r: r["seed"])
            cells = (" | ".join(fmt(*mean_std([r["test"].get(k) for r in rs])) for k in keys)
                     if rs else _cells(None, keys))
            epochs = ", ".join(str(r["epochs_run"]) for r in rs) or "-"
            L.append(f"| {row} | {len(rs)} | {cells} | {epochs} |")
        if proto == "full":
            L += ["", _converged_context()]
        pairs = [("KGBM4Rec", b) for b in suite.TOPN_ROWS if b != "KGBM4Rec"]
        one = " (one seed: over users only)" if len(seeds) < 2 else ""
        L += ["", f"Paired over test users on NDCG@10, {TESTS}{one}.", ""]
        L += _comparisons(rows, pairs, "ndcg@10") + [""]
    return L


def _converged_context() -> str:
    """The core suite's fully trained BPR and LightGCN on the same split (seed 2020), beside the
    capped rows: the cap favours whatever learns fastest."""
    core = {r["model"]: r for r in load("core")
            if r.get("job") in ("ml-100k-BPR-mmkgrec-s2020", "ml-100k-LightGCN-mmkgrec-s2020")}
    have = [f"{m} {core[m]['test']['ndcg@10']:.4f} ({core[m]['epochs_run']} epochs)"
            for m in ("BPR", "LightGCN") if m in core]
    if not have:
        return "The cap leaves the baselines short of convergence."
    return ("The cap leaves the baselines short of convergence: with the core suite's budget (300 "
            "epochs, patience 30, validation MRR@10) seed 2020's split gives test NDCG@10 "
            + ", ".join(have) + ". The capped comparison says which model learns more in 8 "
            "epochs, not which is better trained.")


def _rerank(suite, runs) -> list[str]:
    r = next((r for r in runs if r.get("kind") == "rerank"), None)
    if r is None:
        return []
    c, k = r["config"]["c"], r["config"]["k"]
    keys = [f"ndcg@{k}", f"recall@{k}"]
    within = {"seed": r["seed"], "per_user": r["per_user"], "test": r["test"]}
    plain = {"seed": r["seed"], "per_user": r["per_user_plain"], "test": r["plain"]}
    L = ["### Recommendation of items of the user's categories", "",
         f"The full-ranking KGBM4Rec run's scores; each user's top-{k} restricted to the items of "
         f"the user's {c} most frequent genres among their training items, against the plain "
         f"top-{k} of the same scores (training and validation items excluded in both).", ""]
    L += header("| ranking | " + " | ".join(keys) + " |")
    L.append(f"| plain top-{k} | " + " | ".join(f"{r['plain'][x]:.4f}" for x in keys) + " |")
    L.append(f"| within the top-{c} genres | " + " | ".join(f"{r['test'][x]:.4f}" for x in keys)
             + " |")
    L += ["", "Paired over test users.", ""]
    rows = {"within genres": [within], "plain": [plain]}
    return L + _comparisons(rows, [("within genres", "plain")], keys[0]) + [""]


def _speed(suite, runs) -> list[str]:
    rows = {r["row"]: r for r in runs if r.get("kind") == "speed"}
    if not rows:
        return []
    base = rows.get("LightGCN")
    L = ["### Epoch time", "", "Top-N training on ML-100K, one epoch each, one torch thread, "
         "one after the other on a shared 2-core machine: only the ratios mean anything. The text "
         "encoder never runs in training (token states from the store).", ""]
    L += header("| row | median train s / epoch | x LightGCN |")
    for row in suite.SPEED:
        r = rows.get(row)
        if r is None:
            L.append(f"| {row} | not run | - |")
            continue
        s = _epoch_s(r)
        ratio = f"{s / _epoch_s(base):.1f}" if base else "-"
        L.append(f"| {row} | {s:.2f} | {ratio} |")
    exact = rows.get("KGBM4Rec exact")
    if exact and base:
        x = _epoch_s(exact) / _epoch_s(base)
        L += ["", f"Target (an epoch with cached token states at most 3x LightGCN's): "
              f"{x:.1f}x, {'met' if x <= 3 else 'not met'}."]
    floor = next((r for r in runs if r.get("kind") == "floor"), None)
    if floor:
        L += ["", *_floor_lines(floor)]
    return L + [""]


def _floor_lines(f: dict) -> list[str]:
    """How far below the exact text branch's own cost the target lies (``speed-floor``)."""
    steps, text_s, lgcn_s = f["steps_per_epoch"], f["text_branch_cpu_s"], f["lightgcn_epoch_cpu_s"]
    gflop, rate = f["text_branch_gflop"], f["matmul_gflops"]
    need = gflop * steps / (3 * lgcn_s)  # GFLOP/s the branch alone would need to fit in 3x
    return [f"**The least an exact epoch costs here** (`{f['command']}`, one thread, CPU "
            f"seconds, load before / after {load_cell(f)}): the exact "
            f"model runs its text branch, the BiLSTM's forward and backward pass over the "
            f"{f['tokens']} cached token states of {f['text_items']} items "
            f"({f['lstm_input']} inputs, {f['lstm_hidden']} hidden units per direction: "
            f"{gflop:.1f} GFLOP), in each of an epoch's {steps} steps. That pass alone takes "
            f"{text_s:.2f} s, so {text_s * steps:.1f} s an epoch, {f['floor_ratio']:.1f}x "
            f"LightGCN's epoch of {lgcn_s:.2f} s in the same process, before the graph, the "
            f"image branch and the optimiser. To fit in 3x LightGCN's epoch the branch alone "
            f"would have to run at {need:.0f} GFLOP/s; a 1024 x 1024 matrix product, the "
            f"densest work there is, runs at {rate:.0f} GFLOP/s on this core "
            f"({need / rate:.1f}x short). No exact implementation reaches the target on this "
            f"CPU" + ("." if need > rate else "; a faster LSTM kernel could.")]


def _selection(suite, runs) -> tuple[str, list[str]]:
    """The intro's words on model selection and the section on the nested grid (when it ran)."""
    r = next((r for r in runs if r.get("kind") == "select"), None)
    grid = ", ".join(f"{k} {{{', '.join(str(v) for v in vs)}}}"
                     for k, vs in suite.SELECT_GRID.items())
    if r is None:
        return (f"(no grid: the issue's model selection, {grid} on {suite.SELECT_FOLDS} inner "
                "folds of the first outer fold, has not run: `python benchmarks/kgbm4rec.py "
                "--only =select-lr`)", [])
    best = ", ".join(f"{k} {v}" for k, v in r["best"].items())
    rows = [x for x in runs if x.get("model") == "KGBM4Rec" and x.get("kind") in ACCURACY_KINDS]
    off = [x for x in rows if any(x["config"].get(k) != v for k, v in r["best"].items())]
    same = bool(rows) and not off
    words = (f"(chosen by the grid below: {best})" if same else
             f"(the grid below chose {best}; {len(off)} of the {len(rows)} KGBM4Rec rows ran "
             "with another value, before it ran, and have not run again)")
    L = ["### Model selection (nested: inner folds of the first outer fold)", "",
         f"`mmkgrec tune --folds {r['folds']}` nested in outer rating fold 0 (`split: kfold`, "
         f"5 folds per user): each point of the grid trains on {r['folds']} inner folds of that "
         "fold's training part and is scored by its mean validation "
         f"{r['metric'].upper()}; the outer test fold enters no trial. Budget: "
         f"{r['budget']['name']}. One grid for every fold, ablation and task (nested "
         "cross-validation of every ablation would take days on this machine).", ""]
    L += header("| " + " | ".join(r["grid"]) + f" | mean valid {r['metric']} | per inner fold "
                "| epochs run | seconds |")
    for t in sorted(r["trials"], key=lambda t: [t["params"][k] for k in r["grid"]]):
        mark = " **chosen**" if t["params"] == r["best"] else ""
        L.append("| " + " | ".join(str(t["params"][k]) for k in r["grid"])
                 + f" | {t['value']:.4f}{mark} | "
                 + ", ".join(f"{v:.4f}" for v in t["per_fold"])
                 + f" | {', '.join(str(e) for e in t['epochs_run'])} | {t['seconds']:.0f} |")
    L += ["", f"The KGBM4Rec rows below {'use' if same else 'should use'} {best} "
          + ("(every one of them)." if same else
             f"({len(off)} of {len(rows)} do not: "
             + ", ".join(sorted(x["job"] for x in off)[:6])
             + (", ..." if len(off) > 6 else "") + ").") + f" `{command(r)}`", ""]
    return words, L


def section() -> list[str]:
    import kgbm4rec as suite

    runs = load("kgbm4rec")
    if not runs:
        return []
    chosen, selection = _selection(suite, runs)
    L = ["## KGBM4Rec on ML-100K", "",
         f"`python benchmarks/kgbm4rec.py`: one seed ({suite.SEED}; top-N: up to "
         f"{len(suite.TOPN_SEEDS)}), at most {suite.EPOCHS} "
         f"epochs with patience {suite.PATIENCE}, one learning rate for every KGBM4Rec row "
         f"{chosen}, and the speed approximation `text_items_per_batch: "
         f"{suite.TEXT_CAP}` in every accuracy row. Image features: EfficientNet-Lite1 (the "
         "paper's ViT-L/16 weights are not at hand); text: the shipped MiniLM BERT's token states, "
         "stop words and special characters removed, through a trained BiLSTM with attention "
         "pooling. A capped run: the figures are what this budget gives, not tuned results.", "",
         PAPER, ""]
    L += selection
    L += _classification(suite, runs)
    L += _ablations(suite, runs)
    L += _rating(suite, runs)
    L += _topn(suite, runs)
    L += _rerank(suite, runs)
    L += _speed(suite, runs)
    example = next((r for r in runs if r.get("model") == "KGBM4Rec" and "command" in r), runs[0])
    L += [f"Each JSON in `benchmarks/results/kgbm4rec/` holds its exact command, e.g. "
          f"`{command(example)}`.", ""]
    return L
