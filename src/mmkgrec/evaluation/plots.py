"""Figures of finished runs, and the one way this project writes a figure.

:func:`draw` is the mechanism every figure goes through (``mmkgrec compare --plot`` here, the
figures of ``docs/BENCHMARKS.md`` in ``benchmarks/reporting/figures.py``): matplotlib imported
only when a figure is drawn, with a one-line error where it is missing; a fixed style (DejaVu Sans,
shipped with matplotlib, so that no machine substitutes its own font); no timestamp, software
version or random id in the files (PNG and PDF metadata off, SVG ids salted with a constant), so
the same inputs give the same bytes; and every file written under a temporary name in its folder,
then renamed, so that a failure leaves the old file or none, never half a figure.

:func:`plot_runs` is ``mmkgrec compare RUN... --plot FILE``: the validation curves of the compared
runs and the distribution of their per-user test metric, rows grouped as the table groups them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import MMKGRecError

DPI = 150  # pixels per inch of the PNGs: a figure of (w, h) inches is (w * DPI, h * DPI) pixels
FORMATS = ("png", "svg", "pdf")
STYLE = {
    "font.family": "DejaVu Sans",
    "mathtext.fontset": "dejavusans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.axisbelow": True,
    "svg.hashsalt": "mmkgrec",  # SVG ids from a constant salt and the content, not at random
    "svg.fonttype": "path",  # glyphs as paths: the SVG looks the same without the font installed
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
}
# what each format would otherwise stamp into the file: a date, the writing software's version
METADATA = {"png": {"Software": None},
            "svg": {"Date": None, "Creator": None},
            "pdf": {"CreationDate": None, "ModDate": None, "Creator": None, "Producer": None}}


def _matplotlib():
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError:
        raise MMKGRecError("drawing figures needs matplotlib, which is not installed: "
                           "pip install 'mmkgrec[bench]'") from None
    return matplotlib, Figure


def figure_format(path) -> str:
    """The format a figure file's suffix names (``png``, ``svg`` or ``pdf``); a clear error for
    any other."""
    fmt = Path(path).suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise MMKGRecError(f"{path}: a figure is written as " + ", ".join(f".{f}" for f in FORMATS)
                           + f", not '{Path(path).suffix or 'no suffix'}'")
    return fmt


def draw(paint: Callable, size: tuple[float, float], paths: Sequence) -> list[Path]:
    """Draw one figure of ``size`` inches (``paint(fig)`` fills a matplotlib Figure) and write it
    to each of ``paths``, the format named by the suffix. Byte-stable, written whole (see the
    module docstring). Returns the paths written."""
    paths = [Path(p) for p in paths]
    fmts = [figure_format(p) for p in paths]
    matplotlib, Figure = _matplotlib()
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=size, dpi=DPI, layout="constrained")
        paint(fig)
        for path, fmt in zip(paths, fmts):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            try:
                fig.savefig(tmp, format=fmt, dpi=DPI, metadata=METADATA[fmt])
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
    return paths


def pixel_size(size: tuple[float, float]) -> tuple[int, int]:
    """The (width, height) in pixels of the PNG of a figure of ``size`` inches."""
    return round(size[0] * DPI), round(size[1] * DPI)


def metric_label(key: str) -> str:
    """``ndcg@10`` -> ``NDCG@10``, ``recall@20`` -> ``Recall@20``: a metric as text and figures
    name it."""
    name, _, k = key.partition("@")
    return {"ndcg": "NDCG", "mrr": "MRR", "auc": "AUC"}.get(name, name.capitalize()) + (f"@{k}" if k else "")


def survival(ax, values, label: str, colour=None) -> None:
    """The share of users whose value is at least x, against x: one step line. For metrics that
    are zero for many users (NDCG@10 with one target) it shows what a box plot hides."""
    v = np.sort(np.asarray(values, dtype=float))
    v = v[np.isfinite(v)]
    if v.size == 0:
        return
    share = 1.0 - np.arange(v.size) / v.size  # at v[i], the share of values >= v[i] (ties aside)
    ax.step(np.r_[v, v[-1]], np.r_[share, 0.0], where="post", label=label, color=colour)


# ------------------------------------------------------------------ mmkgrec compare --plot


def _curve(run_dir: Path, metrics: dict, metric: str) -> tuple[list[int], list[float]]:
    """The epochs and validation ``metric`` of a run's history (epochs without a validation pass
    left out); a clear error where the run has none."""
    where = Path(run_dir) / "metrics.json"
    history = metrics.get("history")
    if not history:
        raise MMKGRecError(f"{where}: no 'history' field (runs written before per-epoch history "
                           "was kept): its validation curve cannot be drawn")
    pts = [(int(h.get("epoch", j)), float(h["valid"][metric])) for j, h in enumerate(history)
           if isinstance(h.get("valid"), dict) and metric in h["valid"]]
    if not pts:
        raise MMKGRecError(f"{where}: no validation '{metric}' in its 'history' (validated on "
                           f"{metrics.get('valid') and sorted(metrics['valid']) or 'nothing'})")
    return [e for e, _ in pts], [v for _, v in pts]


def _per_user(run_dir: Path, per_user: dict, metric: str) -> tuple[np.ndarray, np.ndarray]:
    if "user_ids" not in per_user or metric not in per_user:
        raise MMKGRecError(f"{Path(run_dir) / 'per_user_test.npz'}: no per-user '{metric}' "
                           "(missing file or field): the per-user distribution cannot be drawn")
    return np.asarray(per_user["user_ids"], dtype=str), np.asarray(per_user[metric], dtype=float)


def plot_runs(run_dirs: list, metric: str, path) -> Path:
    """``mmkgrec compare RUN... --plot FILE``: left, each run's validation ``metric`` by epoch
    (one colour per row of the compare table, one line per seed); right, the share of users whose
    test ``metric`` is at least x, each user's value averaged over the row's seeds. Everything is
    read and checked before anything is written."""
    from .metrics import canonical
    from .report import configuration_rows, read_run

    metric = canonical(metric)
    figure_format(path)
    runs = [read_run(d) for d in run_dirs]
    rows = []
    for row in configuration_rows(run_dirs, runs):
        name = (f"{Path(run_dirs[row[0]]).name} ({runs[row[0]][0].get('model', '?')}"
                + (f", {len(row)} seeds)" if len(row) > 1 else ")"))
        curves = [_curve(run_dirs[j], runs[j][0], metric) for j in row]
        ids, vals = zip(*(_per_user(run_dirs[j], runs[j][1], metric) for j in row))
        uniq, inv = np.unique(np.concatenate(ids), return_inverse=True)
        v = np.concatenate(vals)
        ok = np.isfinite(v)
        sums = np.bincount(inv[ok], v[ok], minlength=len(uniq))
        counts = np.bincount(inv[ok], minlength=len(uniq))
        users = sums[counts > 0] / counts[counts > 0]
        rows.append((name, curves, users))
    name_m = metric_label(metric)

    def paint(fig):
        left, right = fig.subplots(1, 2)
        for k, (name, curves, users) in enumerate(rows):
            colour = f"C{k % 10}"
            for j, (epochs, values) in enumerate(curves):
                left.plot(epochs, values, color=colour, marker="o", markersize=2.5, linewidth=1.2,
                          label=name if j == 0 else None)
            survival(right, users, f"{name}: mean {users.mean():.4f}, {users.size} users", colour)
        left.set(xlabel="epoch", ylabel=f"validation {name_m}",
                 title=f"Validation {name_m} by epoch (one line per seed)")
        left.xaxis.get_major_locator().set_params(integer=True)
        right.set(xlabel=f"test {name_m} of a user (mean over the row's seeds)",
                  ylabel="share of users at or above", ylim=(0, 1.02),
                  title=f"Per-user test {name_m}")
        left.legend(loc="lower right")
        right.legend(loc="upper right")

    return draw(paint, (11.0, 4.2), [path])[0]
