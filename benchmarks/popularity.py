"""Accuracy by item popularity on ML-100K (issue: multimodal features).

The multimodal suite's tuned rows (ROWS), trained again with exactly the settings their budget
chose there (``multimodal.row_settings``: same learning rate, regulariser, seeds and splits), then
evaluated by full ranking per item-popularity group (``mmkgrec evaluate RUN --by-popularity``):
the items cut into GROUPS groups of equal size by training interactions, each group's test
interactions the only relevant ones. On the dense 8:1:1 split the most popular third of the items
holds most test interactions, so a row's overall mean is mostly its head; content models earn
their keep, if anywhere, in the tail. Each result records the multimodal row's own test NDCG@10
for the same seed, to show the retrained run reproduces it.

    python benchmarks/popularity.py [--only SUBSTRING] [--workers N]
Resumable: a job whose JSON exists in benchmarks/results/popularity/ is skipped.
"""

from __future__ import annotations

import json

import common
import multimodal
from common import WORK, mmkgrec_run, queue_main

SUITE = "popularity"
ROWS = ["BPR+reg", "VBPR-both+reg", "VBPR-text+reg", "LightGCN", "MMGCN-both"]
GROUPS = 3
KEYS = ["recall@20", "ndcg@20", "recall@10", "ndcg@10"]


def jobs() -> list[dict]:
    return [{"id": f"{v}-s{s}", "variant": v, "seed": s} for v in ROWS for s in multimodal.SEEDS]


def run(job: dict) -> dict:
    import torch

    import mmkgrec

    model, ov, fields = multimodal.row_settings(job)
    run_dir = WORK / "runs" / SUITE / job["id"]
    r = mmkgrec_run(model, "ml-100k", ov, run_dir, WORK / "logs" / SUITE / f"{job['id']}.log",
                    per_user_keys=KEYS)
    r.update(fields)
    row = common.RESULTS / multimodal.SUITE / f"{job['variant']}-s{job['seed']}.json"
    r["row_test_ndcg@10"] = json.loads(row.read_text())["test"]["ndcg@10"] if row.exists() else None
    torch.set_num_threads(1)
    groups = mmkgrec.load(run_dir).evaluate_by_popularity(GROUPS)
    for g in groups:
        g["per_user"] = {k: v for k, v in g["per_user"].items() if k == "user_ids" or k in KEYS}
    r["groups"] = groups
    return r


if __name__ == "__main__":
    queue_main(SUITE, jobs(), run)
