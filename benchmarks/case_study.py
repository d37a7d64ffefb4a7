"""Multi-KG4Rec's case study (the paper's Fig. 4): for two users, the attention their items put
on the visual vs the text modality.

Reads the trained seed-2020 Multi-KG4Rec run that ``benchmarks/kg.py`` keeps (its chosen learning
rate), takes two users (the first two test users with at least 10 training items, in dense-id
order: a fixed rule, not a choice by outcome), and for 10 of each user's training items reports
the share of cross-modal attention the item's own position places on visual and on text keys
(:meth:`mmkgrec.models.multikg4rec.MultiKG4Rec.modality_attention`). Writes
``benchmarks/results/case_study/ml-100k.json`` and, with matplotlib, ``docs/img/case_study.png``.

    python benchmarks/case_study.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import RESULTS, WORK, git_sha, write_json  # noqa: E402

import mmkgrec  # noqa: E402

N_USERS, N_ITEMS = 2, 10


def find_run() -> Path:
    import kg

    lr = kg.chosen_lr("MultiKG4Rec")
    path = WORK / "runs" / "kg" / f"tune-MultiKG4Rec-lr{lr}"
    if not (path / "model.safetensors").exists():
        raise SystemExit(f"{path} is missing: run `python benchmarks/kg.py --only MultiKG4Rec` first")
    return path


def main() -> None:
    torch.set_num_threads(1)
    path = find_run()
    run = mmkgrec.load(path)
    model, split = run.model, run.split
    counts = np.bincount(split.train.user, minlength=split.n_users)
    test_users = np.unique(split.test.user)
    users = [int(u) for u in test_users if counts[u] >= N_ITEMS][:N_USERS]
    items, mass, modalities = model.modality_attention(users, N_ITEMS)
    ds = split.dataset
    titles = ds.item_features.get("movie_title")
    out = {"run": str(path.relative_to(ROOT)), "modalities": list(modalities), "users": []}
    for k, u in enumerate(users):
        rows = []
        for j, i in enumerate(items[k].tolist()):
            if i < 0:
                continue
            title = " ".join(titles[i]) if titles is not None else None
            rows.append({"item": str(ds.item_ids[i]), "title": title,
                         **{m: float(mass[k, j, n]) for n, m in enumerate(modalities)}})
        out["users"].append({"user": str(ds.user_ids[u]), "items": rows})
    out.update(git_sha=git_sha(), command="python benchmarks/case_study.py",
               config={"n_users": N_USERS, "n_items": N_ITEMS})
    write_json(RESULTS / "case_study" / "ml-100k.json", out)
    for u in out["users"]:
        print(f"user {u['user']}:")
        for r in u["items"]:
            print("   " + "  ".join(f"{m}={r[m]:.3f}" for m in modalities) + f"  {r['title']}")


if __name__ == "__main__":
    main()
