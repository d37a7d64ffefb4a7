"""Tests for the figures: those of docs/BENCHMARKS.md (benchmarks/reporting/figures.py and the
section modules that embed them), drawn from a small fixed set of synthetic result files, and
``mmkgrec compare --plot`` on two tiny runs."""

from __future__ import annotations

import json
import struct
import sys
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import report  # noqa: E402
from reporting import figures, kg, popularity, sequential, tables  # noqa: E402

from mmkgrec.cli import main  # noqa: E402
from mmkgrec.errors import MMKGRecError  # noqa: E402
from mmkgrec.evaluation import plots  # noqa: E402

SEQ = tables.suite_runs("sequential")[0]  # the queues' own definitions (rows, budgets)
KG = tables.suite_runs("kg")[0]
GPU = tables.suite_runs("gpu")[0]
CONFIG = {"text_encoder": "minilm", "image_encoder": "descriptor", "augment_topk": 10,
          "augment_p": 0.1, "valid_metric": "ndcg@10"}


def _run(job: str, row: str, seed: int, score: float, library: str = "mmkgrec", epochs: int = 4,
         **extra) -> dict:
    """One synthetic result, shaped as the queues write them."""
    keys = ("ndcg@10", "hit@10", "ndcg@20", "recall@20")
    valid = "valid_score" if library == "recbole" else "valid"
    return {"job": job, "row": row, "seed": seed, "library": library, "dataset": "ml-100k",
            "config": {} if library == "recbole" else dict(CONFIG),
            "test": {k: score * (1 + j) for j, k in enumerate(keys)},
            "timing": {"train_epoch_s": (10.0 if library == "recbole" else 1.0) + seed % 7,
                       "eval_s": 0.2},
            "history": [{"epoch": e, valid: (score * (e + 1) / epochs if library == "recbole" else
                                             {k: score * (e + 1) / epochs for k in keys})}
                        for e in range(epochs)],
            **extra}


def _results(folder: Path) -> dict[str, list[dict]]:
    """A small fixed set of result files per suite, written as JSON under ``folder``."""
    seq = [_run(f"{r}-s{s}", r, s, 0.09 + 0.001 * k + 0.0005 * s % 3)
           for k, r in enumerate(["SASRec", "MM-RACL-KAL", "GRU4Rec"]) for s in (2020, 2021)]
    seq += [_run(f"{r}-s2020", r, 2020, 0.085 + 0.002 * k) for k, r in enumerate(SEQ.LOO)]
    for prefix, key, values in (("topk", "augment_topk", (1, 5, 20)), ("p", "augment_p", (0.0, 0.3))):
        for k, v in enumerate(values):
            r = _run(f"{prefix}-{v}-s2020", f"{prefix}-{v}", 2020, 0.09 + 0.001 * k,
                     device="cuda" if k == 0 else "cpu")
            r["config"][key] = v
            seq.append(r)
    seq += [_run(f"side-{m}-{lib}-s2020", m, 2020, 0.05, library=lib, side_by_side=True)
            for m in SEQ.SIDE for lib in ("mmkgrec", "recbole")]
    groups = lambda s: [{"group": g, "metrics": {"ndcg@10": s / (g + 1), "recall@20": 2 * s / (g + 1)}}  # noqa: E731
                        for g in range(3)]
    pop = [_run(f"{r}-s{s}", r, s, 0.1 + 0.01 * k, variant=r, groups=groups(0.1 + 0.01 * k + 0.001 * s % 5))
           for k, r in enumerate(["BPR+reg", "LightGCN", "MM-RACL-KAL", "GRU4Rec"]) for s in (2020, 2021)]
    kgr = [_run(f"{r}-s{s}", r, s, 0.2 + 0.01 * k) for k, r in enumerate(["BPR", "KGAT", "MultiKG4Rec"])
           for s in (2020, 2021)]
    kgr[0].pop("history")  # a run from before per-epoch history: named in the caption, not drawn
    kgr += [_run(f"side-{m}-{lib}-s{s}", m, s, 0.2, library=lib) for m in ("CKE", "KGCN")
            for lib in ("mmkgrec", "recbole") for s in (2020, 2021)]
    kgr.append(_run("tune-MultiKG4Rec-lr0.001", "MultiKG4Rec", 2020, 0.21))
    case = [{"run": "benchmarks/work/runs/kg/tune-MultiKG4Rec-lr0.001", "modalities": ["text", "image"],
             "users": [{"user": str(u), "items": [{"item": str(i), "title": f"Film {i}" if i % 3 else None,
                                                   "text": 0.5 + 0.01 * i, "image": 0.5 - 0.01 * i}
                                                  for i in range(4)]} for u in (1, 2)]}]
    latency = [{"catalogue": "small", "n_items": 100,
                **{p: {"p50_ms": 0.3, "p99_ms": 0.5, "mean_ms": 0.35} for p in ("torch_exact", "faiss_flat")}}]
    out = {"sequential": seq, "popularity": pop, "kg": kgr, "case_study": case, "latency": latency}
    for suite, runs in out.items():
        (folder / suite).mkdir(parents=True)
        for j, r in enumerate(runs):
            (folder / suite / f"{r.get('job', suite)}-{j}.json").write_text(json.dumps(r))
    return out


