"""Tables of finished runs with paired significance tests over users (and over seeds).

Runs whose resolved configs differ only in the seed (and in where or how verbosely they ran) are
seeds of one row. Each row is tested against the best row with the tests of
:mod:`.significance`: over users, each user's mean over the seeds both rows ran
(``paired_ttest_user_means``), and over those seeds' means; the p-values of each test are
Holm-adjusted over the table's comparisons.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import yaml

from ..errors import UnknownNameError
from .metric_names import lower_is_better
from .metrics import canonical
from .significance import holm, paired_ttest, paired_ttest_user_means

# config keys that differ between seeds of one configuration, or only say where and how it ran
REPLICATE_KEYS = frozenset({"seed", "split_seed", "device", "threads", "show_progress", "log_level",
                            "eval_batch_size", "data_path"})


def read_run(run_dir: str | Path) -> tuple[dict, dict]:
    """(metrics.json, per-user test metrics with ``user_ids``) of a finished run."""
    from ..runs import RunFileError, read_json

    run_dir = Path(run_dir)
    mpath = run_dir / "metrics.json"
    if not mpath.is_file():
        raise RunFileError(mpath, f"not found: {run_dir} is not a finished run directory")
    metrics = read_json(mpath, "metrics")
    if not isinstance(metrics.get("test"), dict):
        raise RunFileError(mpath, "has no 'test' metrics: not a finished run's metrics.json")
    per_user = {}
    ppath = run_dir / "per_user_test.npz"
    if ppath.is_file():
        try:
            with np.load(ppath, allow_pickle=False) as z:
                per_user = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise RunFileError(ppath, f"unreadable or truncated ({e})") from None
    return metrics, per_user


def _configuration(run_dir: Path, metrics: dict) -> str:
    """What makes a run a row: its resolved config without ``REPLICATE_KEYS`` (the model and
    dataset when the run has no config.yaml)."""
    path = Path(run_dir) / "config.yaml"
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        from ..runs import RunFileError

        raise RunFileError(path, f"unreadable ({str(e).splitlines()[0]})") from None
    if not isinstance(config, (dict, type(None))):
        from ..runs import RunFileError

        raise RunFileError(path, "not a mapping of key: value")
    config = {k: v for k, v in (config or {}).items() if k not in REPLICATE_KEYS}
    config.setdefault("model", metrics.get("model"))
    config.setdefault("dataset", metrics.get("dataset"))
    return json.dumps(config, sort_keys=True, default=str)


def configuration_rows(run_dirs: list, runs: list[tuple[dict, dict]]) -> list[list[int]]:
    """The rows of a comparison: the indices of ``runs`` (as :func:`read_run` returns them) that
    are seeds of one configuration, in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for j, (d, (m, _)) in enumerate(zip(run_dirs, runs)):
        groups.setdefault(_configuration(Path(d), m), []).append(j)
    return list(groups.values())


def _replicates(a: list[tuple[dict, dict]], b: list[tuple[dict, dict]], metric: str):
    """The per-user values of ``metric`` of two rows' runs paired by seed, and each paired seed's
    test figures; two single runs of different seeds pair with each other."""
    by_seed = {m.get("seed"): (m, pu) for m, pu in b}
    pairs = [((m, pu), by_seed[m.get("seed")]) for m, pu in a if m.get("seed") in by_seed]
    if not pairs and len(a) == len(b) == 1:
        pairs = [(a[0], b[0])]
    def ids(pu):  # users, or items where items are the unit (classification)
        return pu["user_ids"] if "user_ids" in pu else pu["item_ids"]

    reps = [(ids(pa), pa[metric], ids(pb), pb[metric]) for (_, pa), (_, pb) in pairs
            if metric in pa and metric in pb]
    seeds = [(ma["test"][metric], mb["test"][metric]) for (ma, _), (mb, _) in pairs]
    return reps, seeds


def compare_runs(run_dirs: list, metric: str = "ndcg@10") -> str:
    """A table of the runs' mean test metrics, seeds of one configuration on one row; each row is
    tested against the best row on ``metric`` over users (each user's mean over the seeds both
    rows ran) and over seeds, with Holm's adjustment over the table's comparisons."""
    try:
        metric = canonical(metric)
    except ValueError as e:
        raise UnknownNameError(f"--metric {metric}: {e}") from None
    runs = [read_run(d) for d in run_dirs]
    keys = list(runs[0][0]["test"])
    if metric not in keys:
        raise UnknownNameError(f"metric '{metric}' not in the runs' test metrics {keys}")
    rows = configuration_rows(run_dirs, runs)
    means = [{k: float(np.mean([runs[j][0]["test"][k] for j in row])) for k in keys} for row in rows]
    sign = -1.0 if lower_is_better(metric) else 1.0  # the best row: lowest RMSE, highest NDCG
    best = int(np.argmax([sign * m[metric] for m in means]))
    tests = []
    for g, row in enumerate(rows):
        if g == best:
            tests.append(None)
            continue
        reps, seeds = _replicates([runs[j] for j in row], [runs[j] for j in rows[best]], metric)
        users = paired_ttest_user_means(reps)["p"] if reps else float("nan")
        over_seeds = paired_ttest(*zip(*seeds))["p"] if len(seeds) > 1 else float("nan")
        tests.append((users, over_seeds))
    done = [t for t in tests if t is not None]
    adjusted = iter(zip(holm([t[0] for t in done]), holm([t[1] for t in done])))

    def p(x: float) -> str:
        return "n/a" if x != x else f"{x:.3g}"

    head = (["run", "model", "seeds"] + keys
            + [f"p vs best ({metric})", "Holm", "p over seeds", "Holm"])
    lines = [head]
    for g, row in enumerate(rows):
        m0 = runs[row[0]][0]
        name = str(run_dirs[row[0]]) + (f" (+{len(row) - 1})" if len(row) > 1 else "")
        if tests[g] is None:
            cells = ["best", "", "", ""]
        else:
            q = next(adjusted)
            cells = [p(tests[g][0]), p(q[0]), p(tests[g][1]), p(q[1])]
        lines.append([name, m0["model"], str(len(row))] + [f"{means[g][k]:.4f}" for k in keys] + cells)
    widths = [max(len(r[c]) for r in lines) for c in range(len(head))]
    table = "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in lines)
    return table + (
        f"\n\np vs best: paired t-test over users, each user's mean over the seeds both rows ran; "
        f"p over seeds: over those seeds' test {metric} (two or more); Holm: adjusted over the "
        f"{len(done)} comparison{'s' * (len(done) != 1)}.")
