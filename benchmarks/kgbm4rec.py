"""KGBM4Rec on ML-100K: item category classification, rating prediction, top-N and the paper's
ablations, each beside its trivial baseline and the project's other models (issue: KGBM4Rec).

Capped run (this 2-core machine, shared): one seed (2020; top-N: TOPN_SEEDS), EPOCHS epochs at
most with patience PATIENCE, the learning rate the nested model selection (``select-lr``, first
in the queue) chose for every KGBM4Rec row, and the named speed approximation
``text_items_per_batch: TEXT_CAP`` in every accuracy row (the exact text branch runs in the
``speed-*`` rows only). Image features: EfficientNet-Lite1 (named in every job; the paper's
ViT-L/16 weights are not at hand). Text: the MiniLM BERT's token states, cached once.

* ``cls-{multi,single}-ROW``: genres of ML-100K (``target_column: class``), items split 8:1:1
  (seed 2020). multi: every labelled item, one sigmoid per genre; single: the paper's softmax on
  the single-genre items of the genres with at least 10 of them. Rows: KGBM4Rec, its graph-only,
  text-only and image-only variants, ContentLR (logistic regression) on the same frozen inputs
  concatenated (the pooled MiniLM text vectors, the image features and LightGCN item embeddings
  from ``lightgcn-items``), Majority.
* ``abl-ROW``: the ablations (multi-label classification): early fusion only, late fusion only,
  no cross-modal attention, each modality removed, no graph.
* ``rating-fK``: the rating head on fold K of the rating suite's 5 folds (``benchmarks/rating.py``:
  kfold, seed 2020), compared with that suite's stored BiasOnly, BiasedMF, SVD and SVD++ rows of
  the same folds (fold 0 first; the others last in the queue).
* ``topn-{full,sampled}-ROW[-sSEED]``: the random 8:1:1 split, full ranking and the sampled
  protocol (99 negatives): KGBM4Rec, Pop, BPR, LightGCN, KGAT, under the same epoch cap, seeds
  TOPN_SEEDS (the seed is the split's and the model's; seed 2020's ids carry no suffix, as they
  were first written).
* ``rerank-cC``: recommendation of items of the user's categories (SPEC.md): the full-ranking
  KGBM4Rec run's scores, each user's candidates restricted to the items of the user's ``C`` most
  frequent genres among their training items, against the plain top-N of the same scores.
* ``select-lr``: the issue's model selection: ``mmkgrec tune`` over SELECT_GRID, each point
  scored by its mean validation RMSE on 3 inner folds of the first outer rating fold's training
  part (``--folds 3`` nested in ``split: kfold, fold: 0``: the outer test fold is never read),
  under the rating rows' budget; one grid, whose choice is meant for every fold, ablation and
  task (nested cross-validation of every ablation would take days here).
* ``speed-ROW``: one epoch, one evaluation at the end: KGBM4Rec exact, KGBM4Rec with the
  approximation, LightGCN (ratios within this run only; the machine is shared).
* ``speed-floor``: in one process, one thread: the exact text branch alone (the BiLSTM's forward
  and backward pass over every item's cached token states, which the exact model runs in every
  training step) against LightGCN's epoch; its multiply-adds counted, and the rate of a large
  matrix product measured beside it: the least an exact epoch can cost here.

    python benchmarks/kgbm4rec.py [--only SUBSTRING]
Resumable: a job whose JSON exists in benchmarks/results/kgbm4rec/ is skipped.
"""

from __future__ import annotations

import json

import numpy as np

from common import RESULTS, WORK, NotReady, mmkgrec_run, queue_main, run_cmd, tune_cmd, variant_file
from pins import link_pinned

SUITE = "kgbm4rec"
DATASET = "ml-100k"
SEED = 2020
TOPN_SEEDS = [2020, 2021, 2022]  # the 3 seeds for top-N
EPOCHS = 15
TOPN_EPOCHS = 8  # top-N trains on 10x the batches of classification: a lower cap for every row
PATIENCE = 4
SPEED_LR = 0.003  # the speed rows' rate, as they were run (a rate does not change an epoch's work)
TEXT_CAP = 256
IMAGE = {"image_encoder": "efficientnet-lite1"}
BASE = {"seed": SEED, "threads": 1, "show_progress": False, "epochs": EPOCHS,
        "stopping_step": PATIENCE}
