"""Feedback events appended durably to one JSON-lines file.

An event is written with one ``write`` to a file opened with ``O_APPEND``, under an exclusive
``flock`` (several server workers share the file), and ``fsync``-ed before :meth:`FeedbackLog.append`
returns; the service replies 2xx only after that, so an acknowledged event survives a kill -9 of
the server (and a power loss, as far as the disk honours ``fsync``). The file's folder is
``fsync``-ed once when the file is created. A torn last line (a write cut by a crash before its
``fsync``, never acknowledged) is skipped by :func:`read_events`.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from pathlib import Path

from ..errors import MMKGRecError


class FeedbackLog:
    """The append-only event file ``path`` (created with its folder when missing). ``path`` must
    lie outside ``forbidden`` (the run directory)."""

    def __init__(self, path: str | Path, forbidden: str | Path | None = None):
        self.path = Path(path).expanduser().resolve()
        if forbidden is not None:
            f = Path(forbidden).resolve()
            if self.path == f or f in self.path.parents:
                raise MMKGRecError(f"--feedback {path}: inside the run directory {forbidden}; "
                                   "feedback goes to a file outside it (a run directory stays "
                                   "as it was trained)")
        if self.path.is_dir():
            raise MMKGRecError(f"--feedback {path}: a folder, not a file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        existed = self.path.exists()
        try:
            self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        except OSError as e:
            raise MMKGRecError(f"--feedback {path}: cannot open for appending ({e.strerror})") from None
        if not existed:
            os.fsync(self.fd)
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        self._lock = threading.Lock()

    def append(self, event: dict) -> None:
        """Write ``event`` as one line and flush it to disk before returning."""
        line = (json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        with self._lock:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            try:
                view = memoryview(line)
                while view:
                    n = os.write(self.fd, view)
                    view = view[n:]
                os.fsync(self.fd)
            finally:
                fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def read_events(path: str | Path) -> list[dict]:
    """The events of a feedback file, in order; a torn last line is skipped."""
    out = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for k, line in enumerate(lines):
        if not line:
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if k == len(lines) - 1:  # the last line, cut by a crash: never acknowledged
                continue
            raise
    return out
