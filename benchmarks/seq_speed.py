"""Training speed of the sequential models on ML-100K (issue: sequences).

Protocol of the RecBole timing rows in ANCHORS.md: time-ordered 8:1:1 per user, CE over all
items, batch 2048, max length 50, each validation/test interaction predicted from its prefix,
no history masking. Runs EPOCHS epochs per model and writes the median train seconds per epoch
and seconds per validation pass to benchmarks/results/sequential/speed-<MODEL>.json.

    MMKGREC_DATA=... python benchmarks/seq_speed.py [--models SASRec GRU4Rec] [--epochs 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import mmkgrec

OUT = Path(__file__).resolve().parent / "results" / "sequential"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["SASRec", "GRU4Rec", "BERT4Rec"])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    OUT.mkdir(parents=True, exist_ok=True)
    for model in args.models:
        t0 = time.perf_counter()
        run = mmkgrec.train(model, "ml-100k", overrides={
            "split": "time_ratio", "epochs": args.epochs, "stopping_step": 0, "eval_step": 1,
            "show_progress": False, "train_batch_size": 2048, "threads": args.threads})
        hist = run.metrics["history"]
        res = {"model": model, "epochs": args.epochs,
               "train_s_per_epoch": [h["train_s"] for h in hist],
               "median_train_s": statistics.median(h["train_s"] for h in hist),
               "median_eval_s": statistics.median(h["eval_s"] for h in hist if "eval_s" in h),
               "test": run.metrics["test"], "total_s": time.perf_counter() - t0,
               "versions": run.metrics["versions"], "git_sha": run.metrics["git_sha"]}
        (OUT / f"speed-{model}.json").write_text(json.dumps(res, indent=2))
        print(f"{model}: {res['median_train_s']:.2f} s/epoch, {res['median_eval_s']:.2f} s/eval")


if __name__ == "__main__":
    main()