KGBM = {"text_items_per_batch": TEXT_CAP, **IMAGE}  # + the rate select-lr chose (_train)
CLS = {"multi": {"task": "classification", "target_column": "class", "valid_metric": "f1_macro",
                 "classification_mode": "multi", "train_batch_size": 64},
       "single": {"task": "classification", "target_column": "class", "valid_metric": "accuracy",
                  "classification_mode": "single", "min_class_items": 10,
                  "train_batch_size": 32}}  # about 20 steps an epoch in either mode
CLS_ROWS = {  # row -> (model, overrides)
    "KGBM4Rec": ("KGBM4Rec", KGBM),
    "graph only": ("KGBM4Rec", {**KGBM, "config_file": variant_file("KGBM4Rec-graph-only")}),
    "text only": ("KGBM4Rec", {**KGBM, "config_file": variant_file("KGBM4Rec-text-only")}),
    "image only": ("KGBM4Rec", {**KGBM, "config_file": variant_file("KGBM4Rec-image-only")}),
    "LR on frozen inputs": ("ContentLR", {"modalities": ["text", "image"], **IMAGE,
                                          "epochs": 200, "stopping_step": 20,
                                          "learning_rate": 0.01}),
    "Majority": ("Majority", {}),
}
ABLATIONS = {  # the full model's row is cls-multi-kgbm4rec (the same configuration)
    "early only": "KGBM4Rec-early-only",
    "late only": "KGBM4Rec-late-only",
    "no cross-modal attention": "KGBM4Rec-no-cross",
    "w/o text": "KGBM4Rec-wo-text",
    "w/o image": "KGBM4Rec-wo-image",
    "w/o graph": "KGBM4Rec-wo-graph",
}
RATING = {"task": "rating", "valid_metric": "rmse", "split": "kfold", "n_folds": 5, "fold": 0,
          "train_batch_size": 4096}
TOPN = {"full": {"valid_metric": "ndcg@10", "metrics": ["recall", "ndcg", "hit"],
                 "topk": [10, 20]},
        "sampled": {"eval_protocol": "sampled", "sampled_negatives": 99,
                    "valid_metric": "ndcg@10", "metrics": ["hit", "ndcg"], "topk": [1, 5, 10]}}
TOPN_ROWS = {"KGBM4Rec": ("KGBM4Rec", KGBM), "Pop": ("Pop", {}),
             "BPR": ("BPR", {"learning_rate": 0.001}),
             "LightGCN": ("LightGCN", {"learning_rate": 0.005}),
             "KGAT": ("KGAT", {"learning_rate": 0.001})}
SPEED = {"KGBM4Rec exact": ("KGBM4Rec", {"learning_rate": SPEED_LR, **IMAGE}),
         f"KGBM4Rec text_items_per_batch {TEXT_CAP}": ("KGBM4Rec",
                                                      {"learning_rate": SPEED_LR, **KGBM}),
         "LightGCN": ("LightGCN", {"learning_rate": 0.005})}
SELECT_GRID = {"learning_rate": [0.001, 0.003, 0.01]}
SELECT_FOLDS = 3
RERANK_C = 3
RERANK_K = 10
SPEED_RUN = {"epochs": 1, "eval_step": 1, "stopping_step": 0, "valid_metric": "ndcg@10",
             "metrics": ["ndcg"], "topk": [10]}


def _slug(text: str) -> str:
    return text.lower().replace(" ", "-").replace("/", "")


