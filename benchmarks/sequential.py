"""Sequential models and MM-RACL-KAL on ML-100K (issue: sequences and MM-RACL-KAL).

Protocol (MM-RACL-KAL's): users with >= 5 and items with >= 20 interactions, iterated to a
fixpoint; only items with both text and an image; per user, time-ordered 80/10/10; each
validation / test interaction is a next-item target predicted from everything before it; full
ranking over all items, and the named sampled mode (1 positive among 100 unseen items) beside
it (``test_sampled`` in each JSON, the same trained model re-evaluated). Text: all-MiniLM-L6-v2
over title, year and genres; image: the hand-crafted poster descriptor, pinned in every job (the
protocol keeps only items with an image; ``pins``; results with it say so). Every model,
sequential or not, is evaluated by the next-item evaluator with the user's earlier items removed
from the ranking (``mask_history_seq: true``, so that CF models are not penalised for re-ranking
training items); the side-by-side rows against RecBole use RecBole's
convention (nothing masked).

Budget (2 cores): an epoch cap of EPOCHS with patience PATIENCE on validation NDCG@10, the
learning rate LR for every model (the same, untuned, budget for all), max length 50 (every
sequential model's default, and RecBole's MAX_ITEM_LIST_LENGTH), seeds from
``--seeds`` (default one: 2020). The queue is ordered by priority; what was not run is listed by
``benchmarks/report.py``.

    python benchmarks/sequential.py [--only SUBSTRING] [--seeds 1]
Resumable: a job whose JSON exists in benchmarks/results/sequential/ is skipped.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys

from common import (WORK, NotReady, best_on_validation, chosen_trial, export_split, feature_files, mmkgrec_run,
                    random_trials, recbole_run, run_queue, variant_file)
from multimodal import LEARNED_ENCODER, LEARNED_TAG
from pins import pinned

SUITE = "sequential"
EPOCHS = 10
PATIENCE = 3
LR = 0.001
SEEDS = [2020, 2021, 2022]
PROTO = {"user_min_inter": 5, "item_min_inter": 20, "require_item_content": ["text", "image"],
         "split": "time_ratio", "split_ratio": [0.8, 0.1, 0.1]}
BASE = {**PROTO, "epochs": EPOCHS, "stopping_step": PATIENCE, "valid_metric": "ndcg@10",
        "learning_rate": LR, "show_progress": False, "train_batch_size": 2048, "threads": 1}
NEXT = {"eval_next_item": True, "mask_history_seq": True}
# row -> (registered model, overrides); in priority order
MAIN = {
    "SASRec": ("SASRec", {}),
    "MM-RACL-KAL": ("MMRACLKAL", {}),
    "RACL-KAL": ("MMRACLKAL", {"variant": "RACL-KAL"}),
    "GRU4Rec": ("GRU4Rec", {}),
    "LightGCN": ("LightGCN", {}),
    "Text-SASRec": ("SASRec", {"item_content": "text"}),
    "Image-SASRec": ("SASRec", {"item_content": "image"}),
    "Text-LightGCN": ("LightGCN", {"item_content": "text"}),
    "Image-LightGCN": ("LightGCN", {"item_content": "image"}),
    "VBPR": ("VBPR", {}),
    "MMGCN": ("MMGCN", {}),
    "BERT4Rec": ("BERT4Rec", {}),
    "MM-RACL-KAL+ID": ("MMRACLKAL", {"variant": "MMRACLKAL-id"}),
}
LADDER = {f"ladder-{k}": ("MMRACLKAL", {"variant": v}) for k, v in
          [("Base", "MMRACLKAL-base"), ("+M", "MMRACLKAL-M"), ("+RA", "MMRACLKAL-RA"),
           ("+S", "MMRACLKAL-S")]}
LOO = {f"loo-{k}": ("MMRACLKAL", {"variant": f"MMRACLKAL-{k}"})
       for k in ("wo-image", "wo-ra", "wo-static", "wo-cl")}
CL = {f"cl-{k}": ("MMRACLKAL", {"variant": f"MMRACLKAL-{k}"})
      for k in ("ui-only", "ii-only", "mm-only", "ii-random")}
SENS = {**{f"topk-{k}": ("MMRACLKAL", {"augment_topk": k}) for k in (1, 3, 5, 10, 20)},
        **{f"p-{p}": ("MMRACLKAL", {"augment_p": p}) for p in (0.0, 0.1, 0.2, 0.3, 0.5)}}
# Issue 18, stage 3: the rung that adds the image (+M) again with the learned image encoder
# (``multimodal.LEARNED_ENCODER``, named in the job, so ``pins`` leaves it), one seed like the
# ladder; every other setting the +M row's. Paired with the descriptor rows only because both
# encoders give every poster a vector, so the protocol keeps the same items and the split is
# the same (the report checks the rows' users and items).
LEARNED_LADDER = {f"ladder-+M-{LEARNED_TAG}": ("MMRACLKAL", {**LADDER["ladder-+M"][1],
                                                            "image_encoder": LEARNED_ENCODER})}
# the ladder's further image rungs (+RA and +S, each built on +M) with the learned encoder, one
# seed (2020) like the descriptor's rungs they sit beside
LEARNED_RUNGS = {f"ladder-{k}-{LEARNED_TAG}": ("MMRACLKAL", {**LADDER[f"ladder-{k}"][1],
                                                            "image_encoder": LEARNED_ENCODER})
                 for k in ("+RA", "+S")}
ROWS = {**MAIN, **LADDER, **LOO, **CL, **SENS, **LEARNED_LADDER, **LEARNED_RUNGS}
# the image rung's claim on 3 seeds (the rows behind a paper claim): Base, +M with the
# descriptor and +M with the learned encoder again with the other seeds (their own splits)
LADDER_SEED_ROWS = ["ladder-Base", "ladder-+M", *LEARNED_LADDER]
# Tuning: every row of TUNED gets the same budget of TRIALS settings (trial 0: its defaults; the
# others drawn at random from its space), one seed, chosen on validation NDCG@10; the chosen
# setting then runs with every seed (``tuned-*``). The encoder's knobs are shared; each model adds
# its own (BERT4Rec's masking, MM-RACL-KAL's contrastive weights, temperature and p).
TRIALS = 16
LRS = [0.0005, 0.001, 0.002, 0.005]
DROPOUT = [0.1, 0.2, 0.3, 0.5]
WEIGHT_DECAY = [0.0, 1e-5, 1e-4]
ENCODER = {"learning_rate": LRS, "hidden_dropout_prob": DROPOUT, "attn_dropout_prob": DROPOUT,
           "weight_decay": WEIGHT_DECAY}
RACL = {**ENCODER, "contrastive_beta": [0.01, 0.03, 0.1, 0.3], "contrastive_tau": [0.1, 0.2, 0.5, 1.0],
        "lambda_ui": [0.0, 0.5, 1.0], "lambda_ii": [0.0, 0.5, 1.0], "lambda_mm": [0.0, 0.5, 1.0],
        "augment_p": [0.0, 0.1, 0.2]}
TUNED = {
    "SASRec": ENCODER,
    "GRU4Rec": {"learning_rate": LRS, "dropout_prob": DROPOUT, "weight_decay": WEIGHT_DECAY},
    "BERT4Rec": {**ENCODER, "mask_ratio": [0.1, 0.2, 0.4, 0.6]},
    "MM-RACL-KAL": RACL,
    "MM-RACL-KAL+ID": RACL,
}


# A longer budget for the tuned rows (their best epochs sat at 8-9 of 10): each chosen setting again
# with LONG_EPOCHS epochs and patience LONG_PATIENCE, 3 seeds; the contenders first, as a queue that
# stops part-way still compares MM-RACL-KAL+ID with the best tuned baseline
LONG_EPOCHS = 30
LONG_PATIENCE = 5
LONG_ROWS = ["MM-RACL-KAL+ID", "GRU4Rec", "SASRec", "MM-RACL-KAL", "BERT4Rec"]

# Stage 2 of the budget, at the longer budget: the learning rate chosen again with LONG_EPOCHS
# epochs. Stage 1 chose it under a 10-epoch cap that bound most runs, which favours large steps.
# Each of MM-RACL-KAL+ID and the baselines gets the same: its stage-1 rate (the
# ``long-*`` run of seed 2020) and the next LR2_STEPS smaller rates of LRS, seed 2020, the rest of
# the stage-1 setting unchanged; validation NDCG@10 chooses, and the chosen rate runs every seed
# (a rate that stays at stage 1's reuses the ``long-*`` seeds).
# (in priority order: BERT4Rec's epochs take five times GRU4Rec's, so it comes last)
LR2_ROWS = ["MM-RACL-KAL+ID", "GRU4Rec", "SASRec", "BERT4Rec"]
LR2_STEPS = 2
LR2_LABEL = " (stage 2)"  # the rows after stage 2, in the report


def slug(row: str) -> str:
    return row.replace("+", "p")


def trials(row: str) -> list[dict]:
    return random_trials(TUNED[row], TRIALS, row)


SIDE = ["SASRec", "GRU4Rec"]  # side by side with RecBole (nothing masked, RecBole's convention)
# RecBole's SASRec takes minutes per epoch here: it runs RECBOLE_SASREC_EPOCHS epochs, for its speed
# and its validation curve over those epochs, set against ours epoch by epoch (not a converged row)
RECBOLE_SASREC_EPOCHS = 3
# RecBole's settings for the side-by-side rows (ours: BASE): the same budget and loss
RECBOLE_SIDE = {"epochs": EPOCHS, "stopping_step": PATIENCE, "valid_metric": "NDCG@10",
                "learning_rate": LR, "train_batch_size": 2048, "MAX_ITEM_LIST_LENGTH": 50,
                "loss_type": "CE", "train_neg_sample_args": None}
# --device / --features: where our runs train (a GPU machine: torch's default threads, features
# from exported files); RecBole's side-by-side rows on a GPU are benchmarks/gpu.py's
MACHINE: dict = {}


def jobs(n_seeds: int) -> list[dict]:
    seeds = SEEDS[:n_seeds]
    out = [{"id": f"side-{m}-{lib}-s2020", "row": m, "lib": lib, "seed": 2020}
           for m in SIDE for lib in ("mmkgrec", "recbole")]
    out += [{"id": f"{slug(r)}-s{s}", "row": r, "seed": s} for r in MAIN for s in seeds]
    for group in (LADDER, LOO, CL, SENS, LEARNED_LADDER):
        out += [{"id": f"{slug(r)}-s2020", "row": r, "seed": 2020} for r in group]
    out += [{"id": f"tune-{slug(r)}-t{k}", "row": r, "seed": 2020, "trial": k}
            for r in TUNED for k in range(TRIALS)]
    out += [{"id": f"tuned-{slug(r)}-s{s}", "row": r, "seed": s, "tuned": True}
            for r in TUNED for s in SEEDS]
    out += [{"id": f"long-{slug(r)}-s{s}", "row": r, "seed": s, "tuned": True, "long": True}
            for r in LONG_ROWS for s in SEEDS]
    out += [{"id": f"lr2-{slug(r)}-k{k}-s{SEEDS[0]}", "row": r, "seed": SEEDS[0], "lr_step": k}
            for r in LR2_ROWS for k in range(1, LR2_STEPS + 1)]
    out += [{"id": f"lr2-{slug(r)}-s{s}", "row": r, "seed": s, "lr_step": None}
            for r in LR2_ROWS for s in SEEDS[1:]]
    out += [{"id": f"{slug(r)}-s{s}", "row": r, "seed": s}
            for s in SEEDS[1:] for r in LADDER_SEED_ROWS]
    out += [{"id": f"{slug(r)}-s2020", "row": r, "seed": 2020} for r in LEARNED_RUNGS]
    return out


def lr2_rates(row: str) -> list[float]:
    """Stage 2's learning rates of ``row``: stage 1's first, then the next smaller ones."""
    lr = chosen_trial(SUITE, f"tune-{slug(row)}", TRIALS, "ndcg@10")[1]["learning_rate"]
    i = LRS.index(lr)
    return [lr] + LRS[max(0, i - LR2_STEPS):i][::-1]


def lr2_runs(row: str, step: int) -> list[str]:
    """The result files (ids) of ``row`` at stage 2's rate number ``step``, one per seed."""
    if step == 0:
        return [f"long-{slug(row)}-s{s}" for s in SEEDS]
    return [f"lr2-{slug(row)}-k{step}-s{SEEDS[0]}"] + [f"lr2-{slug(row)}-s{s}" for s in SEEDS[1:]]


