"""Errors that name where the problem is (file and line, or config key) and what to do."""

from __future__ import annotations


class MMKGRecError(Exception):
    """Base class for every error this library raises on bad input."""


class DataFormatError(MMKGRecError, ValueError):
    """A data file is malformed: the message names the file and, where it applies, the line."""

    def __init__(self, path, message: str, line: int | None = None):
        where = f"{path}" + (f", line {line}" if line is not None else "")
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.line = line


class ConfigError(MMKGRecError, ValueError):
    """A configuration key is unknown or its value is invalid; the message names the key."""

    def __init__(self, key: str, message: str, source: str | None = None):
        where = f" (from {source})" if source else ""
        super().__init__(f"config key '{key}'{where}: {message}")
        self.key = key
