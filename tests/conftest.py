"""Shared fixtures. Tests that need the real datasets use ``data_dir``: they skip (saying why)
when MMKGREC_DATA is unset, and fail instead when MMKGREC_REQUIRE_DATA=1 (as in CI)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _data_dir() -> Path | None:
    root = os.environ.get("MMKGREC_DATA")
    return Path(root) if root and Path(root).is_dir() else None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    root = _data_dir()
    if root is None:
        why = (f"MMKGREC_DATA is unset or not a folder ({os.environ.get('MMKGREC_DATA')!r}); this "
               "test needs the real datasets")
        if os.environ.get("MMKGREC_REQUIRE_DATA") == "1":
            pytest.fail(why + " and MMKGREC_REQUIRE_DATA=1")
        pytest.skip(why)
    return root


@pytest.fixture
def atomic_dir(tmp_path):
    """Write a small atomic dataset ``tiny`` and return a writer for extra files."""

    def write(files: dict[str, str], name: str = "tiny") -> Path:
        d = tmp_path / name
        d.mkdir(exist_ok=True)
        for ext, text in files.items():
            (d / f"{name}.{ext}").write_text(text)
        return d

    return write


@pytest.fixture(autouse=True)
def _quiet_threads():
    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))
    yield