def lr2_choice(row: str) -> int:
    """The step (index into ``lr2_rates``) whose seed-2020 run has the best validation NDCG@10.
    NotReady while any of them is missing."""
    ids = [lr2_runs(row, k)[0] for k in range(len(lr2_rates(row)))]
    return best_on_validation(SUITE, ids, "ndcg@10", f"stage 2 of {row}")[0]


def row_settings(job: dict) -> tuple[str, dict, dict, str | None]:
    """``(model, overrides, tuning fields, variant)`` of one of our rows (``row``, ``seed``; a
    ``trial`` index for a tuning run, ``tuned`` / ``long`` for the chosen setting)."""
    row, seed = job["row"], job["seed"]
    model, extra = ROWS[row]
    extra = dict(extra)
    variant = extra.pop("variant", None)
    setting, tuning = {}, {}
    if "trial" in job:  # a tuning run: validation only counts, no sampled re-evaluation
        setting = trials(row)[job["trial"]]
        tuning = {"trial": setting, "trial_index": job["trial"]}
    elif job.get("tuned"):
        k, setting = chosen_trial(SUITE, f"tune-{slug(row)}", TRIALS, "ndcg@10")
        tuning = {"trial": setting, "trial_index": k, "tuned": True}
        if job.get("long"):
            setting = {**setting, "epochs": LONG_EPOCHS, "stopping_step": LONG_PATIENCE}
            tuning["long"] = True
    elif "lr_step" in job:  # stage 2: the stage-1 setting at the longer budget, another rate
        k, setting = chosen_trial(SUITE, f"tune-{slug(row)}", TRIALS, "ndcg@10")
        step = job["lr_step"]
        if step is None:  # a further seed of the chosen rate
            step = lr2_choice(row)
            if step == 0:
                raise NotReady(f"stage 2 keeps {row}'s stage-1 rate: its seeds are the long-* runs")
        rate = lr2_rates(row)[step]
        setting = {**setting, "learning_rate": rate, "epochs": LONG_EPOCHS,
                   "stopping_step": LONG_PATIENCE}
        tuning = {"trial": setting, "trial_index": k, "tuned": True, "lr_stage": 2,
                  "lr_step": step}
    ov = {**BASE, **NEXT, **extra, **setting, "seed": seed, "split_seed": seed, **MACHINE}
    if variant:
        ov["config_file"] = variant_file(variant)
    return model, pinned(model, ov), tuning, variant


