"""The physical limit of a full evaluation: a bare matmul + top-k over all users, in chunks.

    python benchmarks/bound.py --users 70679 --items 24915 --dim 64 --k 20 --chunk 4096
prints one JSON line: the median seconds over repeats of scoring every user against every item
and taking the top-k, with random factors (no masking, no metric)."""

import argparse
import json
import statistics
import time

import torch

p = argparse.ArgumentParser()
p.add_argument("--users", type=int, required=True)
p.add_argument("--items", type=int, required=True)
p.add_argument("--dim", type=int, default=64)
p.add_argument("--k", type=int, default=20)
p.add_argument("--chunk", type=int, default=4096)
p.add_argument("--repeats", type=int, default=3)
a = p.parse_args()
g = torch.Generator().manual_seed(0)
U = torch.randn(a.users, a.dim, generator=g)
V = torch.randn(a.items, a.dim, generator=g)
times = []
for _ in range(a.repeats):
    t = time.perf_counter()
    for s in range(0, a.users, a.chunk):
        torch.topk(U[s:s + a.chunk] @ V.T, a.k)
    times.append(time.perf_counter() - t)
print(json.dumps({"bound_s": statistics.median(times), "all_s": times, "users": a.users,
                  "items": a.items, "dim": a.dim, "k": a.k, "chunk": a.chunk,
                  "threads": torch.get_num_threads(), "torch": torch.__version__}))
