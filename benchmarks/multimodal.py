"""Multimodal baselines on ML-100K (issue: multimodal features).

Random 8:1:1 per user, full ranking, @10 and @20. Every variant gets the same tuning budget:
learning rate in LRS, chosen on validation NDCG@10 with seed 2020 (an epoch cap of EPOCHS,
patience PATIENCE); then 3 seeds with the chosen rate. Variants: BPR, LightGCN, VBPR and MMGCN
with text only, image only and both, plus controls with the features shuffled across items
(same hyper-parameters as the variant they control); and a sparse regime (``sparse-*``: each
user's interactions split 2:1:7) for BPR, LightGCN, VBPR and MMGCN. Text: all-MiniLM-L6-v2 over title, year and
genres; image: the handcrafted poster descriptor, pinned in every job that reads images
(``pins``; results computed with it say so), except the rows measured again with the learned
encoder (``LEARNED``: ``*-lite1``, which name it).

    python benchmarks/multimodal.py [--only SUBSTRING]
Resumable: a job whose JSON exists in benchmarks/results/multimodal/ is skipped.
"""

from __future__ import annotations


import common
from common import WORK, mmkgrec_run, queue_main
from pins import pinned

SUITE = "multimodal"
LRS = [0.001, 0.005, 0.01]
SEEDS = [2020, 2021, 2022]
EPOCHS = 150
PATIENCE = 15
# one torch thread: this suite's figures are accuracy; it ran beside other work, and two processes
# with two OpenMP threads each on two cores slow each other down many times over
BASE = {"epochs": EPOCHS, "stopping_step": PATIENCE, "valid_metric": "ndcg@10",
        "show_progress": False, "embedding_size": 64, "train_batch_size": 2048, "threads": 1}
VARIANTS = {
    "BPR": ("BPR", {}),
    "LightGCN": ("LightGCN", {}),
    "VBPR-text": ("VBPR", {"modalities": ["text"]}),
    "VBPR-image": ("VBPR", {"modalities": ["image"]}),
    "VBPR-both": ("VBPR", {"modalities": ["text", "image"]}),
    # the concatenation with every feature dimension standardised over the items: the poster
    # descriptor's rows have norm ~4 against the text embedding's 1, so unstandardised it dominates
    # f_i in both E f_i and beta' . f_i
    "VBPR-both-std": ("VBPR", {"modalities": ["text", "image"], "feature_norm": "standard"}),
    "MMGCN-text": ("MMGCN", {"modalities": ["text"]}),
    "MMGCN-image": ("MMGCN", {"modalities": ["image"]}),
    "MMGCN-both": ("MMGCN", {"modalities": ["text", "image"]}),
}
# The sparse regime: each user's interactions split 2:1:7 (a fifth for training), where content has
# more to add to collaborative signal than on ML-100K's dense 8:1:1 (about 85 training
# interactions per user). Same budget; the split is part of the variant.
SPARSE = {"split_ratio": [0.2, 0.1, 0.7]}
VARIANTS.update({f"sparse-{v}": (VARIANTS[v][0], {**VARIANTS[v][1], **SPARSE})
                 for v in ("BPR", "LightGCN", "VBPR-both", "MMGCN-both")})
CONTROLS = {"VBPR-both-shuffled": "VBPR-both", "MMGCN-both-shuffled": "MMGCN-both",
            "sparse-VBPR-both-shuffled": "sparse-VBPR-both"}
# Stage 2 of the budget, the same for BPR and VBPR: at the stage-1 learning rate, each model's own
# regulariser in {0 (the stage-1 run), REGS}, chosen on validation NDCG@10 with seed 2020; then 3
# seeds. BPR's is reg_weight (L2 of the batch's factors), VBPR's is lambda_E (content_reg_weight:
# ||E||^2 + ||beta'||^2), the one term of the paper's loss the stage-1 runs left at 0.
REGS = [0.001, 0.01]
REG_TUNED = {"BPR+reg": ("BPR", "reg_weight"), "VBPR-both+reg": ("VBPR-both", "content_reg_weight"),
             "VBPR-text+reg": ("VBPR-text", "content_reg_weight")}
# Stage 2 with BPR's own key: VBPR's reg_weight (the same L2 of the batch's ID factors, gamma and
# beta, plus theta_u) over the same grid, the stage-1 run (VBPR's default 1e-5) as the first point.
# BPR+reg chose 1e-3 for that term, while the `+reg` VBPR rows kept it at 1e-5: these rows give
# VBPR's ID part the regularisation BPR's was tuned to, at exactly BPR's stage-2 cost (2 runs).
REG_TUNED.update({"VBPR-both-std+reg": ("VBPR-both-std", "content_reg_weight"),
                  "VBPR-both+L2": ("VBPR-both", "reg_weight"),
                  "VBPR-text+L2": ("VBPR-text", "reg_weight")})
