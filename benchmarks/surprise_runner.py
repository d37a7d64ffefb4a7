"""scikit-surprise on one fold of our k-fold split, tuned with its own GridSearchCV (runs in the
venv of ``benchmarks/surprise_env.sh``; it never imports mmkgrec).

    python benchmarks/surprise_runner.py --fold-dir DIR --dataset NAME --algo SVD|SVDpp \
        --grid '{"n_factors": [20, 50], "reg_all": [0.02, 0.1]}' --seed 2020 --out result.json

``DIR/NAME/NAME.{train,valid,test}.inter`` are the fold's parts as ``mmkgrec data export-recbole``
writes them (user, item, rating, timestamp). The grid is searched with ``GridSearchCV`` over the
fold's training folds only, split as ours is (``PredefinedKFold`` over the (train, valid) pair:
every library chooses on the same validation ratings); the best setting by validation RMSE is then
fitted on the whole of the training folds (train + valid) and tested once on the test fold, read
through ``PredefinedKFold`` as well. Predictions are clipped to the rating scale (Surprise's
``test``). The JSON holds the chosen setting, every grid point's validation RMSE / MAE, test RMSE /
MAE / MSE, per-user test values, fit and tuning seconds and versions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections import defaultdict

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--fold-dir", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--algo", required=True, choices=["SVD", "SVDpp"])
    p.add_argument("--grid", required=True, help="JSON: parameter -> list of values")
    p.add_argument("--seed", type=int, default=2020)
    p.add_argument("--out", required=True)
    a = p.parse_args()

    import surprise
    from surprise import SVD, SVDpp, Dataset, Reader
    from surprise.model_selection import GridSearchCV, PredefinedKFold

    base = os.path.join(a.fold_dir, a.dataset, a.dataset)
    parts = {k: f"{base}.{k}.inter" for k in ("train", "valid", "test")}
    ratings = [float(line.split("\t")[2]) for k in ("train", "valid")
               for line in open(parts[k]).read().splitlines()[1:]]
    reader = Reader(line_format="user item rating timestamp", sep="\t", skip_lines=1,
                    rating_scale=(min(ratings), max(ratings)))
    algo = {"SVD": SVD, "SVDpp": SVDpp}[a.algo]
    grid = {**json.loads(a.grid), "random_state": [a.seed]}

    inner = Dataset.load_from_folds([(parts["train"], parts["valid"])], reader)
    t0 = time.perf_counter()
    gs = GridSearchCV(algo, grid, measures=["rmse", "mae"], cv=PredefinedKFold(), refit=False,
                      n_jobs=1)
    gs.fit(inner)
    tune_s = time.perf_counter() - t0
    best = gs.best_params["rmse"]
    trials = [{"params": {k: v for k, v in prm.items() if k != "random_state"},
               "valid_rmse": float(gs.cv_results["mean_test_rmse"][k]),
               "valid_mae": float(gs.cv_results["mean_test_mae"][k]),
               "fit_s": float(gs.cv_results["mean_fit_time"][k])}
              for k, prm in enumerate(gs.cv_results["params"])]

    with tempfile.TemporaryDirectory() as tmp:  # the whole of the training folds in one file
        full = os.path.join(tmp, "train_valid.inter")
        lines = open(parts["train"]).read().splitlines()
        lines += open(parts["valid"]).read().splitlines()[1:]
        with open(full, "w") as f:
            f.write("\n".join(lines) + "\n")
        data = Dataset.load_from_folds([(full, parts["test"])], reader)
        trainset, testset = next(PredefinedKFold().split(data))
    model = algo(**best)
    t0 = time.perf_counter()
    model.fit(trainset)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    preds = model.test(testset)
    test_s = time.perf_counter() - t0
    err = np.asarray([p.est - p.r_ui for p in preds], dtype=np.float64)
    by_user = defaultdict(list)
    for p, e in zip(preds, err):
        by_user[str(p.uid)].append(e)
    users = sorted(by_user)
    mse_u = [float(np.mean(np.square(by_user[u]))) for u in users]
    result = {
        "library": "surprise", "model": a.algo, "dataset": a.dataset,
        "config": {"grid": json.loads(a.grid), "chosen": {k: v for k, v in best.items()
                                                          if k != "random_state"},
                   "seed": a.seed, "n_epochs": model.n_epochs, "lr_all": model.lr_bu},
        "trials": trials,
        "valid": {"rmse": float(gs.best_score["rmse"])},
        "test": {"mse": float(np.mean(err ** 2)), "rmse": float(np.sqrt(np.mean(err ** 2))),
                 "mae": float(np.mean(np.abs(err)))},
        "timing": {"fit_s": fit_s, "tune_s": tune_s, "test_s": test_s},
        "per_user": {"user_ids": users, "mse": mse_u, "rmse": [float(np.sqrt(v)) for v in mse_u],
                     "mae": [float(np.mean(np.abs(by_user[u]))) for u in users]},
        "data_stats": {"train_ratings": trainset.n_ratings, "test_ratings": len(testset)},
        "versions": {"surprise": surprise.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
    }
    with open(a.out + ".tmp", "w") as f:
        json.dump(result, f)
    os.replace(a.out + ".tmp", a.out)


if __name__ == "__main__":
    main()
