"""Stored rows rerun from their recorded commands (``benchmarks/reproduce.py``): do the test
metrics repeat after later changes to the library?"""

from __future__ import annotations

from .tables import load


def section() -> list[str]:
    runs = load("reproduce")
    if not runs:
        return []
    L = ["## Reproduction of stored rows", "",
         "Each row below is a stored result rerun later with its recorded command (same seed, same "
         "split) from the commit named, by `python benchmarks/reproduce.py RESULT.json`; "
         "*identical* means every test metric equals the stored value exactly.", "",
         "| suite | row | stored at | rerun at | metrics compared | result |",
         "| --- | --- | --- | --- | ---: | --- |"]
    same = 0
    for r in runs:
        ok = r["identical"]
        same += ok
        L.append(f"| {r['suite']} | {r['job']} | {str(r.get('source_git_sha'))[:10]} | "
                 f"{str(r['git_sha'])[:10]} | {len(r['compared'])} | "
                 + ("identical" if ok else f"differs, max abs diff {r['max_abs_diff']:.3g}") + " |")
    L += ["", f"{same} of {len(runs)} rerun rows repeat their stored test metrics exactly"
          + ("." if same == len(runs) else "; the others differ by the amounts shown."), ""]
    return L
