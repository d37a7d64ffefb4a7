"""Accuracy by item popularity on ML-100K (issues: multimodal features; sequences and MM-RACL-KAL).

The multimodal suite's tuned rows (ROWS) and the sequential suite's 30-epoch tuned rows
(SEQ_ROWS: MM-RACL-KAL's protocol, the next-item evaluator) are trained again with exactly the
settings their budget chose there (``multimodal.row_settings``, ``sequential.row_settings``: same
settings, seeds and splits), then evaluated per item-popularity group under their own protocol
(``mmkgrec evaluate RUN --by-popularity``): the items cut into GROUPS groups of equal size by
training interactions, every item ranked as usual, only the targets on the group's items counted.
On ML-100K the most popular third of the items holds most test interactions, so a row's overall
mean is mostly its head; content models earn their keep, if anywhere, in the tail. Each result
records its row's own test NDCG@10 for the same seed, to show the retrained run reproduces it.

    python benchmarks/popularity.py [--only SUBSTRING] [--workers N]
Resumable: a job whose JSON exists in benchmarks/results/popularity/ is skipped.
"""

from __future__ import annotations

import json

import common
import multimodal
import sequential
from common import WORK, mmkgrec_run, queue_main

SUITE = "popularity"
ROWS = ["BPR+reg", "VBPR-both+reg", "VBPR-text+reg", "LightGCN", "MMGCN-both"]
# the multimodal suite's learned-image rows (EfficientNet-Lite1, 3 seeds) and the BPR they are
# compared with there (the image-features issue's popularity thirds)
LEARNED_ROWS = ["BPR", "VBPR-image-lite1", "VBPR-both-lite1"]
# the sequential suite's tuned rows with the 30-epoch budget: MM-RACL-KAL with and without an ID
# embedding and the two best baselines (next-item protocol, each target's group by its item)
SEQ_ROWS = ["MM-RACL-KAL+ID", "MM-RACL-KAL", "GRU4Rec", "SASRec"]
# the same after stage 2 of the sequential budget (the learning rate chosen again at 30 epochs):
# MM-RACL-KAL+ID and the best baseline there, each at its chosen rate
SEQ2_ROWS = ["MM-RACL-KAL+ID", "GRU4Rec"]
GROUPS = 3
KEYS = ["recall@20", "ndcg@20", "recall@10", "ndcg@10"]


def jobs() -> list[dict]:
    out = [{"id": f"{v}-s{s}", "variant": v, "seed": s} for v in ROWS for s in multimodal.SEEDS]
    out += [{"id": f"{v}-s{s}", "variant": v, "seed": s} for v in LEARNED_ROWS
            for s in multimodal.SEEDS]
    out += [{"id": f"seq-{sequential.slug(r)}-s{s}", "row": r, "seed": s, "tuned": True, "long": True}
            for r in SEQ_ROWS for s in sequential.SEEDS]
    # lr_step None: the step stage 2 chose (NotReady until then, or where it keeps stage 1's rate,
    # whose runs the seq- jobs retrain)
    out += [{"id": f"seq2-{sequential.slug(r)}-s{s}", "row": r, "seed": s, "lr_stage": 2, "lr_step": None}
            for r in SEQ2_ROWS for s in sequential.SEEDS]
    return out


def row_file(job: dict):
    """The JSON of the row a job (or its result) retrains, for the same seed."""
    if "lr_stage" in job:
        runs = sequential.lr2_runs(job["row"], job.get("lr_step") or sequential.lr2_choice(job["row"]))
        return common.RESULTS / sequential.SUITE / f"{runs[sequential.SEEDS.index(job['seed'])]}.json"
    if "row" in job:
        return common.RESULTS / sequential.SUITE / f"long-{sequential.slug(job['row'])}-s{job['seed']}.json"
    return common.RESULTS / multimodal.SUITE / f"{job['variant']}-s{job['seed']}.json"


def settings(job: dict) -> tuple[str, dict, dict]:
    """``(model, overrides, result fields)`` of a job: exactly its row's (NotReady for a stage-2
    job that has no run of its own yet)."""
    if "row" not in job:
        return multimodal.row_settings(job)
    # a sequential row: its suite's settings, its row's JSON
    model, ov, fields, variant = sequential.row_settings(job)
    name = job["row"] + (sequential.LR2_LABEL if "lr_stage" in job else "")
    fields.update(row=job["row"], variant=name, seed=job["seed"], model_variant=variant)
    return model, ov, fields


def run(job: dict) -> dict:
    import torch

    import mmkgrec

    model, ov, fields = settings(job)
    run_dir = WORK / "runs" / SUITE / job["id"]
    r = mmkgrec_run(model, "ml-100k", ov, run_dir, WORK / "logs" / SUITE / f"{job['id']}.log",
                    per_user_keys=KEYS)
    r.update(fields)
    row = row_file(job)
    r["row_test_ndcg@10"] = json.loads(row.read_text())["test"]["ndcg@10"] if row.exists() else None
    torch.set_num_threads(1)
    groups = mmkgrec.load(run_dir).evaluate_by_popularity(GROUPS)
    for g in groups:
        g["per_user"] = {k: v for k, v in g["per_user"].items() if k == "user_ids" or k in KEYS}
    r["groups"] = groups
    return r


if __name__ == "__main__":
    queue_main(SUITE, jobs(), run)