def split_check(model: str, ov: dict) -> dict:
    """The protocol's dataset under the job's image encoder and under the descriptor the other
    rows were computed with: their items and interactions. Raises (the job is not run) where they
    differ, since the rows would then not pair."""
    from mmkgrec.config import load_config
    from mmkgrec.data.registry import load_dataset

    def data(encoder: str):
        cfg = load_config(model, "ml-100k", None, {**PROTO, "image_encoder": encoder})
        return load_dataset("ml-100k", cfg)

    a, b = data(ov["image_encoder"]), data("descriptor")
    same = (list(a.item_ids) == list(b.item_ids) and list(a.user_ids) == list(b.user_ids)
            and len(a.inter) == len(b.inter)
            and all((getattr(a.inter, f) == getattr(b.inter, f)).all()
                    for f in ("user", "item", "timestamp")))
    out = {"encoder": ov["image_encoder"], "items": a.n_items, "interactions": len(a.inter),
           "descriptor_items": b.n_items, "descriptor_interactions": len(b.inter),
           "same_as_descriptor": bool(same)}
    if not same:
        raise RuntimeError(f"the protocol keeps other items with {ov['image_encoder']} than with the "
                           f"descriptor ({out}): its rows would not pair with the ladder's")
    return out


def run(job: dict) -> dict:
    row, seed = job["row"], job["seed"]
    split_cfg = {"seed": seed, "split_seed": seed}
    log = WORK / "logs" / SUITE / f"{job['id']}.log"
    if "lib" in job:
        if job["lib"] == "recbole":
            max_len = 50  # every sequential model's default here (see the module docstring)
            # one row per next-item sample, exactly ours (RecBole's benchmark files for sequential
            # models are pre-augmented: user, item_id_list, item_id)
            export_dir = export_split("ml-100k", WORK / "splits" / f"ml-100k-seq-aug-s{seed}",
                                      pinned(None, {**PROTO, **split_cfg}), sequential=True,
                                      max_len=max_len)
            epochs = RECBOLE_SASREC_EPOCHS if row == "SASRec" else EPOCHS
            ov = {**RECBOLE_SIDE, "epochs": epochs, "MAX_ITEM_LIST_LENGTH": max_len, "seed": seed}
            r = recbole_run(row, export_dir, "ml-100k", ov,
                            WORK / "runs" / SUITE / f"{job['id']}.json", log)
        else:
            ov = pinned(row, {**BASE, **split_cfg})
            r = mmkgrec_run(row, "ml-100k", ov, WORK / "runs" / SUITE / job["id"], log)
        r.update(row=row, seed=seed, side_by_side=True)
        return r
    model, ov, tuning, variant = row_settings(job)
    check = split_check(model, ov) if row in {**LEARNED_LADDER, **LEARNED_RUNGS} else None
    run_dir = WORK / "runs" / SUITE / job["id"]
    r = mmkgrec_run(model, "ml-100k", ov, run_dir, log)
    r.update(tuning)
    if check is not None:
        r["split_check"] = check
    if "trial" in job:
        shutil.rmtree(run_dir, ignore_errors=True)
        r.update(row=row, seed=seed, variant=variant, device=ov.get("device", "cpu"))
        return r
    # the named sampled mode beside full ranking: 1 positive among 100 unseen items
    out = subprocess.run([sys.executable, "-m", "mmkgrec.cli", "evaluate", str(run_dir), "--set",
                          "eval_protocol=sampled", *(["--device", ov["device"]] if "device" in ov
                                                     else [])],
                         capture_output=True, text=True, check=True)
    r["test_sampled"] = json.loads(out.stdout)
    shutil.rmtree(run_dir, ignore_errors=True)
    r.update(row=row, seed=seed, variant=variant, device=ov.get("device", "cpu"))
    return r


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--only")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--device", default="cpu", help="cpu, or cuda for a GPU machine (our rows only)")
    p.add_argument("--features", help="folder of <dataset>-text.npz / -image.npz to read features from")
    p.add_argument("--workers", type=int, default=1, help="jobs at once (a GPU machine)")
    a = p.parse_args()
    MACHINE.update(feature_files(a.features))
    if a.device != "cpu":
        MACHINE.update(device=a.device, threads=0)
    run_queue(SUITE, jobs(a.seeds), run, a.only, a.workers)
