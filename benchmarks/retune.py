"""Equal tuning budgets for the rows behind a contested claim, through ``mmkgrec tune``.

The KG suite chose each row's learning rate under a 50-epoch cap; BPR's chosen rate was bound by
that cap while KGAT's later rows ran 150 epochs, and every KG row read ML-100K's ``.link`` as
given (keyed by MovieLens-1M ids: each film's KG is another film's). Here each row of a claim gets
the same budget, through the library's own tuner: the same grid of ``TRIALS`` points (each
claim's ``grid``, every point tried), the same epoch cap and patience, the same validation metric; the chosen configuration (``best.yaml``) then trains with seeds ``SEEDS``, and
the rows are compared on those seeds with paired tests in docs/BENCHMARKS.md.

Claim ``kg``: does a knowledge graph of the right films help? KGAT against BPR and LightGCN on
ML-100K, random 8:1:1 per user, full ranking, the packaged settings (the link re-keyed).
Claim ``seq``: MM-RACL-KAL against SASRec and GRU4Rec under the sequential suite's protocol, four
learning rates each.
Claim ``multikg``: Multi-KG4Rec against KGAT and MKGAT under the KG claim's budget (a 2 x 2 grid
of learning rate and L2, at most 50 epochs, patience 10, validation NDCG@20), packaged settings.

Jobs: ``tune-ROW`` (one ``mmkgrec tune`` into ``benchmarks/tunes/retune/ROW``; a killed tune
resumes from its finished trials), ``ROW-sSEED`` (``mmkgrec train --config best.yaml --set
seed=...``) and, for a claim with ablations, ``ABLATION-sSEED`` (the ablated row's ``best.yaml``
with the ablation's switch set: Multi-KG4Rec's and MKGAT's Table 3/4 rows with the learned image
features).

    python benchmarks/retune.py [--only SUBSTRING]
Resumable: a job whose JSON exists in benchmarks/results/retune/ is skipped. A tune's folder
(``spec.json``, ``study.journal``, ``trials/``, then ``best.yaml`` and ``tune.json``) lives in the
repository, not under ``$WORK``: a tune of many hours spans sessions on fresh checkouts, and the
seeds of a finished tune need its ``best.yaml``; only the checkpoints of the trial in progress
(``work/``) are left out (.gitignore), so a trial killed with its checkout starts again.
"""

from __future__ import annotations

import json
import shutil

import common
from common import ROOT, WORK, mmkgrec_run, queue_main, run_cmd, tune_cmd
from kg import slug  # an ablation row's name as a file name, as the KG suite's ablations
from multimodal import LEARNED_ENCODER, LEARNED_TAG
from pins import pinned

SUITE = "retune"
SEEDS = [2020, 2021, 2022]
TRIALS = 4  # the budget of every row: a grid of four points, each tried once
# the KG claim: a 2 x 2 grid for every row
KG_FIXED = {"epochs": 50, "stopping_step": 10, "valid_metric": "ndcg@20", "show_progress": False,
            "embedding_size": 64, "train_batch_size": 2048, "threads": 1}
