"""Rerun stored benchmark rows with their recorded commands and check that the test metrics repeat.

    python benchmarks/reproduce.py benchmarks/results/core/ml-100k-BPR-mmkgrec-s2020.json [...]

For each result JSON of our library (``library: mmkgrec``) the recorded ``mmkgrec.cli train``
command runs again from this checkout, its run folder under ``benchmarks/work/reproduce/`` instead
of the original one (keys whose default changed since, ``PINNED``, set to the values its config
recorded), and its test metrics are compared with the stored ones: *identical* (every
value equal as stored, to the last bit of the JSON's decimal form) or the largest absolute
difference. One JSON per source row goes to ``benchmarks/results/reproduce/`` (the source, both
metric sets, the git SHA of the rerun, the command); a row already there is skipped, so a killed
rerun resumes. RecBole rows, speed rows and GPU rows are refused with one line saying why.

With ``--control`` the row's own commit (its ``git_sha``, without ``-dirty``) is checked out
into a temporary worktree and runs the same command too; each of the two runs gets a fresh
feature cache of its own, so that it computes its item features as its code does. The control's
test metrics go into the JSON beside (``control``), and so do the item features each run
encoded (``features``: per store, the encoder's version and a SHA-256 of the vectors). A row that its own commit does not repeat either was not moved by the changes
since: its stored value came from inputs or a working tree that the row does not record.

    python benchmarks/reproduce.py --control benchmarks/results/multimodal/MMGCN-both-s2020.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import RESULTS, ROOT, WORK, git_sha, relative_command, run_cmd, write_json

OUT = RESULTS / "reproduce"
# keys whose default changed after rows were stored, each with the value a row recorded before the
# key existed ran with (_SKIP: such a row is left unpinned)
_SKIP = object()
PINNED = {"image_encoder": _SKIP, "link_item_map": None}


def _in_checkout(arg: str, root: Path = ROOT) -> str:
    """An absolute path into another checkout of the repository (a row recorded elsewhere, e.g.
    ``/elsewhere/src/mmkgrec/configs/variant/X.yaml``) as the same file in the checkout ``root``
    (this one, or the row's own commit for a control run), when that file exists there; any
    other argument as it is."""
    path = Path(arg)
    if not path.is_absolute() or path.exists():
        return arg
    parts = path.parts
    for top in ("src", "benchmarks"):
        if top in parts:
            here = root.joinpath(*parts[parts.index(top):])
            if here.exists():
                return str(here)
    return arg


def rerun_command(result: dict, run_dir: Path, pin: bool = True, root: Path = ROOT) -> list[str]:
    """The recorded command with this checkout's interpreter and ``--out run_dir``; without
    ``pin`` (the row's own commit, which still has the defaults the row ran with) nothing is
    added to it. Files of another checkout the command names are read from ``root``."""
    args = shlex.split(result["command"])
    try:
        at = args.index("mmkgrec.cli")
    except ValueError:
        raise SystemExit(f"reproduce: {result['job']}: the command does not run mmkgrec.cli")
    cmd = [sys.executable, "-m", *[_in_checkout(a, root) for a in args[at:]]]
    if "--out" in cmd:
        cmd[cmd.index("--out") + 1] = str(run_dir)
    else:
        cmd += ["--out", str(run_dir)]
    # a key whose default changed after the row was stored, recorded in its config but not in
    # its command, is pinned to the recorded value (image_encoder: descriptor, before Lite1;
    # link_item_map: null, the ML-100K .link as given, before it was re-keyed)
    config = result.get("config") or {}
    for key, before in PINNED.items() if pin else ():
        value = config.get(key, before)
        if value is not _SKIP and not any(a.startswith(f"{key}=") for a in cmd):
            cmd += ["--set", f"{key}={json.dumps(value)}"]
    return cmd


def why_not(result: dict) -> str | None:
    if result.get("library") != "mmkgrec":
        return f"a {result.get('library')} row (only our library's rows are rerun here)"
    if "command" not in result or "test" not in result:
        return "no recorded command or test metrics"
    if result["job"].endswith("-speed"):
        return "a speed row (its timings are not expected to repeat)"
    if (result.get("config") or {}).get("device", "cpu") != "cpu":
        return "a GPU row (exempt)"
    return None


def missing_config(result: dict) -> str | None:
    """Why this checkout cannot rerun the row: a ``--config`` file its command reads is not here
    (e.g. a tune's best.yaml in the git-ignored work folder of the machine that ran it). Apart
    from :func:`why_not`, which says what kind of row is rerun at all and so must not depend on
    the files of one machine."""
    args = shlex.split(result["command"])
    configs = [args[k + 1] for k, a in enumerate(args[:-1]) if a == "--config"]
    gone = [c for c in configs if not (ROOT / _in_checkout(c)).exists()]
    return f"the config file its command reads, {gone[0]}, is not in this checkout" if gone else None


def compare(old: dict, new: dict) -> dict:
    keys = sorted(set(old) & set(new))
    diffs = {k: abs(float(old[k]) - float(new[k])) for k in keys}
    return {"identical": all(old[k] == new[k] for k in keys) and set(old) == set(new),
            "max_abs_diff": max(diffs.values(), default=0.0),
            "compared": keys}


def feature_stores(cache: Path) -> dict:
    """``{"<dataset>/<modality>/<encoder>": {"version", "sha256"}}`` of the feature stores under
    the cache root ``cache`` (the SHA-256 of the vectors in item-id order)."""
    import hashlib

    import numpy as np

    out = {}
    for man_path in sorted(cache.glob("features/*/*/*/manifest.json")):
        man = json.loads(man_path.read_text())
        ids = [str(i) for i in man["ids"]]
        matrix = np.load(man_path.parent / man["matrix"]) if man["n_rows"] else np.zeros((0, 0))
        h = hashlib.sha256()
        for k in sorted(range(len(ids)), key=ids.__getitem__):
            h.update(ids[k].encode() + b"\0" + np.ascontiguousarray(matrix[k]).tobytes())
        key = "/".join(man_path.parent.relative_to(cache / "features").parts)
        out[key] = {"version": man["encoder"]["version"], "sha256": h.hexdigest()}
    return out


def control_run(result: dict, run_dir: Path, log: Path) -> dict:
    """The row's command run by the row's own commit (a temporary detached worktree, a fresh
    feature cache): ``{"git_sha", "test", "command"}``."""
    sha = str(result.get("git_sha") or "").removesuffix("-dirty")
    if not sha:
        raise SystemExit(f"reproduce: {result['job']}: no recorded git_sha to rerun")
    with tempfile.TemporaryDirectory(prefix="mmkgrec-control-") as tmp:
        tree, cache = Path(tmp) / "tree", Path(tmp) / "cache"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), sha], cwd=ROOT,
                       check=True, capture_output=True)
        try:
            if run_dir.exists():
                shutil.rmtree(run_dir)
            cmd = rerun_command(result, run_dir, pin=False, root=tree)
            run_cmd(cmd, log, env={"PYTHONPATH": str(tree / "src"), "MMKGREC_CACHE": str(cache)})
            features = feature_stores(cache)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT,
                           capture_output=True)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {"git_sha": sha, "test": metrics["test"], "command": relative_command(cmd, ROOT),
            "features": features}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", type=Path, help="stored result JSON files")
    ap.add_argument("--control", action="store_true",
                    help="also rerun each row with its own commit (see above)")
    args = ap.parse_args(argv)
    for path in args.results:
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            print(f"reproduce: {path}: unreadable result file ({e})", file=sys.stderr)
            return 2
        reason = why_not(result) or missing_config(result)
        if reason:
            print(f"reproduce: {path}: skipped, {reason}")
            continue
        out = OUT / f"{result['suite']}-{result['job']}.json"
        if out.exists():
            print(f"reproduce: {out.relative_to(ROOT)} exists, skipped")
            continue
        run_dir = WORK / "reproduce" / result["job"]
        if run_dir.exists():  # an earlier, killed rerun of ours: start again
            import shutil

            shutil.rmtree(run_dir)
        cmd = rerun_command(result, run_dir)
        features = None
        if args.control:  # a fresh feature cache, as the control gets
            with tempfile.TemporaryDirectory(prefix="mmkgrec-cache-") as cache:
                run_cmd(cmd, WORK / "reproduce" / f"{result['job']}.log",
                        env={"MMKGREC_CACHE": cache})
                features = feature_stores(Path(cache))
        else:
            try:
                run_cmd(cmd, WORK / "reproduce" / f"{result['job']}.log")
            except subprocess.CalledProcessError as e:
                log = (WORK / "reproduce" / f"{result['job']}.log").relative_to(ROOT)
                print(f"reproduce: {path}: the rerun failed (exit {e.returncode}); see {log}",
                      file=sys.stderr)
                return 1
        metrics = json.loads((run_dir / "metrics.json").read_text())
        check = compare(result["test"], metrics["test"])
        row = {"suite": result["suite"], "job": result["job"],
               "source": str(path.resolve().relative_to(ROOT)),
               "source_git_sha": result.get("git_sha"), "git_sha": git_sha(),
               "stored": result["test"], "rerun": metrics["test"], **check,
               "command": relative_command(cmd, ROOT)}
        if args.control:
            row["features"] = features
            control = control_run(result, WORK / "reproduce" / "control" / result["job"],
                                  WORK / "reproduce" / "control" / f"{result['job']}.log")
            vs_stored = compare(result["test"], control["test"])
            vs_rerun = compare(metrics["test"], control["test"])
            row["control"] = {**control, "identical_to_stored": vs_stored["identical"],
                              "max_abs_diff_to_stored": vs_stored["max_abs_diff"],
                              "identical_to_rerun": vs_rerun["identical"],
                              "max_abs_diff_to_rerun": vs_rerun["max_abs_diff"]}
        write_json(out, row)
        print(f"reproduce: {result['suite']}/{result['job']}: "
              + ("identical" if check["identical"] else f"max |diff| {check['max_abs_diff']:.3g}")
              + (f"; its own commit {row['control']['git_sha'][:10]}: "
                 + ("identical" if row["control"]["identical_to_stored"] else
                    f"max |diff| {row['control']['max_abs_diff_to_stored']:.3g}")
                 if args.control else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