def _by_row(runs, key="row"):
    out = {}
    for r in runs:
        out.setdefault(r[key], []).append(r)
    return out


def _plans(results: dict) -> dict:
    """Every figure of the document, built from the synthetic results by the function its
    section embeds it with."""
    seq = [r for r in results["sequential"] if not r.get("side_by_side")]
    by_row = _by_row(seq)
    side = {m: {r["library"]: r for r in results["sequential"] if r.get("side_by_side") and r["row"] == m}
            for m in SEQ.SIDE}
    pop = _by_row(results["popularity"], "variant")
    kg_runs = [r for r in results["kg"] if not r["job"].startswith("side-")]
    kg_side = _by_row([r for r in results["kg"] if r["job"].startswith("side-")])
    libs = lambda rs, lib: [r for r in rs if r["library"] == lib]  # noqa: E731
    pairs = [(m, libs(rs, "mmkgrec"), libs(rs, "recbole")) for m, rs in kg_side.items()]
    names = ["head", "middle", "tail"]
    keys = ("ndcg@10", "recall@20")
    return {
        "mmraclkal-ablation": sequential._ablation_plan(SEQ, by_row),
        "sens_topk": sequential._sweep_plan(SEQ, by_row, "topk", "augment_topk", "Top-K", "Fig. 3"),
        "sens_p": sequential._sweep_plan(SEQ, by_row, "p", "augment_p", "p", "Fig. 4"),
        "sequential-validation": sequential._curves_plan(SEQ, by_row),
        "sequential-side-by-side": sequential._side_plan(SEQ, side),
        "mmraclkal-efficiency": sequential._efficiency_plan(SEQ, by_row, results["latency"]),
        "popularity-multimodal": popularity._plan(pop, ["BPR+reg", "LightGCN"], names, keys, 3),
        "popularity-sequential": popularity._plan(pop, ["MM-RACL-KAL", "GRU4Rec"], names, keys, 3),
        "kg-validation": figures.curves_plan(_by_row(kg_runs), KG.MAIN, "ndcg@20", 50, 10, "main"),
        "kg-side-by-side-speed": figures.speed_plan(pairs, "KG-only models"),
        "multikg4rec-case-study": kg._case_study_plan(results["case_study"][0], kg_runs),
        "core-speed": figures.speed_plan(pairs[:1], "core"),
        "gpu-speed": figures.speed_plan(pairs, "GPU"),
        "gpu-long-validation": figures.curves_plan(_by_row(kg_runs), GPU.LONG_ROWS, "ndcg@20", 200, 30,
                                                   "longer budget"),
    }


