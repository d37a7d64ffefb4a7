"""Loading the benchmark results and formatting their tables: shared by every section."""

from __future__ import annotations

import importlib
import json
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
OUT = ROOT / "docs" / "BENCHMARKS.md"
ACC_KEYS = ["ndcg@10", "recall@10", "mrr@10", "hit@10", "ndcg@20", "recall@20"]
SEQ_KEYS = ["hit@10", "hit@20", "ndcg@10", "ndcg@20", "mrr@20"]
KG_KEYS = ["recall@20", "mrr@20", "ndcg@20", "recall@10", "ndcg@10"]

for _p in (ROOT / "src", ROOT / "benchmarks"):  # mmkgrec, and the queues' own definitions
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))


#: how commands name the queues' git-ignored scratch folder ``benchmarks/work`` (the document's
#: header says so): a shell variable, so that no command reads like one machine's path
WORK_VAR = "$WORK"


def command(r: dict) -> str:
    """The command a result records, relative to the repository it ran in (``common``), with the
    scratch folder written as :data:`WORK_VAR`."""
    from common import relative_command

    return work_path(relative_command(r["command"]))


def load_cell(r: dict) -> str:
    """The 1-minute load average recorded before and after a timed run, ``"before / after"``
    (``not recorded`` for runs that predate the fields)."""
    if "load_before" not in r:
        return "not recorded"
    return f"{r['load_before'][0]:.1f} / {r['load_after'][0]:.1f}"


def load_sentence(runs: list[dict]) -> str:
    """In words, the 1-minute load averages recorded before and after ``runs`` (their range, and
    how many runs predate the fields), for a section whose timings a busy machine would slow."""
    loads = [x for r in runs if "load_before" in r
             for x in (r["load_before"][0], r["load_after"][0])]
    missing = sum("load_before" not in r for r in runs)
    if not loads:
        return f"The machine's load during these {len(runs)} runs was not recorded."
    text = (f"The machine's 1-minute load average, recorded before and after each run: "
            f"{min(loads):.1f} to {max(loads):.1f}")
    return text + (f" ({missing} of {len(runs)} runs predate the record)." if missing else ".")


def work_path(text: str) -> str:
    """``text`` with the scratch folder ``benchmarks/work`` written as :data:`WORK_VAR`."""
    return text.replace("benchmarks/work/", WORK_VAR + "/")


class Result(dict):
    """One result file's JSON object, which remembers the file it came from (``source``, relative
    to the repository) so that a figure can name it when a field is missing."""

    def __init__(self, data: dict, source: str):
        super().__init__(data)
        self.source = source


def load(suite: str) -> list[dict]:
    """The results of ``suite``, one :class:`Result` per JSON file, in file-name order."""
    return [Result(json.loads(p.read_text()), _shown(p)) for p in sorted((RESULTS / suite).glob("*.json"))]


def _shown(path: Path) -> str:
    """A result file as messages name it: relative to the repository where it lies inside it."""
    return str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


def suite_runs(name: str):
    """A benchmark queue's module (its own definitions: rows, rates, budget) and its results."""
    return importlib.import_module(name), load(name)


def mean_std(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return float("nan"), float("nan")
    return float(np.mean(xs)), float(np.std(xs, ddof=1)) if len(xs) > 1 else float("nan")


def fmt(m, s=None, nd=4):
    if m != m:
        return "-"
    return f"{m:.{nd}f}" if s is None or s != s else f"{m:.{nd}f} ± {s:.{nd}f}"  # one value: no ±


def set_str(values) -> str:
    return "{" + ", ".join(str(v) for v in values) + "}"


def cells(rs: list[dict], keys: list[str]) -> list[str]:
    """``mean ± std`` over runs of each test metric of ``keys``."""
    return [fmt(*mean_std([r["test"][k] for r in rs])) for k in keys]


def seed_cells(rs: list[dict]) -> tuple[list[str], float]:
    """``mean ± std`` over seeds of each ACC_KEYS test metric, and the median s/epoch."""
    out = cells(rs, ACC_KEYS)
    secs = [r["timing"]["train_epoch_s"] for r in rs if r["timing"].get("train_epoch_s")]
    return out, statistics.median(secs) if secs else float("nan")


def seed_row(name: str, lead: list, rs: list[dict]) -> str:
    """A table line: ``| name | lead... | seeds | mean ± std of each ACC_KEYS | s/epoch |``
    (:func:`seed_cells`); a row without runs reads ``not run`` (its lead cells as given)."""
    if not rs:
        return f"| {name} | " + " | ".join([*map(str, lead), "0", *["not run"] * len(ACC_KEYS), "-"]) + " |"
    cs, se = seed_cells(rs)
    return f"| {name} | " + " | ".join([*map(str, lead), str(len(rs)), *cs, f"{se:.3f}"]) + " |"


def epoch_times(rs: list[dict]) -> tuple[float, float]:
    """Median s/epoch (training) and median seconds to the best epoch's end (training plus
    validation of every epoch up to it, from the per-epoch timing)."""
    per_epoch = [r["timing"]["train_epoch_s"] for r in rs if r["timing"].get("train_epoch_s")]
    to_best = [(r["best_epoch"] + 1) * (r["timing"]["train_epoch_s"] + r["timing"].get("eval_s", 0.0))
               for r in rs if r["timing"].get("train_epoch_s") and r.get("best_epoch") is not None]
    med = lambda xs: statistics.median(xs) if xs else float("nan")  # noqa: E731
    return med(per_epoch), med(to_best)


def best_baseline(by_row: dict, rows, key: str) -> str | None:
    """The row of ``rows`` with the best mean test ``key`` over its runs (None without rows)."""
    return max(rows, key=lambda r: np.mean([x["test"][key] for x in by_row[r]]), default=None)


def user_means(r: dict, keys) -> dict:
    """RecBole's sequential metrics are means over test rows (one per target); ours are means over
    users of each user's mean over targets. The per-row values RecBole's runner keeps, averaged
    per user first, give the figure that compares with ours."""
    pu = r["per_user"]
    users = np.asarray(pu["user_ids"], dtype=str)
    uniq, inv = np.unique(users, return_inverse=True)
    out = {}
    for k in keys:
        v = np.asarray(pu[k], dtype=float)
        out[k] = float(np.mean(np.bincount(inv, v) / np.bincount(inv)))
    return out


def target_cells(ours: list[float], ref: list[float]) -> str:
    """``difference | allowed | met |`` cells of the side-by-side target: our mean at least the
    reference library's minus max(0.005, the reference's std over seeds)."""
    d = np.mean(ours) - np.mean(ref)
    sd = mean_std(ref)[1]
    allowed = max(0.005, sd if sd == sd else 0.0)
    return f"{d:+.4f} | -{allowed:.4f} | {'yes' if d >= -allowed else 'no'} |"


def header(head: str) -> list[str]:
    """A markdown table's header line and the rule under it."""
    return [head, "|" + "---|" * (head.count("|") - 1)]
