"""Readers for the exchange formats recommendation data comes in.

* RecBole atomic files (``.inter/.user/.item/.kg/.link``): tab-separated, a typed header
  ``name:token|token_seq|float|float_seq``.
* KGAT: ``train.txt`` / ``test.txt`` with one line per user, ``user item item ...``.
* KGCN / RippleNet: ``ratings_final`` (``user item label``), ``kg_final`` (``head relation tail``)
  and ``item_index2entity_id``.
* An id map: a CSV with a header, two of whose columns translate one id space into another
  (config ``link_item_map``).

Every reader returns plain columns (numpy arrays or lists) and raises :class:`DataFormatError`
naming the file and line when a file is malformed.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataFormatError

ATOMIC_TYPES = ("token", "token_seq", "float", "float_seq")


@dataclass
class Table:
    """Typed columns read from one atomic file, in file order."""

    path: str
    types: dict[str, str]
    columns: dict[str, object] = field(default_factory=dict)

    def __len__(self) -> int:
        if not self.columns:
            return 0
        return len(next(iter(self.columns.values())))

    def require(self, *names: str) -> None:
        missing = [n for n in names if n not in self.columns]
        if missing:
            raise DataFormatError(
                self.path,
                f"missing required column(s) {missing}; header has {list(self.types)}",
                line=1,
            )


def confined_path(path: Path, base: Path, what: str, allow_outside: bool) -> Path:
    """``path`` resolved; ConfigError naming ``allow_outside_paths`` and ``what`` when it lies
    outside ``base`` (the dataset folder) and ``allow_outside`` is not set."""
    resolved = Path(path).resolve()
    if not allow_outside and not resolved.is_relative_to(base.resolve()):
        raise ConfigError("allow_outside_paths", f"{what} ({path}) lies outside the dataset "
                          f"folder {base}; set allow_outside_paths: true to read it")
    return resolved


def text_lines(path: Path, start: int = 1):
    """``(line number, text)`` of each line of ``path`` (newline kept), decoded as UTF-8 (a
    leading byte-order mark dropped); DataFormatError naming the file, line and byte where the
    bytes are not UTF-8."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=start):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataFormatError(path, f"not UTF-8 text: byte 0x{raw[e.start]:02x} at "
                                      f"column {e.start + 1}; save the file as UTF-8",
                                      line=lineno) from None
            if lineno == start and text.startswith("\ufeff"):
                text = text[1:]
            yield lineno, text


def _parse_header(path: Path, header: str) -> list[tuple[str, str]]:
    if "\t" not in header and header.count(",") >= 1:
        raise DataFormatError(path, "this file must be tab-separated (a RecBole atomic file), "
                              "but its header looks comma-separated; convert the commas to tabs",
                              line=1)
    fields = []
    for j, part in enumerate(header.rstrip("\n\r").split("\t")):
        if ":" not in part:
            raise DataFormatError(
                path, f"malformed header field {j + 1} '{part}': expected name:type with type in "
                f"{ATOMIC_TYPES}", line=1)
        name, typ = part.rsplit(":", 1)
        if typ not in ATOMIC_TYPES:
            raise DataFormatError(
                path, f"header field '{part}' has unknown type '{typ}'; expected one of {ATOMIC_TYPES}",
                line=1)
        if not name:
            raise DataFormatError(path, f"header field {j + 1} has an empty name", line=1)
        fields.append((name, typ))
    names = [n for n, _ in fields]
    if len(set(names)) != len(names):
        raise DataFormatError(path, f"duplicate column names in header {names}", line=1)
    return fields