@pytest.fixture()
def synthetic(tmp_path, monkeypatch):
    """The synthetic results as the report loads them (each remembering its file)."""
    _results(tmp_path / "results")
    monkeypatch.setattr(tables, "RESULTS", tmp_path / "results")
    return {s: tables.load(s) for s in ("sequential", "popularity", "kg", "case_study", "latency")}


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG, after checking that it is one: signature, every chunk's CRC,
    IHDR first and IEND last, image data that inflates, and no text or time chunk."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    pos, kinds, idat, size = 8, [], b"", None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        assert zlib.crc32(kind + body) == crc, (path, kind)
        if kind == b"IHDR":
            size = struct.unpack(">II", body[:8])
        idat += body if kind == b"IDAT" else b""
        kinds.append(kind)
        pos += 12 + n
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND"
    assert not {b"tEXt", b"iTXt", b"zTXt", b"tIME"} & set(kinds), kinds  # no software, no time
    assert zlib.decompress(idat)
    return size


@pytest.fixture(scope="module")
def embedded():
    """The names of the figures the document embeds from the committed results (module scope:
    built before ``synthetic`` points the report at the synthetic ones)."""
    with figures.collect() as plans:
        report.document()
    return set(plans)


@pytest.fixture(scope="module")
def drawn(embedded, tmp_path_factory):
    """The synthetic figures' plans, drawn once into a folder."""
    folder = tmp_path_factory.mktemp("synthetic")
    with pytest.MonkeyPatch.context() as mp:
        _results(folder / "results")
        mp.setattr(tables, "RESULTS", folder / "results")
        plans = _plans({s: tables.load(s) for s in ("sequential", "popularity", "kg", "case_study", "latency")})
    return plans, figures.write(plans, folder / "img"), folder / "img"


def test_every_figure_of_the_document_is_drawn_from_synthetic_results(embedded, drawn):
    plans, written, img = drawn
    assert set(plans) == embedded, "a figure of the document has no synthetic case here"
    assert all(p is not None for p in plans.values())
    assert len(written) == 2 * len(plans)
    for name, plan in plans.items():
        assert png_size(img / f"{name}.png") == plots.pixel_size(plan.size), name
        svg = ET.parse(img / f"{name}.svg").getroot()
        assert svg.get("width") == f"{plan.size[0] * 72:g}pt", name
        text = (img / f"{name}.svg").read_text()
        assert "dc:date" not in text and "Matplotlib v" not in text
        assert plan.caption and plan.title
    assert not list(img.glob(".*"))  # no temporary file left


def test_captions_name_the_paper_figure_and_the_settings_from_the_results(synthetic):
    plans = _plans(synthetic)
    for name, paper, fig in (("mmraclkal-ablation", "MM-RACL-KAL", "Fig. 2"), ("sens_topk", "MM-RACL-KAL", "Fig. 3"),
                             ("sens_p", "MM-RACL-KAL", "Fig. 4"), ("mmraclkal-efficiency", "MM-RACL-KAL", "Fig. 5"),
                             ("multikg4rec-case-study", "Multi-KG4Rec", "Fig. 4")):
        assert f"Mirrors {paper}'s {fig}" in plans[name].caption, name
        assert "hand-crafted poster descriptor" in plans[name].caption, name
    # a learned encoder in the results changes the caption, not the code
    for r in synthetic["sequential"]:
        r["config"]["image_encoder"] = "clip-image:/models/clip-vit-b32"
    again = _plans(synthetic)["mmraclkal-ablation"].caption
    assert "clip-image (clip-vit-b32)" in again and "/models" not in again
    # the run without a history is named, not drawn
    assert "BPR-s2020-" in plans["kg-validation"].caption


