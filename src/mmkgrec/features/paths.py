"""Where model files and cached features live: the cache root, model folders (local or from the
Hugging Face cache) and their fingerprints. A module of its own so that the encoders, the
language models and the feature store use it without importing each other."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..errors import MMKGRecError


def cache_root() -> Path:
    """``$MMKGREC_CACHE`` or ``~/.cache/mmkgrec``."""
    return Path(os.path.expanduser(os.environ.get("MMKGREC_CACHE") or "~/.cache/mmkgrec"))


def fingerprint_dir(path: Path, extra: str = "") -> str:
    """A cheap fingerprint of a model folder: every file's relative name and size, the content
    of small files and the first and last MiB of large ones (weights)."""
    h = hashlib.blake2b(digest_size=10)
    h.update(extra.encode())
    files = sorted(p for p in Path(path).rglob("*") if p.is_file()
                   and not any(part in (".git", "__pycache__", ".cache") for part in p.parts))
    for p in files:
        size = p.stat().st_size
        h.update(f"{p.relative_to(path)}|{size}|".encode())
        with open(p, "rb") as f:
            if size <= 4 << 20:
                h.update(f.read())
            else:
                h.update(f.read(1 << 20))
                f.seek(size - (1 << 20))
                h.update(f.read())
    return h.hexdigest()


def resolve_model_path(name_or_path: str) -> Path:
    """A local model folder: the path itself, or a hub name's snapshot in the Hugging Face cache
    (fetched when a network is reachable and ``HF_HUB_OFFLINE`` is unset)."""
    p = Path(os.path.expanduser(str(name_or_path)))
    if p.is_dir():
        return p.resolve()
    if p.exists():
        raise MMKGRecError(f"model path {p} is a file; expected a model folder")
    try:
        from huggingface_hub import snapshot_download

        patterns = ["*.json", "*.txt", "*.model", "*.safetensors", "*/*.json"]
        snap = Path(snapshot_download(repo_id=str(name_or_path), allow_patterns=patterns))
        if not any(snap.glob("*.safetensors")):
            snap = Path(snapshot_download(repo_id=str(name_or_path),
                                          allow_patterns=patterns + ["pytorch_model.bin"]))
        return snap
    except Exception as e:  # offline, unknown repo, no network
        raise MMKGRecError(f"model '{name_or_path}' is not a local folder and could not be had "
                           f"from the Hugging Face hub ({type(e).__name__}: {e}); pass the path "
                           "of a downloaded model folder") from None
