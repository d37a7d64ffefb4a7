"""The search space of a tune: ``--grid KEY=V1,V2 ...`` parsed, and every value checked against the
configuration schema, before any trial runs.

Values are YAML scalars or flow lists, as ``--set`` reads them (``1e-3``, ``true``, ``null``,
``[64, 32]``); commas inside brackets belong to a list. Each value is resolved as a layer of its
own above the base configuration (``--config``, ``--set``), so an unknown key, a key of another
model or a value of the wrong type is refused in one line naming the key and ``--grid``; then every
combination is resolved, so that rules tying keys together (a ``valid_metric`` the protocol
computes) hold for every trial.
"""

from __future__ import annotations

import itertools
import json
import math

from ..config import Config, load_config, parse_overrides, parse_value
from ..errors import ConfigError

SOURCE = "--grid"
#: keys a grid may not vary: the tune's objective, and what the command names
FIXED = {"valid_metric": "the metric every trial is scored by; set it once with --set",
         "tune_budget": "written by the tune itself"}
#: combinations checked one by one up to this many (beyond, each value is checked alone and a
#: rule between keys stops the trial that breaks it)
MAX_CHECKED = 4096


def split_values(text: str) -> list[str]:
    """``"0.1,[64, 32],x"`` -> ``["0.1", "[64, 32]", "x"]``: commas outside brackets separate."""
    out, depth, cur = [], 0, []
    for ch in text:
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return [v.strip() for v in out if v.strip()]


def parse_grid(grid) -> dict[str, list]:
    """``{key: [values]}`` from ``["KEY=V1,V2", ...]`` (``--grid``) or a mapping of keys to lists
    (the Python API); ConfigError naming the key for a malformed entry."""
    if isinstance(grid, dict):
        out = {}
        for key, values in grid.items():
            if not isinstance(values, (list, tuple)):
                raise ConfigError(str(key), f"expected a list of values, got {values!r}", SOURCE)
            out[str(key)] = list(values)
    else:
        out = {}
        for spec in grid or []:
            key, sep, text = str(spec).partition("=")
            key = key.strip()
            if not sep or not key:
                raise ConfigError(str(spec), "expected KEY=V1,V2,...", SOURCE)
            if key in out:
                raise ConfigError(key, "given twice", SOURCE)
            out[key] = [parse_value(v) for v in split_values(text)]
    if not out:
        raise ConfigError("<grid>", "nothing to tune: give at least one KEY=V1,V2,...", SOURCE)
    for key, values in out.items():
        if not values:
            raise ConfigError(key, "no values", SOURCE)
    return out


def checked_space(model: str, dataset: str, config_file, overrides, grid: dict[str, list],
                  extra: tuple = ()) -> tuple[Config, dict[str, list]]:
    """The base configuration and the grid with every value validated (coerced as the schema
    reads it, e.g. ``"1e-5"`` to a float). ``extra`` (``(values, source)`` layers) is applied to
    every check too (the fold keys of a cross-validated tune). Raises ConfigError naming the key
    and ``--grid`` (or the layer at fault)."""
    base = load_config(model, dataset, config_file, overrides, extra)
    fixed = parse_overrides(overrides)
    space = {}
    for key, values in grid.items():
        if key in FIXED:
            raise ConfigError(key, f"cannot be tuned: {FIXED[key]}", SOURCE)
        if key in fixed:
            raise ConfigError(key, "is both tuned (--grid) and fixed (--set)", SOURCE)
        seen = []
        for v in values:
            cfg = load_config(model, dataset, config_file, overrides, ((({key: v}), SOURCE), *extra))
            value = cfg[key]
            if any(_same(value, s) for s in seen):
                raise ConfigError(key, f"value {v!r} listed twice", SOURCE)
            seen.append(value)
        space[key] = seen
    n = math.prod(len(v) for v in space.values())
    if n <= MAX_CHECKED:
        for point in points(space):
            load_config(model, dataset, config_file, overrides, ((point, SOURCE), *extra))
    return base, space


def _same(a, b) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def points(space: dict[str, list]):
    """Every combination of the space, as ``{key: value}``, in grid order."""
    keys = list(space)
    for combo in itertools.product(*(space[k] for k in keys)):
        yield dict(zip(keys, combo))


def size(space: dict[str, list]) -> int:
    return math.prod(len(v) for v in space.values())


# ---- values as Optuna's categorical choices (None, bool, int, float, str) -----------------------
def label(value):
    """``value`` as an Optuna choice: scalars as they are, lists as their JSON text."""
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def labels(space: dict[str, list]) -> dict[str, list]:
    return {k: [label(v) for v in vs] for k, vs in space.items()}


def value_of(space: dict[str, list], key: str, choice):
    """The grid value of ``key`` whose Optuna choice is ``choice``."""
    for v in space[key]:
        if _same(label(v), choice):
            return v
    raise KeyError(f"{key}={choice!r} is not in the search space")


def params_key(params: dict) -> str:
    """A canonical text of a point of the space (its identity across reruns)."""
    return json.dumps(params, sort_keys=True)