def jobs() -> list[dict]:
    """Every job, the ones the comparisons need most first (a capped run stops somewhere)."""
    cls = {mode: [{"id": f"cls-{mode}-{_slug(r)}", "kind": "cls", "mode": mode, "row": r}
                  for r in CLS_ROWS] for mode in CLS}
    topn = {(p, r): {"id": f"topn-{p}-{_slug(r)}", "kind": "topn", "protocol": p, "row": r,
                     "seed": SEED}
            for p in TOPN for r in TOPN_ROWS}
    later = [{"id": f"topn-{p}-{_slug(r)}-s{s}", "kind": "topn", "protocol": p, "row": r,
              "seed": s} for s in TOPN_SEEDS if s != SEED for r in TOPN_ROWS for p in TOPN]
    first = [(p, r) for r in ("KGBM4Rec", "Pop") for p in TOPN]
    return [{"id": "select-lr", "kind": "select", "row": "model selection"},
            {"id": "lightgcn-items", "kind": "embeddings"}, *cls["multi"],
            {"id": "rating-f0", "kind": "rating", "row": "KGBM4Rec", "fold": 0},
            *({"id": f"speed-{_slug(r)}", "kind": "speed", "row": r} for r in SPEED),
            {"id": "speed-floor", "kind": "floor", "row": "exact text branch alone"},
            *(topn[k] for k in first),
            {"id": f"rerank-c{RERANK_C}", "kind": "rerank", "row": f"top-{RERANK_C} genres"},
            *({"id": f"abl-{_slug(r)}", "kind": "ablation", "row": r} for r in ABLATIONS),
            *cls["single"], *(v for k, v in topn.items() if k not in first),
            *({"id": f"rating-f{k}", "kind": "rating", "row": "KGBM4Rec", "fold": k}
              for k in range(1, RATING["n_folds"])), *later]


def chosen() -> dict:
    """The values ``select-lr`` chose (its stored result), which every KGBM4Rec accuracy row
    trains with."""
    p = RESULTS / SUITE / "select-lr.json"
    if not p.is_file():
        raise NotReady("select-lr (the model selection) has not run")
    return json.loads(p.read_text())["best"]


def _train(job: dict, model: str, overrides: dict) -> dict:
    if model == "KGBM4Rec" and "learning_rate" not in overrides:
        overrides = {**overrides, **chosen()}
    run = WORK / "runs" / SUITE / job["id"]
    overrides = link_pinned(model, overrides, DATASET)  # stored KGAT rows: the link as given
    r = mmkgrec_run(model, DATASET, overrides, run, WORK / "logs" / SUITE / f"{job['id']}.log")
    return r


def embeddings_file() -> str:
    """The LightGCN item embeddings of ``lightgcn-items`` as an ``item_embeddings`` file."""
    path = WORK / SUITE / "lightgcn-items.npz"
    if not path.exists():
        src = RESULTS / SUITE / "lightgcn-items.json"
        if not src.exists():
            raise NotReady("needs lightgcn-items first")
        from mmkgrec.runs import RunData

        data = RunData(WORK / "runs" / SUITE / "lightgcn-items")
        vec, (_, items) = data.item_vectors(), data.ids()
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, item_ids=np.asarray(items, dtype=str), features=vec.astype(np.float32))
    return str(path)


def _ranking_metrics(top: np.ndarray, relevant: list[set], k: int) -> dict:
    """Per user: ``ndcg@k`` (ideal DCG from all of the user's relevant items, capped at k) and
    ``recall@k`` of ranked lists ``top [n, k]`` (-1 = no item) against ``relevant``."""
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    ndcg, recall = [], []
    for row, rel in zip(top, relevant):
        hits = np.asarray([i in rel for i in row[:k]], dtype=float)
        ideal = disc[:min(len(rel), k)].sum()
        ndcg.append(float((hits * disc).sum() / ideal))
        recall.append(float(hits.sum() / len(rel)))
    return {f"ndcg@{k}": ndcg, f"recall@{k}": recall}