def read_atomic(path: str | Path, columns: list[str] | None = None) -> Table:
    """Read one RecBole atomic file. ``columns`` restricts which columns are kept."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "file not found")
    lines = text_lines(path)
    _, header = next(lines, (1, ""))
    if not header.strip():
        raise DataFormatError(path, "empty file: expected a typed header line", line=1)
    fields = _parse_header(path, header)
    width = len(fields)
    keep = [i for i, (n, _) in enumerate(fields) if columns is None or n in columns]
    table = Table(path=str(path), types={fields[i][0]: fields[i][1] for i in keep})
    raw: list[list[str]] = [[] for _ in keep]
    for lineno, line in lines:
        row = line.rstrip("\n\r").split("\t")
        if len(row) != width:
            if len(row) == 1 and row[0] == "":
                continue  # blank line
            hint = (" (the row looks comma-separated; atomic files are tab-separated)"
                    if len(row) == 1 and "," in row[0] else "")
            raise DataFormatError(path, f"expected {width} tab-separated fields, found "
                                  f"{len(row)}{hint}", line=lineno)
        for out, i in zip(raw, keep):
            out.append(row[i])
    for values, i in zip(raw, keep):
        name, typ = fields[i]
        table.columns[name] = _convert(path, name, typ, values)
    return table


def _first_bad_float(values: list[str]) -> int:
    for k, v in enumerate(values):
        try:
            float(v)
        except ValueError:
            return k
    return -1


def _convert(path: Path, name: str, typ: str, values: list[str]):
    if typ == "token":
        return np.asarray(values, dtype=object)
    if typ == "token_seq":
        return [v.split(" ") if v else [] for v in values]
    if typ == "float":
        try:
            return np.asarray([float(v) if v != "" else np.nan for v in values], dtype=np.float64)
        except ValueError:
            k = _first_bad_float([v for v in values])
            raise DataFormatError(path, f"column '{name}' (float) has non-numeric value "
                                  f"'{values[k]}'", line=_line_of(path, name, k)) from None
    out = []
    for k, v in enumerate(values):
        try:
            out.append(np.asarray([float(x) for x in v.split(" ")] if v else [], dtype=np.float64))
        except ValueError:
            raise DataFormatError(path, f"column '{name}' (float_seq) has non-numeric value '{v}'",
                                  line=_line_of(path, name, k)) from None
    return out


def _line_of(path: Path, name: str, k: int) -> int:
    """File line of the k-th data row (blank lines are skipped by the reader)."""
    seen = -1
    for lineno, line in text_lines(path):
        if lineno == 1 or line.strip("\n\r") == "":
            continue
        seen += 1
        if seen == k:
            return lineno
    return -1


def _int_rows(path: Path, min_fields: int, max_fields: int | None = None, sep: str | None = None):
    """Yield (lineno, list[int]) for whitespace-separated integer files."""
    if not path.is_file():
        raise DataFormatError(path, "file not found")
    for lineno, line in text_lines(path):
        parts = line.split(sep)
        if not parts:
            continue
        if len(parts) < min_fields or (max_fields is not None and len(parts) > max_fields):
            want = f"{min_fields}" if max_fields == min_fields else f"at least {min_fields}"
            raise DataFormatError(path, f"expected {want} fields, found {len(parts)}", line=lineno)
        try:
            yield lineno, [int(p) for p in parts]
        except ValueError:
            bad = next(p for p in parts if not p.lstrip("-").isdigit())
            raise DataFormatError(path, f"expected integer ids, found '{bad}'",
                                  line=lineno) from None


def read_kgat_interactions(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """KGAT ``train.txt``/``test.txt``: ``user item item ...`` per line -> (users, items) arrays.

    A line holding only a user id is a user without interactions in that file.
    """
    users, items = [], []
    for _, ids in _int_rows(Path(path), 1):
        users.extend([ids[0]] * (len(ids) - 1))
        items.extend(ids[1:])
    return np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)


def read_int_triples(path: str | Path, width: int = 3) -> np.ndarray:
    """A whitespace-separated integer file with exactly ``width`` fields per line."""
    rows = [ids for _, ids in _int_rows(Path(path), width, width)]
    if not rows:
        return np.zeros((0, width), dtype=np.int64)
    return np.asarray(rows, dtype=np.int64)


def read_named_triples(path: str | Path) -> np.ndarray:
    """A tab/space-separated ``head relation tail`` file whose fields are strings -> [n, 3] object."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "file not found")
    rows = []
    for lineno, line in text_lines(path):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3:
            raise DataFormatError(path, f"expected 3 fields, found {len(parts)}", line=lineno)
        rows.append(parts)
    return np.asarray(rows, dtype=object).reshape(-1, 3)


def read_id_map(path: str | Path, source: str, target: str) -> dict[str, str]:
    """``{source id: target id}`` from a comma-separated file with a header naming the columns
    ``source`` and ``target`` (other columns are ignored; quoted fields may hold commas).

    A row with an empty target maps nothing; a source id that appears twice, a row with fewer
    fields than the header, or a header without the two columns is a DataFormatError naming the
    file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "file not found")
    out: dict[str, str] = {}
    first: dict[str, int] = {}
    cols = None
    for lineno, line in text_lines(path):
        if not line.strip():
            continue
        try:
            fields = next(csv.reader([line]))
        except csv.Error as e:
            raise DataFormatError(path, f"not a CSV row ({e})", line=lineno) from None
        if cols is None:
            names = [f.strip() for f in fields]
            missing = [c for c in (source, target) if c not in names]
            if missing:
                raise DataFormatError(path, f"header has no column(s) {missing}; it has "
                                      f"{names}", line=lineno)
            cols = (names.index(source), names.index(target), len(names))
            continue
        s_at, t_at, width = cols
        if len(fields) < width:
            raise DataFormatError(path, f"{len(fields)} field(s) where the header names "
                                  f"{width}", line=lineno)
        key, value = fields[s_at].strip(), fields[t_at].strip()
        if not key:
            raise DataFormatError(path, f"empty '{source}'", line=lineno)
        if key in first:
            raise DataFormatError(path, f"'{source}' {key} appears again (first on line "
                                  f"{first[key]}); one row per id", line=lineno)
        first[key] = lineno
        if value:
            out[key] = value
    if cols is None:
        raise DataFormatError(path, "empty file: expected a header naming the columns "
                              f"'{source}' and '{target}'")
    return out
