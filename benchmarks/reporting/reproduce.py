"""Stored rows rerun from their recorded commands (``benchmarks/reproduce.py``): do the test
metrics repeat after later changes to the library? Where a row was also rerun by its own commit
(``--control``), whether that repeats it tells a change since from inputs the row never recorded."""

from __future__ import annotations

from .tables import load


def _result(identical: bool, diff: float) -> str:
    return "identical" if identical else f"differs, max abs diff {diff:.3g}"


def _features(rerun: dict | None, control: dict | None) -> str:
    """Which item features the two runs encoded alike, from the stores each run filled."""
    if not rerun or not control:
        return ""
    same = [k for k in sorted(rerun) if control.get(k) == rerun[k]]
    differ = [k for k in sorted(rerun) if k in control and control[k] != rerun[k]]
    name = lambda k: "/".join(k.split("/")[1:])  # noqa: E731 (modality/encoder)
    parts = ([f"the same {', '.join(name(k) for k in same)} features"] if same else []) + [
        f"different {name(k)} features (encoder version {control[k]['version']} there, "
        f"{rerun[k]['version']} here)" for k in differ]
    return " Both runs encoded their own item features: " + "; ".join(parts) + "." if parts else ""


def _coverage(runs: list[dict]) -> list[str]:
    """Per suite: how many of its stored rows could be rerun (our library's, CPU, with a
    command and test metrics; tuning trials aside), how many were, how many repeat exactly."""
    from reproduce import why_not

    done = {(r["suite"], r["job"]): r["identical"] for r in runs}
    L = ["How much of each suite has been rerun (stored rows of our library with a command and "
         "test metrics, tuning trials aside; RecBole, speed and GPU rows are not rerun):", "",
         "| suite | rows | rerun | identical | not rerun |", "| --- | ---: | ---: | ---: | ---: |"]
    for suite in sorted({r["suite"] for r in runs}):
        rows = [r["job"] for r in load(suite)
                if not r.get("job", "").startswith("tune-") and why_not(r) is None]
        rerun = [j for j in rows if (suite, j) in done]
        same = sum(done[(suite, j)] for j in rerun)
        L.append(f"| {suite} | {len(rows)} | {len(rerun)} | {same} | {len(rows) - len(rerun)} |")
    return L + [""]


def section() -> list[str]:
    runs = load("reproduce")
    if not runs:
        return []
    L = ["## Reproduction of stored rows", "",
         "Each row below is a stored result rerun later with its recorded command (same seed, same "
         "split) from the commit named, by `python benchmarks/reproduce.py RESULT.json`; "
         "*identical* means every test metric equals the stored value exactly. With `--control` "
         "the row's own commit runs the same command too, on this machine, from a fresh feature "
         "cache (last column).", "",
         "| suite | row | stored at | rerun at | metrics compared | result | its own commit rerun |",
         "| --- | --- | --- | --- | ---: | --- | --- |"]
    same, notes = 0, []
    for r in runs:
        ok = r["identical"]
        same += ok
        c = r.get("control")
        own = (_result(c["identical_to_stored"], c["max_abs_diff_to_stored"]) if c else "not run")
        L.append(f"| {r['suite']} | {r['job']} | {str(r.get('source_git_sha'))[:10]} | "
                 f"{str(r['git_sha'])[:10]} | {len(r['compared'])} | "
                 f"{_result(ok, r['max_abs_diff'])} | {own} |")
        if c and not ok:
            dirty = str(r.get("source_git_sha") or "").endswith("-dirty")
            if c["identical_to_stored"]:
                notes.append(f"{r['suite']}/{r['job']}: its own commit {c['git_sha'][:10]} repeats "
                             "the stored row exactly, so a change since that commit moved it.")
            else:
                notes.append(
                    f"{r['suite']}/{r['job']}: its own commit {c['git_sha'][:10]}, rerun here, does "
                    f"not repeat the stored row either (max abs diff "
                    f"{c['max_abs_diff_to_stored']:.3g}), so the changes since are not what moves "
                    "it: the stored value depended on something its commit does not fix, inputs "
                    "the row does not record (such as what the feature cache held)"
                    + (" or the working tree's uncommitted changes (its SHA ends in `-dirty`)"
                       if dirty else "")
                    + (". This checkout repeats that commit's metrics exactly" if
                       c["identical_to_rerun"] else
                       f". This checkout and that commit differ by {c['max_abs_diff_to_rerun']:.3g}"
                       " from each other") + "."
                    + _features(r.get("features"), c.get("features")))
    L += ["", f"{same} of {len(runs)} rerun rows repeat their stored test metrics exactly"
          + ("." if same == len(runs) else "; the others differ by the amounts shown."), ""]
    L += _coverage(runs)
    if notes:
        L += [f"- {n}" for n in notes] + [""]
    return L