CLAIMS = {
    "kg": {"dataset": "ml-100k", "rows": {"BPR": "BPR", "LightGCN": "LightGCN", "KGAT": "KGAT"},
           "pairs": [("KGAT", "BPR"), ("KGAT", "LightGCN")],
           "grid": {"learning_rate": [0.001, 0.005], "reg_weight": [1e-5, 1e-3]},
           "fixed": KG_FIXED, "metric": "ndcg@20",
           "about": "ML-100K, random 8:1:1 per user, full ranking; the packaged settings: its "
                    "`.link` re-keyed through the title map, so the KG is that of the right films."},
    # the Multi-KG4Rec claim: the KG claim's budget and settings (the packaged ones: the link
    # re-keyed, and the packaged image encoder, learned, where the KG suite's rows pinned the
    # descriptor)
    "multikg": {"dataset": "ml-100k",
                # row names unique across claims (the kg claim has its own KGAT row)
                "rows": {"mkg-KGAT": "KGAT", "mkg-MKGAT": "MKGAT", "MultiKG4Rec": "MultiKG4Rec"},
                "pairs": [("MultiKG4Rec", "mkg-KGAT"), ("MultiKG4Rec", "mkg-MKGAT")],
                "grid": {"learning_rate": [0.001, 0.005], "reg_weight": [1e-5, 1e-3]},
                "fixed": KG_FIXED, "extra": {"MKGAT": {"modalities": ["text", "image"]}},
                "metric": "ndcg@20",
                # the paper's Table 3/4 switches with the learned image features: each row reuses
                # the chosen configuration (best.yaml) of the row it ablates, one switch changed;
                # row -> (ablated row, the switch, seeds): three seeds each, as every row here
                # stands behind one of the paper's claims below
                "ablations": {
                    "MultiKG4Rec-w/o t": ("MultiKG4Rec", {"modalities": ["image"]}, SEEDS),
                    "MultiKG4Rec-w/o v": ("MultiKG4Rec", {"modalities": ["text"]}, SEEDS),
                    "MultiKG4Rec-t2v": ("MultiKG4Rec", {"fusion": "t2v"}, SEEDS),
                    "MultiKG4Rec-v2t": ("MultiKG4Rec", {"fusion": "v2t"}, SEEDS),
                    "MultiKG4Rec-w/o t&v": ("MultiKG4Rec", {"modalities": []}, SEEDS),
                    "MultiKG4Rec-no fusion": ("MultiKG4Rec", {"fusion": "none"}, SEEDS),
                    "mkg-MKGAT-w/o t": ("mkg-MKGAT", {"modalities": ["image"]}, SEEDS),
                    "mkg-MKGAT-w/o v": ("mkg-MKGAT", {"modalities": ["text"]}, SEEDS),
                    "mkg-MKGAT-w/o t&v": ("mkg-MKGAT", {"modalities": []}, SEEDS),
                },
                # the paper's claims on them: (row, row, the claim the pair tests), a table of
                # their own (Holm within it), so the claim's own pairs keep their family
                "claims": [
                    ("MultiKG4Rec-w/o t", "MultiKG4Rec-w/o v",
                     "visual > text (Table 3: the image alone beats the text alone)"),
                    ("MultiKG4Rec", "MultiKG4Rec-t2v",
                     "bi-directional > text-to-visual fusion (Table 4)"),
                    ("MultiKG4Rec", "MultiKG4Rec-v2t",
                     "bi-directional > visual-to-text fusion (Table 4)"),
                    # what Table 3's ablations exist to show: each modality adds to the other
                    ("MultiKG4Rec", "MultiKG4Rec-w/o t",
                     "both modalities > the image alone (Table 3: w/o t below the full model)"),
                    ("MultiKG4Rec", "MultiKG4Rec-w/o v",
                     "both modalities > the text alone (Table 3: w/o v below the full model)"),
                    ("MultiKG4Rec", "MultiKG4Rec-w/o t&v",
                     "both modalities > neither (Table 3: w/o t&v, the ID-only model)"),
                    ("MultiKG4Rec", "MultiKG4Rec-no fusion",
                     "bi-directional fusion > fusion off (Table 4's w/o t&v)"),
                    ("mkg-MKGAT-w/o t", "mkg-MKGAT-w/o v",
                     "visual > text for MKGAT (Table 3: its image alone beats its text alone)"),
                    ("mkg-MKGAT", "mkg-MKGAT-w/o t&v",
                     "both modalities > neither for MKGAT (Table 3)")],
                "about": "ML-100K, random 8:1:1 per user, full ranking; the packaged settings: "
                         "the `.link` re-keyed through the title map, text from all-MiniLM-L6-v2 "
                         "and images from the packaged learned encoder, EfficientNet-Lite1 (the "
                         "KG suite's rows read the link as given and the poster descriptor). "
                         "`mkg-KGAT` and `mkg-MKGAT` are this claim's own KGAT and MKGAT runs."},
    # the sequential claim: the sequential suite's protocol (benchmarks/sequential.py: time-ordered
    # 8:1:1, next-item evaluation, items with text and image), four learning rates for every row
    "seq": {"dataset": "ml-100k", "rows": {"MM-RACL-KAL": "MMRACLKAL", "GRU4Rec": "GRU4Rec",
                                           "SASRec": "SASRec", "MM-RACL-KAL+ID": "MMRACLKAL",
                                           f"MM-RACL-KAL-{LEARNED_TAG}": "MMRACLKAL",
                                           f"MM-RACL-KAL+ID-{LEARNED_TAG}": "MMRACLKAL"},
            # a row's own settings beside its model's: the item ID embedding (the sequential
            # suite's +ID variant) and the learned image encoder (issue 18: MM-RACL-KAL content-only
            # and +ID with learned features, under the budget of the rows they stand beside)
            "row_extra": {"MM-RACL-KAL+ID": {"item_id_embedding": True},
                          f"MM-RACL-KAL-{LEARNED_TAG}": {"image_encoder": LEARNED_ENCODER},
                          f"MM-RACL-KAL+ID-{LEARNED_TAG}": {"item_id_embedding": True,
                                                            "image_encoder": LEARNED_ENCODER}},
            "pairs": [("MM-RACL-KAL", "SASRec"), ("MM-RACL-KAL", "GRU4Rec")],
            "claims": [
                ("MM-RACL-KAL+ID", "GRU4Rec", "MM-RACL-KAL+ID > GRU4Rec (the +ID row's lead)"),
                ("MM-RACL-KAL+ID", "SASRec", "MM-RACL-KAL+ID > SASRec"),
                (f"MM-RACL-KAL-{LEARNED_TAG}", "MM-RACL-KAL",
                 "learned > descriptor image features (MM-RACL-KAL, content-only)"),
                (f"MM-RACL-KAL+ID-{LEARNED_TAG}", "MM-RACL-KAL+ID",
                 "learned > descriptor image features (MM-RACL-KAL+ID)"),
                (f"MM-RACL-KAL-{LEARNED_TAG}", "GRU4Rec",
                 "MM-RACL-KAL > GRU4Rec with learned image features"),
                (f"MM-RACL-KAL-{LEARNED_TAG}", "SASRec",
                 "MM-RACL-KAL > SASRec with learned image features"),
                (f"MM-RACL-KAL+ID-{LEARNED_TAG}", "GRU4Rec",
                 "MM-RACL-KAL+ID > GRU4Rec with learned image features"),
                (f"MM-RACL-KAL+ID-{LEARNED_TAG}", "SASRec",
                 "MM-RACL-KAL+ID > SASRec with learned image features")],
            "grid": {"learning_rate": [0.0005, 0.001, 0.002, 0.005]},
            "fixed": "sequential", "metric": "ndcg@10",
            "about": "The sequential suite's protocol: ML-100K, users with at least 5 and items "
                     "with at least 20 interactions, items with text and a poster, time-ordered "
                     "8:1:1, next-item evaluation over the full catalogue, at most 10 epochs "
                     "with patience 3, the poster descriptor for images; the rows named "
                     f"`-{LEARNED_TAG}` read the learned encoder ({LEARNED_ENCODER}) instead, "
                     "which leaves the protocol the same items (the sequential suite's ladder "
                     "checks it), so every row has the same split."},
}


