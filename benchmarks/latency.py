"""Per-user inference latency of MM-RACL-KAL (issue: sequences and MM-RACL-KAL, efficiency).

What is timed: one user's request, history -> top-20 items, with everything that does not depend
on the request prepared offline (``prepare_eval``: the fused item table e_i and every user's
static LightGCN interest u_s; and, for the ``faiss`` path, a flat inner-product index over e_i).
A request is: the Transformer over the user's last ``max_seq_length`` items, the gate with the
user's cached u_s, then either ``torch`` (scores against every item + ``torch.topk``) or ``faiss``
(the index's top-20 search). Retrieval augmentation is off at inference (``augment_at_inference:
false``, the default), as measured here. One torch thread, batch of one, 1,000 users after 50
warm-up requests; p50 / p99 / mean in milliseconds.

Catalogues: ML-100K's size under MM-RACL-KAL's protocol (943 users, 933 items) and a 25,000-item
catalogue (2,000 users). Weights are untrained and the interactions random (100 per user):
latency does not depend on either. Features have MiniLM's (384) and the descriptor's (239) widths.

    python benchmarks/latency.py
Writes benchmarks/results/latency/<catalogue>.json (one JSON per catalogue; reruns overwrite).
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import RESULTS, git_sha, write_json  # noqa: E402

from mmkgrec.config import load_config  # noqa: E402
from mmkgrec.data.dataset import Interactions  # noqa: E402
from mmkgrec.graph.adjacency import bipartite_adjacency, sym_normalize, to_torch_csr  # noqa: E402
from mmkgrec.models import ModelInputs, get_model_class  # noqa: E402
from mmkgrec.retrieval.faiss_index import ItemIndex  # noqa: E402

CATALOGUES = {"ml-100k-size": (943, 933), "25k-items": (2000, 25_000)}
HISTORY = 100
K = 20
N_REQUESTS = 1000
WARMUP = 50
DIMS = {"text": 384, "image": 239}


def build(n_users: int, n_items: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(n_users), HISTORY)
    items = np.concatenate([rng.choice(n_items, HISTORY, replace=False) for _ in range(n_users)])
    train = Interactions(users, items, timestamp=np.tile(np.arange(HISTORY, dtype=np.float64), n_users))
    inputs = ModelInputs(n_users, n_items, train)
    inputs.graph = to_torch_csr(sym_normalize(bipartite_adjacency(train, n_users, n_items)), "cpu")
    inputs.features = {m: (torch.from_numpy(rng.standard_normal((n_items, d)).astype(np.float32)),
                           torch.ones(n_items)) for m, d in DIMS.items()}
    cfg = load_config("MMRACLKAL", "synthetic", overrides={"show_progress": False})
    torch.manual_seed(seed)
    model = get_model_class("MMRACLKAL")(cfg, inputs)
    model.eval()
    model.prepare_eval()
    histories = items.reshape(n_users, HISTORY)[:, -int(cfg["max_seq_length"]):] + 1  # id + 1
    return model, cfg, torch.from_numpy(histories)


def time_requests(fn, users, histories) -> dict:
    out = []
    for k, u in enumerate(users):
        seq = histories[u:u + 1]
        uid = torch.tensor([u])
        t0 = time.perf_counter()
        fn(seq, uid)
        dt = (time.perf_counter() - t0) * 1000.0
        if k >= WARMUP:
            out.append(dt)
    a = np.asarray(out)
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
            "mean_ms": float(a.mean()), "n": len(a)}


def main() -> None:
    torch.set_num_threads(1)
    for name, (n_users, n_items) in CATALOGUES.items():
        model, cfg, histories = build(n_users, n_items)
        table = model.item_table()[1:n_items + 1].contiguous()
        t0 = time.perf_counter()
        index = ItemIndex(table, metric="ip", kind="flat")
        index_s = time.perf_counter() - t0
        lengths = torch.full((1,), histories.shape[1], dtype=torch.long)
        rng = np.random.default_rng(1)
        users = rng.integers(0, n_users, N_REQUESTS + WARMUP)

        @torch.inference_mode()
        def exact(seq, uid):
            return torch.topk(model.score_sequences(seq, lengths, users=uid), K)

        @torch.inference_mode()
        def faiss(seq, uid):
            u = model.fuse(model.encode(seq, lengths, table=model.item_table()),
                           model._static_cache[uid])
            return index.search(u.numpy(), K)

        # both paths return the same top-20 (up to ties)
        seq, uid = histories[:1], torch.tensor([0])
        assert set(exact(seq, uid)[1][0].tolist()) == set(faiss(seq, uid)[1][0].tolist())
        res = {"catalogue": name, "n_users": n_users, "n_items": n_items, "k": K,
               "history_length": int(histories.shape[1]), "threads": 1,
               "augment_at_inference": bool(cfg["augment_at_inference"]),
               "offline_index_build_s": index_s, "index_backend": index.backend,
               "torch_exact": time_requests(exact, users, histories),
               "faiss_flat": time_requests(faiss, users, histories),
               "versions": {"torch": torch.__version__, "python": platform.python_version()},
               "git_sha": git_sha(), "command": "python benchmarks/latency.py"}
        write_json(RESULTS / "latency" / f"{name}.json", res)
        print(f"{name}: exact p50 {res['torch_exact']['p50_ms']:.2f} ms p99 "
              f"{res['torch_exact']['p99_ms']:.2f} ms | faiss p50 {res['faiss_flat']['p50_ms']:.2f} "
              f"ms p99 {res['faiss_flat']['p99_ms']:.2f} ms")


if __name__ == "__main__":
    main()
