"""The figures of docs/BENCHMARKS.md, drawn from the same result files as its tables.

A section module embeds a figure beside its table with :func:`embed`, giving it a name (the file
stem under ``docs/img/``) and a function that reads what the figure needs from the results and
returns a :class:`Plan` (title, caption, size and a ``paint`` function), or ``None`` where there
is nothing to draw yet. Reading comes first and goes through :func:`need`: a result file that
lacks a field the figure needs raises :class:`MissingField`, and the figure is skipped (one line
on stderr naming the file and the field; the document says which figure is missing and why)
before anything is drawn. ``benchmarks/report.py`` collects the plans while it builds the document
(:func:`collect`) and then draws them (:func:`write`) through ``mmkgrec.evaluation.plots.draw``:
PNG and SVG, fixed style, no timestamps, each file written whole.

Captions name the paper figure a figure mirrors and what differs: the paper's data set and
features against ours, read from the results' own configs (:func:`setting`), so that figures
redrawn from new results say what those results used.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from mmkgrec.evaluation.plots import draw, metric_label

from .tables import OUT, epoch_times, mean_std

IMG = OUT.parent / "img"
FORMATS = ("png", "svg")
MMRACLKAL = "MM-RACL-KAL"
MULTIKG4REC = "Multi-KG4Rec"


class MissingField(Exception):
    """A result file lacks a field a figure needs."""

    def __init__(self, file: str, field: str):
        super().__init__(f"{file} has no field '{field}'")
        self.file, self.field = file, field


def source(r: dict) -> str:
    """The result file ``r`` was read from (``tables.Result.source``)."""
    return getattr(r, "source", None) or f"the result of job {r.get('job', '?')}"


def need(r: dict, *keys):
    """``r[k0][k1]...``, or :class:`MissingField` naming ``r``'s file and the dotted field."""
    x = r
    for j, k in enumerate(keys):
        if isinstance(x, list) and isinstance(k, int) and 0 <= k < len(x):
            x = x[k]
            continue
        if not isinstance(x, dict) or x.get(k) is None:
            raise MissingField(source(r), ".".join(str(k) for k in keys[:j + 1]))
        x = x[k]
    return x


@dataclass
class Plan:
    """A figure ready to draw: ``paint(fig)`` draws on a matplotlib Figure of ``size`` inches
    from data already read."""

    title: str
    caption: str
    size: tuple[float, float]
    paint: Callable


_plans: dict | None = None  # name -> Plan (None: skipped) of the document being built


@contextmanager
def collect():
    """Collect the figures the sections embed while a document is built: yields the dict
    ``name -> Plan`` (``None`` for a figure skipped for a missing field)."""
    global _plans
    saved, _plans = _plans, {}
    try:
        yield _plans
    finally:
        _plans = saved


def embed(name: str, build: Callable[[], Plan | None]) -> list[str]:
    """The document's lines for figure ``name``: the PNG, and a caption linking the SVG; or, where
    a result lacks a field the figure needs, a line saying so (and one on stderr); nothing where
    ``build`` has nothing to draw."""
    try:
        plan = build()
    except MissingField as e:
        print(f"figure {name} skipped: {e}", file=sys.stderr)
        if _plans is not None:
            _plans[name] = None
        return ["", f"*Figure `{name}` not drawn: `{e.file}` has no field `{e.field}`.*"]
    if plan is None:
        return []
    if _plans is not None:
        _plans[name] = plan
    return ["", f"![{plan.title}](img/{name}.png)", "",
            f"*Figure `{name}`: {plan.caption}* ([SVG](img/{name}.svg))"]


def write(plans: dict, folder: Path | None = None) -> list[Path]:
    """Draw every planned figure into ``folder`` (default ``docs/img``) as PNG and SVG, and remove
    the files of those skipped, so that no figure outlives the results it was drawn from. Returns
    the files written."""
    folder = IMG if folder is None else Path(folder)
    written = []
    for name, plan in sorted(plans.items()):
        paths = [folder / f"{name}.{fmt}" for fmt in FORMATS]
        if plan is None:
            for p in paths:
                p.unlink(missing_ok=True)
            continue
        written += draw(_titled(plan), plan.size, paths)
    return written


def _titled(plan: Plan):
    def paint(fig):
        fig.suptitle(plan.title, fontsize=10)
        plan.paint(fig)
    return paint


# ------------------------------------------------------------------ what the figures say


ENCODERS = {"minilm": "all-MiniLM-L6-v2", "descriptor": "hand-crafted poster descriptor"}


def encoder_label(spec: str) -> str:
    """An encoder spec as a caption says it: the project's default encoders by name, a feature
    file by its file name (no machine path), any other spec by its name and its path's last
    part."""
    if spec in ENCODERS:
        return ENCODERS[spec]
    prefix, _, arg = str(spec).partition(":")
    if prefix == "file":
        return f"features read from {Path(arg).name}"
    return f"{prefix} ({Path(arg.split(':')[0]).name})" if arg else prefix


