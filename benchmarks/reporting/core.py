"""The core suite: mmkgrec's BPR and LightGCN beside RecBole 1.2.1 on identical splits (accuracy),
and their speed and memory on ML-100K and Amazon-Book (``benchmarks/core.py``)."""

from __future__ import annotations

from collections import defaultdict

from . import figures
from .stats import TESTS, adjust, claim, compare, test_cells
from .tables import ACC_KEYS, command, fmt, header, load, mean_std, seed_cells


def section() -> list[str]:
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
    L += header(head)
    for (model, lib), rs in sorted(acc.items()):
        cells, se = seed_cells(rs)
        be = mean_std([r["best_epoch"] for r in rs])[0]
        L.append(f"| {model} | {lib} | {len(rs)} | " + " | ".join(cells) + f" | {be:.0f} | {se:.3f} |")
    L += ["", "Accuracy target: mmkgrec's test NDCG@10 and Recall@10 at least RecBole's minus "
          f"max(0.005, one standard deviation over seeds). Beside it, paired t-tests {TESTS}.", ""]
    L += ["| model | metric | mmkgrec | RecBole | difference | allowed | met | p over users (Holm) | "
          "p over seeds (Holm) |", "|---|---|---|---|---|---|---|---|---|"]
    rows = [(model, key) for model in sorted({m for m, _ in acc})
            if acc.get((model, "mmkgrec")) and acc.get((model, "recbole")) for key in ("ndcg@10", "recall@10")]
    tests = adjust([compare(acc[(model, "mmkgrec")], acc[(model, "recbole")], key) for model, key in rows])
    for (model, key), c in zip(rows, tests):
        ours, ref = acc[(model, "mmkgrec")], acc[(model, "recbole")]
        mo, so = mean_std([r["test"][key] for r in ours])
        mr, sr = mean_std([r["test"][key] for r in ref])
        allowed = max(0.005, sr)
        L.append(f"| {model} | {key} | {mo:.4f} | {mr:.4f} | {mo - mr:+.4f} | -{allowed:.4f} | "
                 f"{'yes' if mo >= mr - allowed else 'NO'} | {test_cells(c)} |")
    libs = [lib for lib in ("mmkgrec", "recbole") if acc.get(("LightGCN", lib)) and acc.get(("BPR", lib))]
    tests = adjust([compare(acc[("LightGCN", lib)], acc[("BPR", lib)], "ndcg@10") for lib in libs])
    for lib, c in zip(libs, tests):
        L += ["", claim(f"LightGCN ({lib})", f"BPR ({lib})", c, "ndcg@10",
                        f"the {len(libs)} libraries' comparisons") + "."]
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
        L += figures.embed("core-speed", lambda: figures.speed_plan(
            [(f"{model}, {ds}", [r], [speed[(ds, model, "recbole")]])
             for (ds, model, lib), r in sorted(speed.items())
             if lib == "mmkgrec" and (ds, model, "recbole") in speed], "BPR and LightGCN beside RecBole"))
        if bound:
            L += ["", f"Bare matmul + top-20 over 70,679 x 24,915 (64-d, chunks of 4,096 users, same run): "
                  f"{b_s:.2f} s (median of {len(bound['config']['all_s'])})."]
        L.append("")
    L += ["### Commands", "", "Run from the repository root; paths are relative to it, and `python` stands for an "
          "interpreter outside it (another machine's environment).", ""]
    for r in runs:
        L.append(f"- `{r['job']}`: `{command(r)}` (git {r.get('git_sha', '?')[:12]}, {r.get('finished_at', '')})")
    L.append("")
    return L