def _rerank(job: dict) -> dict:
    """Plain top-N vs the top-N within the user's ``RERANK_C`` favourite genres, from the
    ``topn-full-kgbm4rec`` run's scores (training and validation items excluded)."""
    import torch

    import mmkgrec

    src = WORK / "runs" / SUITE / "topn-full-kgbm4rec"
    if not (RESULTS / SUITE / "topn-full-kgbm4rec.json").exists():
        raise NotReady("needs topn-full-kgbm4rec first")
    run = mmkgrec.load(src)
    split, ds = run.split, run.dataset
    genres = [set(g) if g is not None else set() for g in ds.item_features["class"]]
    users = np.unique(split.test.user)
    train_items = [[] for _ in range(split.n_users)]
    for u, i in zip(split.train.user, split.train.item):
        train_items[u].append(i)
    seen = [set(t) for t in train_items]
    for u, i in zip(split.valid.user, split.valid.item):
        seen[u].add(i)
    relevant = [set() for _ in range(split.n_users)]
    for u, i in zip(split.test.user, split.test.item):
        relevant[u].add(i)
    model = run.model
    model.eval()
    with torch.no_grad():
        model.prepare_eval()
        scores = model.score_all(torch.from_numpy(users)).numpy()
    plain, within = [], []
    for row, u in zip(scores, users):
        row = row.copy()
        row[list(seen[u])] = -np.inf
        counts: dict = {}
        for i in train_items[u]:
            for g in genres[i]:
                counts[g] = counts.get(g, 0) + 1
        top_g = {g for g, _ in sorted(counts.items(), key=lambda x: (-x[1], x[0]))[:RERANK_C]}
        order = np.argsort(-row, kind="stable")
        plain.append(order[:RERANK_K])
        keep = [i for i in order if genres[i] & top_g and np.isfinite(row[i])][:RERANK_K]
        within.append(np.asarray(keep + [-1] * (RERANK_K - len(keep))))
    rel = [relevant[u] for u in users]
    a = _ranking_metrics(np.stack(plain), rel, RERANK_K)
    b = _ranking_metrics(np.stack(within), rel, RERANK_K)
    ids = [str(ds.user_ids[u]) for u in users]
    mean = {k: float(np.mean(v)) for k, v in b.items()}
    return {"library": "mmkgrec", "model": "KGBM4Rec", "dataset": DATASET,
            "source_run": "topn-full-kgbm4rec",
            "config": {"c": RERANK_C, "k": RERANK_K}, "test": mean,
            "plain": {k: float(np.mean(v)) for k, v in a.items()},
            "per_user": {"user_ids": ids, **b},
            "per_user_plain": {"user_ids": ids, **a},
            "command": f"python benchmarks/kgbm4rec.py --only =rerank-c{RERANK_C}"}


FLOOR_REPEATS = 3


def _floor() -> dict:
    """The exact text branch's cost beside LightGCN's epoch, in this process (one thread; CPU
    seconds of the process, medians of FLOOR_REPEATS): see ``speed-floor`` above."""
    import os
    import statistics
    import time

    import multikg_speed as ms
    import torch

    def build(model: str, ov: dict):
        return ms.build(model, 1, link_pinned(model, {**BASE, **SPEED_RUN, **ov}, DATASET))

    def cpu(fn) -> float:
        t = time.process_time()
        fn()
        return time.process_time() - t

    torch.set_num_threads(1)
    load_before = list(os.getloadavg())
    net, _, _, batches, _ = build(*SPEED["KGBM4Rec exact"])
    net.train()
    steps = len(batches)
    branch = lambda: net.pooled_text().sum().backward()  # noqa: E731
    branch()  # warm-up
    text_s = statistics.median(cpu(branch) for _ in range(FLOOR_REPEATS))
    lstm = net.text_encoder.lstm
    tokens = int(net.text_lengths.sum())
    d_in, hid = lstm.input_size, lstm.hidden_size
    # per token and direction, four gates: the input products run forward and for their weights'
    # gradient (the cached token states need none), the recurrent ones forward, for their weights
    # and for the hidden state's gradient
    macs = tokens * 2 * 4 * hid * (2 * d_in + 3 * hid)
    lgcn, _, _, lgcn_batches, opt = build(*SPEED["LightGCN"])
    ms.trainer_epoch(lgcn, lgcn_batches, opt, 0)  # warm-up
    lgcn_s = statistics.median(ms.trainer_epoch(lgcn, lgcn_batches, opt, k)["cpu_epoch_s"]
                               for k in range(1, FLOOR_REPEATS + 1))
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    mm_s = statistics.median(cpu(lambda: a @ b) for _ in range(5))
    return {"steps_per_epoch": steps, "text_items": int(len(net.text_items)), "tokens": tokens,
            "lstm_input": d_in, "lstm_hidden": hid, "text_branch_cpu_s": text_s,
            "text_branch_gflop": 2 * macs / 1e9, "lightgcn_epoch_cpu_s": lgcn_s,
            "matmul_gflops": 2 * 1024 ** 3 / mm_s / 1e9,
            "floor_ratio": text_s * steps / lgcn_s, "threads": 1, "repeats": FLOOR_REPEATS,
            "load_before": load_before, "load_after": list(os.getloadavg()),
            "command": "python benchmarks/kgbm4rec.py --only =speed-floor"}


