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
