"""Layered configuration: defaults < model < dataset < file < ``--set key=value``.

The known keys are those of ``configs/defaults.yaml`` plus those the model's own file declares.
Every later layer may only set known keys, and each value is checked against the type of the key's
default (and, for some keys, a list of choices). Errors name the key and the layer it came from.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

import yaml

from .errors import ConfigError

CHOICES = {
    "device": None,  # checked by prefix below
    "data_format": ("auto", "atomic", "kgat", "kgcn", "synthetic"),
    "dedup": ("first", "last", "none"),
    "split": ("random_ratio", "time_ratio", "leave_one_out", "given"),
    "eval_protocol": ("full", "sampled", "ctr"),
    "ctr_labels": ("auto", "file", "sample"),
    "train_loss": ("bpr", "bce"),
    "log_level": ("debug", "info", "warning", "error"),
    "kg_merge": ("auto", "external", "domain", "both"),
    "kg_bad_triples": ("drop", "reject"),
}


def _config_dir():
    return resources.files("mmkgrec") / "configs"


def _read_yaml(path, source: str) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("<file>", f"{source}: file not found") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError("<file>", f"{source}: invalid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError("<file>", f"{source}: expected a mapping of key: value")
    return data


@functools.cache
def default_values() -> dict:
    """The values of ``configs/defaults.yaml`` (read once)."""
    return _read_yaml(_config_dir() / "defaults.yaml", "defaults.yaml")


_FROM_DEFAULTS = object()


def config_value(config, key: str, default=_FROM_DEFAULTS):
    """``config[key]`` for a :class:`Config` or a plain mapping; when ``config`` is ``None`` or
    lacks the key, ``default`` if given, else the value in ``configs/defaults.yaml``. (A Config
    raises ConfigError, not KeyError, for an unknown key.)"""
    if config is not None:
        try:
            return config[key]
        except (KeyError, ConfigError):
            pass
    return default_values()[key] if default is _FROM_DEFAULTS else default


def model_config_names() -> list[str]:
    return sorted(p.name[:-5] for p in (_config_dir() / "model").iterdir() if p.name.endswith(".yaml"))


def parse_value(text: str):
    """A ``--set`` value: YAML scalar or flow list (``1e-3``, ``true``, ``[10, 20]``, ``null``)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


class Config(Mapping):
    """A resolved, validated run configuration. Reading an unknown key raises ConfigError."""

    def __init__(self, values: dict, sources: dict | None = None):
        self._values = dict(values)
        self._sources = dict(sources or {})

    def __getitem__(self, key):
        try:
            return self._values[key]
        except KeyError:
            raise ConfigError(key, "unknown key") from None

    def __iter__(self):
        return iter(self._values)

    def __len__(self):
        return len(self._values)

    def __getattr__(self, key):
        if key.startswith("_"):
            raise AttributeError(key)
        return self[key]

    def source(self, key: str) -> str:
        return self._sources.get(key, "defaults")

    def to_dict(self) -> dict:
        return dict(self._values)

    def updated(self, **changes) -> "Config":
        values = dict(self._values)
        sources = dict(self._sources)
        for k, v in changes.items():
            v = coerce(k, v, values)
            _check(k, v, values, "override")
            values[k] = v
            sources[k] = "override"
        return Config(values, sources)

    def __repr__(self):
        return f"Config({self._values})"


def _type_ok(default, value) -> bool:
    if default is None or value is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, list):
        return isinstance(value, list)
    if isinstance(default, dict):
        return isinstance(value, dict)
    return True


def coerce(key: str, value, known: dict):
    """YAML 1.1 reads ``1e-5`` (no dot) as a string; a float key takes it as the number."""
    if isinstance(known.get(key), float) and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _check(key: str, value, known: dict, source: str) -> None:
    if key not in known:
        close = difflib.get_close_matches(key, list(known), n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise ConfigError(key, f"unknown key{hint}", source)
    default = known[key]
    if not _type_ok(default, value):
        raise ConfigError(key, f"expected {type(default).__name__} like {default!r}, got "
                          f"{value!r}", source)
    if key == "device":
        if not (value in ("cpu", "cuda", "mps") or str(value).startswith("cuda:")):
            raise ConfigError(key, f"expected cpu, cuda, cuda:N or mps, got {value!r}", source)
    elif CHOICES.get(key) and value not in CHOICES[key]:
        raise ConfigError(key, f"expected one of {CHOICES[key]}, got {value!r}", source)
    if key == "valid_metric":
        from .evaluation.metrics import parse_metric

        try:
            parse_metric(value)
        except ValueError as e:
            raise ConfigError(key, str(e), source) from None
    if key in ("epochs", "train_batch_size", "eval_batch_size", "stopping_step", "eval_step",
               "embedding_size", "num_neg") and isinstance(value, int) and value < 0:
        raise ConfigError(key, f"must be >= 0, got {value}", source)
    if key == "learning_rate" and isinstance(value, (int, float)) and value <= 0:
        raise ConfigError(key, f"must be > 0, got {value}", source)


def parse_overrides(overrides: dict | list[str] | None) -> dict:
    """A dict of overrides from a dict or a list of ``key=value`` strings (``--set``)."""
    if not overrides:
        return {}
    if isinstance(overrides, dict):
        return dict(overrides)
    ov = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(item, "expected key=value", "--set")
        k, v = item.split("=", 1)
        ov[k.strip()] = parse_value(v)
    return ov


def load_config(model: str, dataset: str | None = None, file: str | Path | None = None,
                overrides: dict | list[str] | None = None) -> Config:
    """Resolve the layered configuration for ``model`` on ``dataset``.

    ``overrides`` is a dict or a list of ``key=value`` strings (as from ``--set``)."""
    cdir = _config_dir()
    values = dict(default_values())
    sources = {k: "defaults" for k in values}
    mpath = cdir / "model" / f"{model}.yaml"
    if not mpath.is_file():
        from .models import registered_models

        raise ConfigError("model", f"unknown model '{model}'; registered: {registered_models()}")
    mvals = _read_yaml(mpath, f"configs/model/{model}.yaml")
    for k, v in mvals.items():
        if k in values:
            _check(k, v, values, f"configs/model/{model}.yaml")
        values[k] = v
        sources[k] = f"configs/model/{model}.yaml"
    layers = []
    if dataset is not None:
        dpath = cdir / "dataset" / f"{Path(str(dataset)).name}.yaml"
        if dpath.is_file():
            layers.append((_read_yaml(dpath, f"configs/dataset/{dpath.name}"),
                           f"configs/dataset/{dpath.name}"))
    if file is not None:
        layers.append((_read_yaml(Path(file), str(file)), str(file)))
    if overrides:
        layers.append((parse_overrides(overrides), "--set"))
    for layer, source in layers:
        for k, v in layer.items():
            v = coerce(k, v, values)
            _check(k, v, values, source)
            values[k] = v
            sources[k] = source
    if isinstance(values.get("valid_metric"), str):
        from .evaluation.metrics import canonical

        values["valid_metric"] = canonical(values["valid_metric"])
    values["model"] = model
    values["dataset"] = None if dataset is None else str(dataset)
    return Config(values, sources)
