"""Resolve every packaged configuration, and every benchmark run's command, into one JSON file,
and compare two such files: the check that a change to the configuration machinery leaves every
effective value as it was (the benchmark rows must reproduce exactly).

    python tools/config_resolution.py dump OUT.json [--src SRC]   # SRC: a checkout's src/ folder
    python tools/config_resolution.py compare BEFORE.json AFTER.json
    python tools/config_resolution.py records DUMP.json     # against the benchmark records

``dump`` resolves model x dataset x variant for every model config, every packaged dataset config
(plus none, as for a folder of one's own) and every packaged variant (plus none), and the
``--model/--dataset/--config/--set`` of every mmkgrec run recorded under benchmarks/results. A
combination that is refused is recorded as refused. ``compare`` prints every difference and exits
1 if there is any: a value that changed, a key that appeared or disappeared, or a combination that
was accepted before and is refused now (or the other way round). ``records`` compares each
benchmark run's resolution in a dump with the config the run recorded (keys added since a run was
recorded are absent from its record and not counted).
"""

from __future__ import annotations

import argparse
import glob
import json
import shlex
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _resolve(load_config, model, dataset, file, overrides):
    try:
        return load_config(model, dataset, file, overrides).to_dict()
    except Exception as e:  # noqa: BLE001 (a refusal is a result to compare)
        return {"<refused>": f"{type(e).__name__}: {e}"}


def _command_args(command: str):
    """(model, dataset, variant name or None, --set list) of a ``mmkgrec train`` command."""
    argv = shlex.split(command)
    if "train" not in argv:
        return None
    argv = argv[argv.index("train") + 1:]
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--model")
    p.add_argument("--dataset")
    p.add_argument("--config")
    p.add_argument("--set", action="append", default=[])
    args, _ = p.parse_known_args(argv)
    return args.model, args.dataset, args.config, args.set


def dump(out: Path, src: Path | None) -> None:
    if src is not None:
        sys.path.insert(0, str(src.resolve()))
    import mmkgrec
    from mmkgrec.config import load_config

    pkg = Path(mmkgrec.__file__).parent
    print(f"resolving with {pkg}", file=sys.stderr)
    configs = pkg / "configs"
    models = sorted(p.stem for p in (configs / "model").glob("*.yaml"))
    datasets = [None, *sorted(p.stem for p in (configs / "dataset").glob("*.yaml"))]
    variants = [None, *sorted(p.stem for p in (configs / "variant").glob("*.yaml"))]
    result = {}
    for m in models:
        for d in datasets:
            for v in variants:
                file = None if v is None else configs / "variant" / f"{v}.yaml"
                result[f"grid {m} {d} {v}"] = _resolve(load_config, m, d, file, None)
    for f in sorted(glob.glob(str(REPO / "benchmarks/results/**/*.json"), recursive=True)):
        rec = json.loads(Path(f).read_text())
        if not isinstance(rec, dict) or rec.get("library") != "mmkgrec" or "command" not in rec:
            continue
        args = _command_args(rec["command"])
        if args is None:
            continue
        model, dataset, cfg, sets = args
        file = None if cfg is None else configs / "variant" / Path(cfg).name
        name = f"bench {Path(f).relative_to(REPO)}"
        result[name] = _resolve(load_config, model, dataset, file, sets)
    out.write_text(json.dumps(result, indent=1, sort_keys=True, default=repr))
    refused = sum("<refused>" in v for v in result.values())
    print(f"{len(result)} configurations ({refused} refused) written to {out}", file=sys.stderr)


def compare(before: Path, after: Path) -> int:
    a, b = json.loads(before.read_text()), json.loads(after.read_text())
    problems = []
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b:
            problems.append(f"{name}: only in {'after' if name in b else 'before'}")
            continue
        x, y = a[name], b[name]
        rx, ry = "<refused>" in x, "<refused>" in y
        if rx or ry:
            if rx != ry:
                problems.append(f"{name}: {'refused' if ry else 'accepted'} now, "
                                f"{'refused' if rx else 'accepted'} before "
                                f"({y.get('<refused>') or x.get('<refused>')})")
            continue
        for k in sorted(set(x) | set(y)):
            if k not in x or k not in y:
                problems.append(f"{name}: key {k} only {'after' if k in y else 'before'}")
            elif json.dumps(x[k]) != json.dumps(y[k]):
                problems.append(f"{name}: {k} = {x[k]!r} before, {y[k]!r} after")
    accepted = [n for n in a if "<refused>" not in a[n]]
    same = sum(1 for n in accepted if n in b and a[n] == b[n])
    print(f"{len(a)} configurations before, {len(b)} after: {len(accepted)} accepted before, "
          f"{same} of them identical after; {len(a) - len(accepted)} refused before; "
          f"{len(problems)} differences")
    for p in problems:
        print("  " + p)
    return 1 if problems else 0


def records(dump_file: Path) -> int:
    dumped = json.loads(dump_file.read_text())
    n, problems = 0, []
    for name, resolved in sorted(dumped.items()):
        if not name.startswith("bench "):
            continue
        n += 1
        stored = json.loads((REPO / name[len("bench "):]).read_text())["config"]
        if "<refused>" in resolved:
            problems.append(f"{name}: refused: {resolved['<refused>']}")
            continue
        for k, v in sorted(stored.items()):
            if json.dumps(v) != json.dumps(resolved.get(k, "<missing>")):
                problems.append(f"{name}: {k} = {v!r} recorded, {resolved.get(k, '<missing>')!r} now")
    print(f"{n} benchmark records; {len(problems)} values that differ from what they recorded")
    for p in problems:
        print("  " + p)
    return 1 if problems else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump")
    d.add_argument("out", type=Path)
    d.add_argument("--src", type=Path, help="a checkout's src/ folder (default: the installed package)")
    c = sub.add_parser("compare")
    c.add_argument("before", type=Path)
    c.add_argument("after", type=Path)
    r = sub.add_parser("records")
    r.add_argument("dump", type=Path)
    args = p.parse_args(argv)
    if args.cmd == "dump":
        dump(args.out, args.src)
        return 0
    if args.cmd == "records":
        return records(args.dump)
    return compare(args.before, args.after)


if __name__ == "__main__":
    sys.exit(main())