def fixed(claim: str, row: str) -> dict:
    """The settings every trial and seed of ``claim``'s ``row`` shares: the claim's, its model's
    (``extra``) and its own (``row_extra``)."""
    c = CLAIMS[claim]
    model = c["rows"][row]
    own = {**c.get("extra", {}).get(model, {}), **c.get("row_extra", {}).get(row, {})}
    if c["fixed"] == "sequential":
        import sequential

        base = {k: v for k, v in {**sequential.BASE, **sequential.NEXT}.items()
                if k not in c["grid"]}
        return pinned(model, {**base, **own})
    return {**c["fixed"], **own}


def rows() -> dict[str, tuple[str, str, str]]:
    """row -> (claim, model, dataset)."""
    return {row: (claim, model, c["dataset"]) for claim, c in CLAIMS.items()
            for row, model in c["rows"].items()}


def ablations() -> dict[str, tuple[str, dict, list[int]]]:
    """ablation row -> (the claim row it ablates, its switch, its seeds), over every claim."""
    return {row: a for c in CLAIMS.values() for row, a in c.get("ablations", {}).items()}


def jobs() -> list[dict]:
    out = [{"id": f"tune-{row}", "row": row} for row in rows()]
    out += [{"id": f"{row}-s{s}", "row": row, "seed": s} for row in rows() for s in SEEDS]
    out += [{"id": f"{slug(row)}-s{s}", "row": row, "seed": s}
            for row, (_, _, seeds) in ablations().items() for s in seeds]
    return out