# The learned image encoder, chosen among the EfficientNet-Lite sizes on validation: VBPR
# image-only with each, under the budget the VBPR-image row had (the learning rate in LRS, seed
# 2020, the same epoch cap and patience), the size whose best run has the best validation
# NDCG@10 wins (``chosen_image_encoder``). Tuning runs only: the rows measured again with the
# chosen encoder are a later stage.
IMAGE_ENCODERS = {f"VBPR-image-lite{n}": ("VBPR", {"modalities": ["image"],
                                                   "image_encoder": f"efficientnet-lite{n}"})
                  for n in range(3)}
# Issue 18, stage 3: the image-side rows measured again with the learned encoder the stage above
# chose, named in each job (so ``pins`` leaves it alone), under the budget of the descriptor row
# each sits beside (its own learning rate in LRS on validation NDCG@10, seed 2020; the same cap,
# patience and splits, so the tests pair by seed). VBPR-image's learned row reuses the encoder
# choice's tuning runs (the same grid and settings). The VBPR rows, behind a paper claim, run 3
# seeds; the MMGCN rows one (seed 2020). The control permutes the learned vectors across items.
LEARNED_ENCODER = "efficientnet-lite1"
LEARNED_TAG = LEARNED_ENCODER.removeprefix("efficientnet-")
LEARNED = {f"{v}-{LEARNED_TAG}": (VARIANTS[v][0], {**VARIANTS[v][1], "image_encoder": LEARNED_ENCODER})
           for v in ("VBPR-image", "VBPR-both", "MMGCN-image", "MMGCN-both")}
# the learned vectors' rows have a mean L2 norm of about 15 (the descriptor's about 4, text 1) and
# every learned VBPR row chose the grid's smallest rate: the image-only row again with every
# dimension standardised over the items (``feature_norm: standard``), under the same budget
LEARNED[f"VBPR-image-std-{LEARNED_TAG}"] = ("VBPR", {"modalities": ["image"],
                                                    "feature_norm": "standard",
                                                    "image_encoder": LEARNED_ENCODER})
LEARNED_SEEDS = {f"VBPR-image-{LEARNED_TAG}": SEEDS, f"VBPR-both-{LEARNED_TAG}": SEEDS,
                 f"MMGCN-image-{LEARNED_TAG}": SEEDS[:1], f"MMGCN-both-{LEARNED_TAG}": SEEDS[:1],
                 f"VBPR-image-std-{LEARNED_TAG}": SEEDS}
LEARNED_CONTROLS = {f"VBPR-image-{LEARNED_TAG}-shuffled": f"VBPR-image-{LEARNED_TAG}"}
# the learned row of each descriptor row (the report's pairs)
LEARNED_OF = {v: f"{v}-{LEARNED_TAG}" for v in ("VBPR-image", "VBPR-both", "MMGCN-image", "MMGCN-both")}
# The rest of the suite's image rows with the learned encoder, one seed (2020), each under the
# budget of its descriptor twin: the standardised concatenation and the sparse regime's VBPR and
# MMGCN rows (their learning rate in LRS), the shuffled controls of the text-and-image rows, and
# stage 2 of the text-and-image VBPR row (its regulariser over REGS at the learned row's rate, as
# the descriptor's `+reg` and `+L2` rows had). The report tests them in a table of their own.
FURTHER_OF = {v: f"{v}-{LEARNED_TAG}" for v in ("VBPR-both-std", "sparse-VBPR-both",
                                                 "sparse-MMGCN-both")}
LEARNED.update({lv: (VARIANTS[v][0], {**VARIANTS[v][1], "image_encoder": LEARNED_ENCODER})
                for v, lv in FURTHER_OF.items()})
LEARNED_SEEDS.update({lv: SEEDS[:1] for lv in FURTHER_OF.values()})
FURTHER_CONTROLS = {f"{b}-shuffled": b for b in (f"MMGCN-both-{LEARNED_TAG}",
                                                f"sparse-VBPR-both-{LEARNED_TAG}")}
LEARNED_CONTROLS.update(FURTHER_CONTROLS)
LEARNED_REG = {f"VBPR-both+reg-{LEARNED_TAG}": (f"VBPR-both-{LEARNED_TAG}", "content_reg_weight"),
               f"VBPR-both+L2-{LEARNED_TAG}": (f"VBPR-both-{LEARNED_TAG}", "reg_weight")}
REG_TUNED.update(LEARNED_REG)


def learned_jobs() -> list[dict]:
    """Stage 3's jobs in priority order: each learned row's tuning runs (where the encoder choice
    has none), its seeds, then its control's seeds."""
    out = []
    for v, seeds in LEARNED_SEEDS.items():
        if v not in IMAGE_ENCODERS:
            out += [{"id": f"tune-{v}-lr{lr}", "variant": v, "lr": lr, "seed": 2020} for lr in LRS]
        out += [{"id": f"{v}-s{s}", "variant": v, "seed": s} for s in seeds]
        out += [{"id": f"{c}-s{s}", "variant": c, "seed": s}
                for c, base in LEARNED_CONTROLS.items() if base == v
                for s in (SEEDS[:1] if c in FURTHER_CONTROLS else seeds)]
    out += [{"id": f"tune-{v}-r{r}", "variant": v, "reg": r, "seed": 2020} for v in LEARNED_REG
            for r in REGS]
    out += [{"id": f"{v}-s2020", "variant": v, "seed": 2020} for v in LEARNED_REG]
    return out


