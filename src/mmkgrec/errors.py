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


class NonFiniteError(MMKGRecError):
    """Training or evaluation reached a NaN or infinite value; the message names the epoch and
    the first non-finite tensor (the loss, a parameter, or the scores), so that nothing is
    reported from a non-finite model."""


class OutputExistsError(MMKGRecError):
    """An output folder exists and is not a run this command may replace; the message names it."""


class ResumeMismatchError(MMKGRecError):
    """``--resume`` with a configuration or data that differs from the interrupted run's; the
    message names the first key (or the data) that differs."""


class ChecksumError(MMKGRecError):
    """A run file's bytes or the data a run was trained on no longer match what the run recorded;
    the message names the file."""


class LimitError(MMKGRecError):
    """An input would exceed a bound the library keeps by design (an image's pixels or bytes,
    more sampled negatives than a user has unseen items); the message names the bound."""


class CheckpointError(MMKGRecError):
    """A checkpoint to resume from is damaged or belongs to another model; names its file."""


class UnknownNameError(MMKGRecError, KeyError):
    """A name the library does not know (a model, a metric of the runs, an id); still a KeyError
    for callers that catch one. The message names it."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