def _select(job: dict) -> dict:
    """The grid through ``mmkgrec tune --folds`` nested in outer rating fold 0."""
    out = WORK / "tune" / SUITE / job["id"]
    fixed = {k: v for k, v in {**BASE, **RATING, **KGBM}.items() if k not in SELECT_GRID}
    cmd = tune_cmd("KGBM4Rec", DATASET, out, SELECT_GRID, fixed, SELECT_FOLDS)
    run_cmd(cmd, WORK / "logs" / SUITE / f"{job['id']}.log")
    summary = json.loads((out / "tune.json").read_text())
    records = [json.loads(p.read_text()) for p in sorted((out / "trials").glob("trial-*.json"))]
    return {"model": "KGBM4Rec", "dataset": DATASET, "tuning": True, "grid": SELECT_GRID,
            "fixed": fixed, "folds": SELECT_FOLDS, "budget": summary["budget"],
            "metric": summary["budget"]["valid_metric"],
            "trials": [{"params": r["params"], "value": r["value"],
                        "per_fold": [f["valid"][r["metric"]] for f in r["folds"]],
                        "best_epoch": r["best_epoch"], "epochs_run": r["epochs_run"],
                        "seconds": r["seconds"]} for r in records],
            "best": summary["best"]["params"], "command": cmd}


def run(job: dict) -> dict:
    kind = job["kind"]
    if kind == "select":
        return {**_select(job), "row": job["row"], "seed": SEED, "kind": kind}
    if kind == "floor":
        return {**_floor(), "row": job["row"], "seed": SEED, "kind": kind}
    if kind == "rerank":
        r = _rerank(job)
        r.update(row=job["row"], seed=SEED, kind=kind)
        return r
    if kind == "embeddings":  # LightGCN trained for ranking on all interactions' random split
        r = _train(job, "LightGCN", {**BASE, "learning_rate": 0.005, "epochs": 30,
                                     "valid_metric": "ndcg@10", "metrics": ["ndcg"],
                                     "topk": [10]})
    elif kind == "cls":
        model, ov = CLS_ROWS[job["row"]]
        ov = {**BASE, **CLS[job["mode"]], **ov}
        if job["row"] == "LR on frozen inputs":
            ov["item_embeddings"] = embeddings_file()
        r = _train(job, model, ov)
    elif kind == "ablation":
        ov = {**BASE, **CLS["multi"], **KGBM, "config_file": variant_file(ABLATIONS[job["row"]])}
        r = _train(job, "KGBM4Rec", ov)
    elif kind == "rating":
        r = _train(job, "KGBM4Rec", {**BASE, **RATING, "fold": job["fold"], **KGBM})
        r["fold"] = job["fold"]
    elif kind == "topn":
        model, ov = TOPN_ROWS[job["row"]]
        r = _train(job, model, {**BASE, "epochs": TOPN_EPOCHS, **TOPN[job["protocol"]], **ov,
                                "seed": job["seed"]})
    else:
        model, ov = SPEED[job["row"]]
        r = _train(job, model, {**BASE, **SPEED_RUN, **ov})
    r.update(row=job.get("row", "LightGCN item embeddings"), seed=job.get("seed", SEED),
             kind=kind,
             **{k: job[k] for k in ("mode", "protocol") if k in job})
    return r


if __name__ == "__main__":
    queue_main(SUITE, jobs(), run)