def setting(runs: list[dict], modalities: bool = True) -> str:
    """``ml-100k; text: all-MiniLM-L6-v2; image: hand-crafted poster descriptor``: the data set
    and the feature encoders of ``runs``, from their configs (a reference library's runs, which
    have no encoders, add only their data set)."""
    def values(key):
        return sorted({str(r["config"][key]) for r in runs if (r.get("config") or {}).get(key)})

    parts = [", ".join(sorted({str(need(r, "dataset")) for r in runs}))]
    if modalities:
        for m in ("text", "image"):
            specs = values(f"{m}_encoder")
            if specs:
                parts.append(f"{m}: " + " / ".join(encoder_label(s) for s in specs))
    return "; ".join(parts)


def mirrors(paper: str, figure: str, theirs: str, ours: str) -> str:
    """The caption's sentence on the paper figure a figure mirrors and what differs."""
    return f"Mirrors {paper}'s {figure} ({theirs}); here: {ours}."


# ------------------------------------------------------------------ drawing primitives


def seed_stats(runs: list[dict], *keys) -> tuple[float, float, int]:
    """Mean, std (NaN with one run) and count over ``runs`` of the field ``keys``."""
    m, s = mean_std([float(need(r, *keys)) for r in runs])
    return m, s, len(runs)


def seeds_note(n: int) -> str:
    return f"{n} seed{'s' * (n != 1)}"


def bars(ax, labels: list[str], series: list[tuple[str, list, list]], ylabel: str,
         annotate: bool = True) -> None:
    """Vertical bars, one group per label and one bar per series ``(name, means, stds)``, with
    error bars of ± one std where there is one (two seeds or more)."""
    n = len(series)
    width = 0.8 / n
    x = np.arange(len(labels))
    for k, (name, means, stds) in enumerate(series):
        pos = x - 0.4 + width * (k + 0.5)
        means, stds = np.asarray(means, dtype=float), np.asarray(stds, dtype=float)
        drawn = ax.bar(pos, means, width, label=name, color=f"C{k % 10}")
        has = np.isfinite(stds)
        if has.any():
            ax.errorbar(pos[has], means[has], yerr=stds[has], fmt="none", ecolor="black",
                        capsize=3, linewidth=1)
        if annotate:
            ax.bar_label(drawn, labels=[f"{m:.4f}" for m in means], fontsize=6.5, padding=2)
    ax.set_xticks(x, labels)
    ax.set_ylabel(ylabel)
    ax.margins(y=0.12)
    if n > 1:
        ax.legend()


def curves(ax, rows: list[tuple[str, list[tuple[list, list]]]], ylabel: str) -> None:
    """Validation curves: one colour per row, one line per seed ``(epochs, values)``."""
    styles = ("-", "--", ":")
    for k, (name, lines) in enumerate(rows):
        colour, style = f"C{k % 10}", styles[(k // 10) % len(styles)]  # past ten rows: dashed
        for j, (epochs, values) in enumerate(lines):
            ax.plot(epochs, values, color=colour, linestyle=style, linewidth=1.1, marker="o",
                    markersize=2, label=name if j == 0 else None)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)


def history(r: dict, metric: str) -> tuple[list[int], list[float]] | None:
    """A run's validation ``metric`` by epoch from its ``history`` (``None`` where the run kept
    no history; epochs without a validation pass left out). A history whose validation entries
    lack the metric is a missing field."""
    h = r.get("history")
    if not h:
        return None
    pts = []
    for j, e in enumerate(h):
        if e.get("valid") is not None:
            pts.append((int(e.get("epoch", j)), float(need(r, "history", j, "valid", metric))))
        elif e.get("valid_score") is not None:  # a reference library's history: its own score
            pts.append((int(e.get("epoch", j)), float(e["valid_score"])))
    if not pts:
        raise MissingField(source(r), f"history.valid.{metric}")
    return [p[0] for p in pts], [p[1] for p in pts]


def curve_rows(by_row: dict, rows, metric: str) -> tuple[list, list[str]]:
    """``(rows for curves(), runs without a history)``: each row's seeds' validation curves, in
    seed order; the runs that kept no per-epoch history are named, not drawn."""
    out, without = [], []
    for row in rows:
        lines = []
        for r in sorted(by_row.get(row, []), key=lambda r: r.get("seed") or 0):
            c = history(r, metric)
            if c is None:
                without.append(Path(source(r)).name)
            else:
                lines.append(c)
        if lines:
            out.append((f"{row} ({seeds_note(len(lines))})", lines))
    return out, without


def without_note(without: list[str]) -> str:
    return (f" Runs that kept no per-epoch history, not drawn: {', '.join(without)}." if without
            else "")


def speed(ax, pairs: list[tuple[str, float, float]], ours: str = "mmkgrec",
          ref: str = "RecBole") -> None:
    """Seconds per epoch of ours beside a reference library's, ``(label, ours_s, ref_s)`` per
    pair, horizontal bars on a log scale, each pair annotated with the ratio."""
    y = np.arange(len(pairs))
    a = np.array([p[1] for p in pairs], dtype=float)
    b = np.array([p[2] for p in pairs], dtype=float)
    ax.set_xscale("log")
    lo = min(a.min(), b.min()) / 5  # where the bars start: a log axis has no zero
    for off, v, name, colour in ((-0.2, a, ours, "C0"), (0.2, b, ref, "C1")):
        ax.barh(y + off, v - lo, 0.4, left=lo, label=name, color=colour)
        for k in range(len(pairs)):
            ax.text(v[k] * 1.1, y[k] + off, f"{v[k]:.3g} s", va="center", fontsize=7)
    edge = ax.get_yaxis_transform()  # x in axes fractions, y in data
    for k in range(len(pairs)):
        ax.text(0.98, y[k], f"{b[k] / a[k]:.1f}x", transform=edge, ha="right", va="center",
                fontsize=8, fontweight="bold")
    ax.set_yticks(y, [p[0] for p in pairs])
    ax.invert_yaxis()
    ax.set_xlabel(f"training seconds per epoch (log scale); bold: {ref}'s / {ours}'s")
    ax.set_xlim(lo, max(a.max(), b.max()) * 30)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)