def test_figures_are_byte_stable(drawn, tmp_path):
    plans, first, _ = drawn
    again = figures.write(plans, tmp_path)  # the same inputs drawn a second time
    assert [p.name for p in again] == [p.name for p in first]
    for a, b in zip(first, again):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_a_missing_field_skips_the_figure_with_one_line(synthetic, tmp_path, capsys):
    by_row = _by_row([r for r in synthetic["sequential"] if not r.get("side_by_side")])
    broken = by_row[next(iter(SEQ.LOO))][0]
    del broken["test"]["ndcg@10"]
    img = tmp_path / "img"
    img.mkdir()
    for fmt in ("png", "svg"):  # the figure drawn from earlier results
        (img / f"mmraclkal-ablation.{fmt}").write_bytes(b"old")
    with figures.collect() as plans:
        lines = figures.embed("mmraclkal-ablation", lambda: sequential._ablation_plan(SEQ, by_row))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and broken.source in err[0] and "test.ndcg@10" in err[0]
    assert "not drawn" in lines[-1] and broken.source in lines[-1] and "test.ndcg@10" in lines[-1]
    assert plans == {"mmraclkal-ablation": None}
    assert figures.write(plans, img) == [] and not list(img.iterdir())  # no figure of old results


def test_a_failed_draw_leaves_the_old_file_and_no_partial_one(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    old = tmp_path / "f.png"
    old.write_bytes(b"old")

    def broken(self, fname, **kw):
        Path(fname).write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken)
    with pytest.raises(OSError):
        plots.draw(lambda fig: fig.subplots().plot([0, 1]), (2, 2), [old, tmp_path / "g.svg"])
    assert old.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["f.png"]


def test_without_matplotlib_one_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(MMKGRecError, match="matplotlib"):
        plots.draw(lambda fig: None, (2, 2), [tmp_path / "f.png"])
    plan = figures.Plan("t", "c", (2, 2), lambda fig: None)
    monkeypatch.setattr(report, "build", lambda: ("text", {"f": plan}))
    monkeypatch.setattr(report, "OUT", tmp_path / "BENCHMARKS.md")
    assert report.main() == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "matplotlib" in err[0]
    assert not (tmp_path / "BENCHMARKS.md").exists()


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two tiny trained runs of the synthetic data set."""
    folder = tmp_path_factory.mktemp("runs")
    for model in ("BPR", "LightGCN"):
        assert main(["train", "--model", model, "--dataset", "synthetic", "--out", str(folder / model),
                     "--set", "epochs=2", "--set", "show_progress=false"]) == 0
    return folder / "BPR", folder / "LightGCN"


def test_compare_plot_draws_the_runs(two_runs, tmp_path, capsys):
    capsys.readouterr()
    out = tmp_path / "cmp.png"
    assert main(["compare", *map(str, two_runs), "--plot", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "p vs best" in printed and f"figure written to {out}" in printed
    assert png_size(out) == plots.pixel_size((11.0, 4.2))
    first = out.read_bytes()
    assert main(["compare", *map(str, two_runs), "--plot", str(out)]) == 0
    assert out.read_bytes() == first
    svg = tmp_path / "cmp.svg"
    assert main(["compare", *map(str, two_runs), "--metric", "recall@20", "--plot", str(svg)]) == 0
    assert "Recall@20" in svg.read_text()


def test_compare_plot_bad_input_fails_cleanly(two_runs, tmp_path, capsys):
    capsys.readouterr()
    assert main(["compare", *map(str, two_runs), "--plot", str(tmp_path / "cmp.txt")]) == 2
    assert "cmp.txt" in capsys.readouterr().err
    old = tmp_path / "old"
    for f in ("config.yaml", "metrics.json", "per_user_test.npz"):
        (old / f).parent.mkdir(exist_ok=True)
        (old / f).write_bytes((two_runs[0] / f).read_bytes())
    m = json.loads((old / "metrics.json").read_text())
    del m["history"]
    (old / "metrics.json").write_text(json.dumps(m))
    out = tmp_path / "cmp.png"
    assert main(["compare", str(old), str(two_runs[1]), "--plot", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(old / "metrics.json") in err[0] and "'history'" in err[0]
    assert not out.exists() and not list(tmp_path.glob(".*"))
    with np.load(two_runs[1] / "per_user_test.npz") as z:
        assert "ndcg@10" in z.files  # the distribution reads the per-user file compare reads