def jobs() -> list[dict]:
    out = [{"id": f"tune-{v}-lr{lr}", "variant": v, "lr": lr, "seed": 2020}
           for v in [*VARIANTS, *IMAGE_ENCODERS] for lr in LRS]
    out += [{"id": f"{v}-s{s}", "variant": v, "seed": s} for v in VARIANTS for s in SEEDS]
    out += [{"id": f"{c}-s{s}", "variant": c, "seed": s} for c in CONTROLS for s in SEEDS]
    descriptor_reg = [v for v in REG_TUNED if v not in LEARNED_REG]
    out += [{"id": f"tune-{v}-r{r}", "variant": v, "reg": r, "seed": 2020} for v in descriptor_reg
            for r in REGS]
    out += [{"id": f"{v}-s{s}", "variant": v, "seed": s} for v in descriptor_reg for s in SEEDS]
    return out + learned_jobs()


def chosen_reg(variant: str) -> float | None:
    """Stage 2: the regulariser value with the best validation NDCG@10 (None: the stage-1 run,
    i.e. the model's configured default, won)."""
    import json

    base = REG_TUNED[variant][0]
    best = (json.loads((common.RESULTS / SUITE / f"tune-{base}-lr{chosen_lr(base)}.json")
                       .read_text())["valid"]["ndcg@10"], None)
    for r in REGS:
        p = common.RESULTS / SUITE / f"tune-{variant}-r{r}.json"
        if not p.exists():
            raise common.NotReady(f"stage-2 tuning of {variant} incomplete ({p.name} missing)")
        score = json.loads(p.read_text())["valid"]["ndcg@10"]
        if score > best[0]:
            best = (score, r)
    return best[1]


def chosen_lr(variant: str) -> float:
    return common.chosen_lr(SUITE, variant, LRS, "ndcg@10")


def chosen_image_encoder() -> str:
    """The EfficientNet-Lite size whose VBPR image-only tuning run has the best validation
    NDCG@10 (NotReady until all of them exist)."""
    ids = [f"tune-{v}-lr{lr}" for v in IMAGE_ENCODERS for lr in LRS]
    k, _ = common.best_on_validation(SUITE, ids, "ndcg@10", "the image encoder choice")
    return IMAGE_ENCODERS[list(IMAGE_ENCODERS)[k // len(LRS)]][1]["image_encoder"]


def row_settings(job: dict) -> tuple[str, dict, dict]:
    """``(model, overrides, fields)`` of the job's row (``variant``, ``seed``, and ``lr`` / ``reg``
    for a tuning run): the settings its budget chose, and the fields its result records."""
    variant = job["variant"]
    controls = {**CONTROLS, **LEARNED_CONTROLS}
    base_variant = controls.get(variant, variant)
    reg = {}
    if variant in REG_TUNED:
        base_variant, key = REG_TUNED[variant]
        value = job["reg"] if "reg" in job else chosen_reg(variant)
        reg = {} if value is None else {key: value}
    model, extra = {**VARIANTS, **IMAGE_ENCODERS, **LEARNED}[base_variant]
    lr = job.get("lr") or chosen_lr(base_variant)
    ov = {**BASE, **extra, **reg, "learning_rate": lr, "seed": job["seed"], "split_seed": job["seed"]}
    if variant in controls:
        ov["shuffle_features"] = True
    ov = pinned(model, ov)
    fields = dict(variant=variant, seed=job["seed"], tuning="lr" in job or "reg" in job, chosen_lr=lr,
                  **({"reg": next(iter(reg.values()))} if reg else {}),
                  **({"reg_key": REG_TUNED[variant][1]} if variant in REG_TUNED else {}))
    return model, ov, fields


def reused_tuning_run(job: dict) -> str | None:
    """The tuning run a learned row's seed-2020 run is (its chosen rate, seed 2020: the same
    command but the output folder; in this suite such a pair agrees to the last digit), for the
    learned rows tuned in this queue; None for every other job. The image-only VBPR row's
    seed-2020 run trains again, a check of the encoder choice's runs from an earlier commit."""
    v = job["variant"]
    if v not in LEARNED or v in IMAGE_ENCODERS or "lr" in job or job["seed"] != 2020:
        return None
    return f"tune-{v}-lr{chosen_lr(v)}"


def run(job: dict) -> dict:
    import json

    model, ov, fields = row_settings(job)
    tune_id = reused_tuning_run(job)
    if tune_id is not None:  # the seed-2020 run is the tuning run at the chosen rate
        r = json.loads((common.RESULTS / SUITE / f"{tune_id}.json").read_text())
        for k in ("job", "suite", "finished_at", "wall_s"):
            r.pop(k, None)
        r.update(fields, reused_from=tune_id, source_git_sha=r.pop("git_sha"))
        return r
    r = mmkgrec_run(model, "ml-100k", ov, WORK / "runs" / SUITE / job["id"],
                    WORK / "logs" / SUITE / f"{job['id']}.log")
    r.update(fields)
    return r


if __name__ == "__main__":
    queue_main(SUITE, jobs(), run)
