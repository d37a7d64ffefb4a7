"""Last.FM under KGCN's click-through protocol (issue: knowledge graphs and Multi-KG4Rec).

KGCN's labelled pairs (each user's positives and as many sampled unseen items, from
``ratings_final``), split 6:2:2 at random; AUC / F1 / accuracy of sigmoid(score) on the test pairs;
log loss on the labelled training pairs; early stopping on validation AUC. KGCN with the paper's
music settings (published AUC 0.796, F1 0.721) and KGAT with its Last-FM architecture, 3 seeds;
Multi-KG4Rec runs as an ID-only row (Last.FM has no text or images), one seed, labelled so.

    python benchmarks/ctr.py [--only SUBSTRING]
Resumable: a job whose JSON exists in benchmarks/results/ctr/ is skipped.
"""

from __future__ import annotations

import shutil

from common import WORK, mmkgrec_run, queue_main, variant_file

SUITE = "ctr"
SEEDS = [2020, 2021, 2022]
ROWS = {  # row -> (model, variant file, extra overrides, seeds)
    "KGCN": ("KGCN", "KGCN-lastfm-ctr", {}, SEEDS),
    "KGAT": ("KGAT", "KGAT-lastfm-ctr", {}, SEEDS),
    # the KGAT protocol file with Multi-KG4Rec's ID-only graph: same layers, batch, rate
    "MultiKG4Rec (ID only)": ("MultiKG4Rec", "KGAT-lastfm-ctr", {"modalities": []}, SEEDS[:1]),
}
BASE = {"threads": 1, "show_progress": False}
PUBLISHED = {"KGCN": {"auc": 0.796, "f1": 0.721}}


def slug(row: str) -> str:
    return row.split(" ")[0] + ("-id" if "ID" in row else "")


def jobs() -> list[dict]:
    return [{"id": f"{slug(r)}-s{s}", "row": r, "seed": s} for r, v in ROWS.items() for s in v[3]]


def run(job: dict) -> dict:
    model, variant, extra, _ = ROWS[job["row"]]
    ov = {**BASE, **extra, "seed": job["seed"], "split_seed": job["seed"],
          "config_file": variant_file(variant)}
    out = WORK / "runs" / SUITE / job["id"]
    r = mmkgrec_run(model, "lastfm-kg", ov, out, WORK / "logs" / SUITE / f"{job['id']}.log")
    shutil.rmtree(out, ignore_errors=True)
    r.update(row=job["row"], seed=job["seed"], variant=variant)
    return r


if __name__ == "__main__":
    queue_main(SUITE, jobs(), run)
