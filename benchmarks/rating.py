"""Rating prediction on ML-100K: our BiasedMF (and the bias-only baseline) beside scikit-surprise's
SVD and SVD++ on the same 5 folds (issue: tasks).

Folds: our ``kfold`` split (per user, seed 2020, ``n_folds`` 5; validation: the ``valid_ratio``
0.1 slice of each user's training folds), exported fold by fold with ``mmkgrec data
export-recbole`` and read by Surprise through ``PredefinedKFold``. Tuning, one small grid for
every model, searched on the validation ratings inside the training folds only (the test fold is
never read while choosing): factors x L2 weight (Surprise: ``n_factors`` x ``reg_all`` with
``GridSearchCV``, its default 20 SGD epochs at lr 0.005, the chosen setting refitted on the whole
of the training folds; ours: ``embedding_size`` x ``reg_weight``, Adam at ``learning_rate`` 0.02
on batches of 4096 ratings, early stopping on validation RMSE, the chosen run as trained;
BiasOnly: the L2 weights). Test RMSE,
MAE, MSE, per-user values, fit seconds (the chosen setting's training) and tuning seconds (the
whole grid). Published ML-100K figures (Surprise's documentation, 5-fold): RMSE SVD 0.934,
SVD++ 0.920.

    python benchmarks/rating.py [--only SUBSTRING]
Resumable: a job whose JSON exists in benchmarks/results/rating/ is skipped. Surprise runs in its
own venv (``bash benchmarks/surprise_env.sh``; ``$SURPRISE_PYTHON`` names another interpreter).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time

from common import ROOT, WORK, export_split, mmkgrec_run, queue_main, run_cmd

from mmkgrec.evaluation.metric_names import is_better

SUITE = "rating"
DATASET = "ml-100k"
SEED = 2020
N_FOLDS = 5
FACTORS = [20, 50]
REGS = [0.02, 0.1]
ROWS = ("BiasOnly", "BiasedMF", "SVD", "SVDpp")  # the order of the report's table
PUBLISHED = {"SVD": 0.934, "SVDpp": 0.920}  # RMSE, Surprise's documentation (ML-100K, 5-fold)
BASE = {"split": "kfold", "n_folds": N_FOLDS, "seed": SEED, "threads": 1, "show_progress": False}
OURS = {  # model -> the grid of its tuning (keys of our config)
    "BiasOnly": [{"reg_weight": r} for r in REGS],
    "BiasedMF": [{"embedding_size": f, "reg_weight": r} for f in FACTORS for r in REGS],
}
SURPRISE_GRID = {"n_factors": FACTORS, "reg_all": REGS}
METRIC = "rmse"  # chosen on validation (Surprise's GridSearchCV: best_params["rmse"])


def jobs() -> list[dict]:
    return [{"id": f"{m}-f{k}", "model": m, "fold": k} for k in range(N_FOLDS) for m in ROWS]


def fold_export(fold: int):
    """Our fold ``fold`` as RecBole-style files (train / valid / test with ratings)."""
    return export_split(DATASET, WORK / "splits" / f"{DATASET}-kfold{N_FOLDS}-f{fold}-s{SEED}",
                        {**{k: v for k, v in BASE.items() if k not in ("threads",
                                                                       "show_progress")},
                         "fold": fold, "task": "rating", "valid_metric": "rmse"})


def surprise_python() -> str:
    if os.environ.get("SURPRISE_PYTHON"):
        return os.environ["SURPRISE_PYTHON"]
    out = subprocess.run(["bash", str(ROOT / "benchmarks" / "surprise_env.sh")],
                         capture_output=True, text=True, check=True).stdout.strip().splitlines()
    return out[-1]


def _ours(job: dict) -> dict:
    trials = []
    t0 = time.perf_counter()
    for k, setting in enumerate(OURS[job["model"]]):
        run = WORK / "runs" / SUITE / f"{job['id']}-t{k}"
        r = mmkgrec_run(job["model"], DATASET, {**BASE, "fold": job["fold"], **setting}, run,
                        WORK / "logs" / SUITE / f"{job['id']}-t{k}.log")
        r["fit_s"] = sum(h["train_s"] or 0.0 for h in r["history"])
        trials.append((setting, r))
    tune_s = time.perf_counter() - t0
    k = 0  # the best validation RMSE (the metric's declared direction), the first on a tie
    for j in range(1, len(trials)):
        if is_better(trials[j][1]["valid"][METRIC], trials[k][1]["valid"][METRIC], METRIC):
            k = j
    chosen, r = trials[k]
    r["trials"] = [{"params": s, "valid_rmse": x["valid"]["rmse"], "valid_mae": x["valid"]["mae"],
                    "fit_s": x["fit_s"], "best_epoch": x["best_epoch"]} for s, x in trials]
    r["chosen"] = chosen  # beside the run's config (which holds it already), not inside it
    r["timing"] = {**r["timing"], "fit_s": r["fit_s"], "tune_s": tune_s}
    del r["fit_s"]
    return r


def _surprise(job: dict) -> dict:
    export = fold_export(job["fold"])
    out = WORK / "runs" / SUITE / f"{job['id']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [surprise_python(), str(ROOT / "benchmarks" / "surprise_runner.py"), "--fold-dir",
           str(export), "--dataset", DATASET, "--algo", job["model"], "--grid",
           json.dumps(SURPRISE_GRID), "--seed", str(SEED), "--out", str(out)]
    run_cmd(cmd, WORK / "logs" / SUITE / f"{job['id']}.log")
    r = json.loads(out.read_text())
    r["command"] = " ".join(shlex.quote(c) for c in cmd)
    return r


def run(job: dict) -> dict:
    r = _ours(job) if job["model"] in OURS else _surprise(job)
    r.update(row=job["model"], seed=SEED, fold=job["fold"], n_folds=N_FOLDS)
    if job["model"] in OURS:  # the export the reference library read: the same fold
        r["split_export"] = str(fold_export(job["fold"]).relative_to(ROOT))
    return r


if __name__ == "__main__":
    queue_main(SUITE, jobs(), run)
