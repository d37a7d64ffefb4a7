"""Tests for the generated benchmark report (benchmarks/report.py and benchmarks/reporting/)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import report  # noqa: E402
from reporting import sequential  # noqa: E402

# an absolute path of a machine: "/work/...", "/root/...", "/opt/...", not "benchmarks/work/..."
MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:[\w.-]+/)+")


@pytest.fixture(scope="module")
def document(tmp_path_factory):
    """docs/BENCHMARKS.md as the stored results generate it now (figures into a temporary folder)."""
    mp = pytest.MonkeyPatch()
    mp.setattr(sequential, "OUT", tmp_path_factory.mktemp("docs") / "BENCHMARKS.md")
    try:
        yield report.document()
    finally:
        mp.undo()


@pytest.mark.parametrize("source", ["generated", "committed"])
def test_document_names_no_machine_paths(document, source):
    text = document if source == "generated" else (ROOT / "docs" / "BENCHMARKS.md").read_text()
    found = sorted({m.group(0) for m in MACHINE_PATH.finditer(text)})
    assert not found, f"absolute paths in the {source} docs/BENCHMARKS.md: {found[:5]}"
    assert "`.venv/bin/python -m mmkgrec.cli train" in text  # the commands are still shown


def test_conclusions_follow_the_numbers(monkeypatch):
    """Sentences that state a direction are chosen by the results, not typed: the same sentence
    turns when the numbers do."""
    from reporting import kg, popularity

    runs = [{"seed": 2021, "best_epoch": 2, "test": {"ndcg@20": 0.14}},
            {"seed": 2020, "best_epoch": 47, "test": {"ndcg@20": 0.30}}]
    assert kg.early_stops({"KGAT": runs}, 10) == "KGAT seed 2021 (best epoch 2; test NDCG@20 0.1400)"
    assert kg.early_stops({"KGAT": runs}, 2) == ""

    def results(a, b):
        return [{"variant": "A", "test": {"recall@20": a}}, {"variant": "B", "test": {"recall@20": b}}]

    monkeypatch.setattr(popularity, "load", lambda suite: results(0.30, 0.20))
    assert popularity._as_here("A", "B", +1) == " (as here: A 0.3000 vs B 0.2000 Recall@20)"
    assert popularity._as_here("A", "B", -1).startswith(" (unlike here:")
    monkeypatch.setattr(popularity, "load", lambda suite: results(0.20, 0.30))
    assert popularity._as_here("A", "B", -1).startswith(" (as here:")
