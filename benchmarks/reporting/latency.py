"""MM-RACL-KAL's per-user inference latency (``benchmarks/latency.py``), shown in the sequential
section."""

from __future__ import annotations

from .tables import load


def section() -> list[str]:
    lat = load("latency")
    if not lat:
        return []
    L = ["", "### Inference latency (history -> top-20, one user per request)", "",
         "Static parts prepared offline (fused item table, every user's LightGCN interest; a flat "
         "index for the FAISS path); retrieval augmentation off at inference; one torch thread; "
         "1,000 requests after 50 warm-up ones; untrained weights and random histories (latency "
         "depends on neither). Target: p99 < 5 ms at 25,000 items. `python benchmarks/latency.py`.", "",
         "| catalogue | items | path | p50 ms | p99 ms | mean ms |", "|---|---|---|---|---|---|"]
    for r in lat:
        for path in ("torch_exact", "faiss_flat"):
            x = r[path]
            L.append(f"| {r['catalogue']} | {r['n_items']} | {path} | {x['p50_ms']:.2f} | "
                     f"{x['p99_ms']:.2f} | {x['mean_ms']:.2f} |")
    return L