TUNES = ROOT / "benchmarks" / "tunes" / SUITE  # kept in the repository (see the docstring)


def tune_dir(row: str):
    return TUNES / row


def tune(job: dict) -> dict:
    claim, model, dataset = rows()[job["row"]]
    c = CLAIMS[claim]
    shared = fixed(claim, job["row"])
    out = tune_dir(job["row"])
    # the folder relative to the repository, the tune run from its root: the command the tune
    # writes into its kept files (trials, best.yaml) names no machine's path
    cmd = tune_cmd(model, dataset, out.relative_to(ROOT), c["grid"], {**shared, "seed": SEEDS[0]})
    run_cmd(cmd, WORK / "logs" / SUITE / f"{job['id']}.log", cwd=ROOT)
    summary = json.loads((out / "tune.json").read_text())
    trials = sorted((out / "trials").glob("trial-*.json"))
    records = [json.loads(p.read_text()) for p in trials]
    return {"row": job["row"], "claim": claim, "model": model, "dataset": dataset,
            "tuning": True, "grid": c["grid"], "fixed": shared, "metric": c["metric"],
            "trials": [{"params": r["params"], "value": r["value"], "best_epoch": r["best_epoch"],
                        "epochs_run": r["epochs_run"], "seconds": r["seconds"]} for r in records],
            "best": summary.get("best", {}).get("params") if isinstance(summary.get("best"), dict)
            else None,
            "command": cmd}


def train(job: dict) -> dict:
    """A seed of a claim row at its chosen configuration, or of an ablation row: the chosen
    configuration of the row it ablates with its switch set."""
    parent, switch, _ = ablations().get(job["row"], (job["row"], {}, None))
    claim, model, dataset = rows()[parent]
    best = tune_dir(parent) / "best.yaml"
    if not best.exists():
        raise common.NotReady(f"tune-{parent} has not finished ({best} missing)")
    run_dir = WORK / "runs" / SUITE / job["id"]
    ov = {"config_file": str(best), **switch, "seed": job["seed"], "split_seed": job["seed"]}
    r = mmkgrec_run(model, dataset, ov, run_dir, WORK / "logs" / SUITE / f"{job['id']}.log")
    shutil.rmtree(run_dir, ignore_errors=True)
    chosen = {k: r["config"].get(k) for k in CLAIMS[claim]["grid"]}
    r.update(row=job["row"], claim=claim, seed=job["seed"], chosen=chosen)
    if switch:
        r.update(ablates=parent, switch=switch)
    return r


def run(job: dict) -> dict:
    return train(job) if "seed" in job else tune(job)


if __name__ == "__main__":
    queue_main(SUITE, jobs(), run)
