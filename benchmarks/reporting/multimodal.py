"""The multimodal baselines on ML-100K (``benchmarks/multimodal.py``)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from .stats import TESTS, significance_rows
from .tables import ACC_KEYS, fmt, header, seed_row, set_str, suite_runs


def section() -> list[str]:
    mm, runs = suite_runs("multimodal")
    if not runs:
        return []
    final = defaultdict(list)
    for r in runs:
        if not r.get("tuning"):
            final[r["variant"]].append(r)
    tune, tune_reg = defaultdict(dict), defaultdict(dict)
    for r in runs:
        if r.get("tuning"):
            if "reg" in r:  # stage 2: the regulariser at the stage-1 rate
                tune_reg[r["variant"]][r["reg"]] = r["valid"]["ndcg@10"]
            else:
                tune[r["variant"]][r["chosen_lr"]] = r["valid"]["ndcg@10"]
    L = ["## Multimodal baselines on ML-100K", "",
         "Random 8:1:1 per user, full ranking. Same tuning budget for every variant: learning rate "
         f"in {set_str(mm.LRS)} chosen on validation NDCG@10 (seed 2020, at most 150 epochs, "
         "patience 15), then 3 seeds. Text: all-MiniLM-L6-v2 over title, year and genres. Image: "
         "the hand-crafted poster descriptor (colour, texture and layout statistics; no pre-trained "
         "image encoder is available offline here). Controls shuffle the feature rows across "
         "items and keep the variant's hyper-parameters. `sparse-*` rows split each user's "
         "interactions 2:1:7 instead (a fifth for training), to see whether content adds more "
         "where a user's training interactions are few than on the dense 8:1:1 split. `+reg` rows add stage 2 of the same budget for BPR and "
         f"VBPR: at the stage-1 rate, each model's own regulariser in {set_str([0] + mm.REGS)} chosen on "
         "validation (BPR: L2 of the batch factors; VBPR: lambda_E on E and beta'). `+L2` rows "
         "give VBPR the same stage 2 over BPR's key instead, reg_weight (the L2 of the batch's ID "
         f"factors), in {set_str(['1e-5 (VBPR default, the stage-1 run)'] + mm.REGS)}"
         + _bpr_reg_note(final) + ". `-std` rows standardise "
         "every feature dimension over the items (`feature_norm: standard`; unstandardised, the "
         "poster descriptor's rows, norm about 4, outweigh the unit-norm text embeddings). Test metrics, "
         "mean ± std over seeds. "
         "These runs used one torch thread beside other work: their s/epoch are not speed figures.", ""]
    head = "| variant | lr | seeds | " + " | ".join(ACC_KEYS) + " | s/epoch |"
    L += header(head)
    order = ["BPR", "LightGCN", "VBPR-text", "VBPR-image", "VBPR-both", "VBPR-both-shuffled",
             "VBPR-both-std", "MMGCN-text", "MMGCN-image", "MMGCN-both", "MMGCN-both-shuffled",
             "sparse-BPR", "sparse-LightGCN", "sparse-VBPR-both", "sparse-VBPR-both-shuffled",
             "sparse-MMGCN-both", "BPR+reg", "VBPR-text+reg", "VBPR-both+reg", "VBPR-both-std+reg",
             "VBPR-text+L2", "VBPR-both+L2"]
    for v in order:
        rs = final.get(v, [])
        L.append(seed_row(v, [rs[0]["chosen_lr"] if rs else "-"], rs))
    L += ["", f"Paired t-tests on test NDCG@10 {TESTS}:", ""]
    pairs = [("VBPR-both", "BPR"), ("VBPR-both", "VBPR-both-shuffled"), ("VBPR-text", "BPR"),
             ("VBPR-image", "BPR"), ("MMGCN-both", "LightGCN"), ("MMGCN-both", "MMGCN-both-shuffled"),
             ("LightGCN", "BPR"), ("sparse-VBPR-both", "sparse-BPR"),
             ("sparse-VBPR-both", "sparse-VBPR-both-shuffled"), ("sparse-MMGCN-both", "sparse-LightGCN"),
             ("sparse-LightGCN", "sparse-BPR"), ("VBPR-both+reg", "BPR+reg"),
             ("VBPR-text+reg", "BPR+reg"), ("VBPR-both+reg", "BPR"), ("VBPR-both+reg", "VBPR-both-shuffled"),
             ("VBPR-both-std", "BPR"), ("VBPR-both-std", "VBPR-both"),
             ("VBPR-both-std+reg", "BPR+reg"), ("VBPR-both-std+reg", "VBPR-both+reg"),
             ("VBPR-both+L2", "BPR+reg"), ("VBPR-text+L2", "BPR+reg"),
             ("VBPR-both+L2", "VBPR-both-shuffled")]
    L += significance_rows(final, pairs, "ndcg@10")
    content = [(split, a, b) for split, a, b in (("8:1:1", "VBPR-both", "BPR"),
                                                 ("2:1:7", "sparse-VBPR-both", "sparse-BPR"))
               if final.get(a) and final.get(b)]
    if content:
        L += ["", "What content adds to BPR by split (VBPR-both minus BPR, mean test NDCG@10): "
              + ", ".join(f"{_mean_diff(final, a, b):+.4f} on {split}" for split, a, b in content) + "."]
    L += ["", "Tuning (validation NDCG@10 per learning rate, seed 2020):", "",
          "| variant | " + " | ".join(f"lr {lr}" for lr in mm.LRS) + " |", "|---" * (1 + len(mm.LRS)) + "|"]
    for v in order:
        if v in tune:
            L.append(f"| {v} | " + " | ".join(fmt(tune[v].get(lr, float('nan'))) for lr in mm.LRS) + " |")
    if tune_reg:
        L += ["", "Stage 2 (validation NDCG@10 per regulariser value at the stage-1 rate, seed 2020; "
              "`stage 1` is the stage-1 run, the key at the model's default):", "",
              "| variant | key | stage 1 | " + " | ".join(str(r) for r in mm.REGS) + " |",
              "|" + "---|" * (3 + len(mm.REGS))]
        for v, (base, key) in mm.REG_TUNED.items():
            if v in tune_reg:
                # the stage-1 point: the best validation score over the rates (the chosen rate)
                L.append(f"| {v} | {key} | {fmt(max(tune[base].values()))} | "
                         + " | ".join(fmt(tune_reg[v].get(r, float("nan"))) for r in mm.REGS) + " |")
    L += ["", "Commands: `python benchmarks/multimodal.py` (each JSON in `benchmarks/results/multimodal/` "
          "holds its exact `mmkgrec train` command)."]
    return L + [""]


def _bpr_reg_note(final: dict) -> str:
    """``: BPR+reg chose 0.001 for that term, ...``: what BPR's stage 2 chose for reg_weight,
    the key the ``+L2`` rows tune for VBPR (empty before BPR+reg has run)."""
    if not final.get("BPR+reg"):
        return ""
    value = final["BPR+reg"][0].get("reg", 0)  # no ``reg``: the stage-1 run (0) won
    return (f": BPR+reg chose {value} for that term, while the `+reg` VBPR rows keep it at VBPR's "
            "default 1e-5")


def _mean_diff(final: dict, a: str, b: str, key: str = "ndcg@10") -> float:
    return float(np.mean([r["test"][key] for r in final[a]]) - np.mean([r["test"][key] for r in final[b]]))