def sweep(ax, xs: list, ys: list[float], label: str, colour: str, hollow: list[bool]) -> None:
    """A sensitivity line over categorical ``xs``; points where ``hollow`` is set are drawn
    hollow (another device than the rest)."""
    pos = np.arange(len(xs))
    ax.plot(pos, ys, color=colour, linewidth=1.3, label=label)
    solid = ~np.asarray(hollow, dtype=bool)
    ax.plot(pos[solid], np.asarray(ys)[solid], "o", color=colour)
    ax.plot(pos[~solid], np.asarray(ys)[~solid], "o", markerfacecolor="white", color=colour)
    ax.set_xticks(pos, [str(x) for x in xs])


def heatmap(ax, matrix, rows: list[str], cols: list[str], vmin: float, vmax: float, cmap="viridis"):
    """A small annotated heat map (rows x cols)."""
    m = np.asarray(matrix, dtype=float)
    im = ax.imshow(m, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(rows)), rows)
    ax.grid(False)
    mid = (vmin + vmax) / 2
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, f"{m[i, j]:.3f}", ha="center", va="center", fontsize=7,
                    color="black" if m[i, j] > mid else "white")
    return im


def curves_plan(by_row: dict, rows, metric: str, epochs: int, patience: int, what: str) -> Plan | None:
    """Validation curves of ``rows`` (one line per seed) at a budget of ``epochs`` and
    ``patience``."""
    drawn, without = curve_rows(by_row, rows, metric)
    if not drawn:
        return None
    runs = [x for row in rows for x in by_row.get(row, [])]

    def paint(fig):
        ax = fig.subplots()
        curves(ax, drawn, f"validation {metric_label(metric)}")
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5))

    return Plan(f"Validation {metric_label(metric)} by epoch, {what}",
                f"validation {metric_label(metric)} (full ranking) after each epoch, one line per "
                f"seed, at most {epochs} epochs with patience {patience}; {setting(runs)}."
                + without_note(without), (9.6, 4.8), paint)


def speed_plan(pairs: list[tuple[str, list | None, list | None]], what: str) -> Plan | None:
    """Seconds per epoch of ours beside RecBole's, ``(label, our runs, RecBole's runs)`` per
    model (median over runs), where both ran."""
    pairs = [(m, a, b) for m, a, b in pairs if a and b]
    if not pairs:
        return None
    for _, a, b in pairs:
        for x in (*a, *b):
            need(x, "timing", "train_epoch_s")
    secs = [(m, epoch_times(a)[0], epoch_times(b)[0]) for m, a, b in pairs]
    runs = [x for _, a, b in pairs for x in (*a, *b)]

    def paint(fig):
        speed(fig.subplots(), secs)

    return Plan(f"Seconds per epoch: {what}",
                "median training seconds per epoch of each library, log scale, RecBole's as a "
                f"multiple of ours; {setting(runs, modalities=False)}.",
                (7.2, 1.2 + 0.75 * len(secs)), paint)


__all__ = ["MissingField", "Plan", "bars", "collect", "curve_rows", "curves", "curves_plan", "embed",
           "heatmap", "history", "metric_label", "mirrors", "need", "seed_stats",
           "seeds_note", "setting", "speed", "speed_plan", "sweep", "without_note", "write"]
