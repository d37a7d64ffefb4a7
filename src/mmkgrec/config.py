"""Layered configuration: schema defaults < model < dataset < the dataset folder's ``NAME.yaml``
< file < ``--set key=value``.

Every key, its default, type and allowed values are declared once, in
:mod:`mmkgrec.config_schema`; the packaged files under ``configs/`` (a model's, a dataset's, a
variant) only set values. The keys of a run are the general keys and those declared for its model;
every layer may set only those, and every value of every layer is checked against its key as it is
read, so that a bad value stops the run before anything is written. Errors name the key and the
layer (file) it came from; a run directory's ``config.yaml`` is such a layer
(:func:`load_run_config`).

The run's ``task`` is resolved here, once: ``eval_protocol: ctr`` and ``eval_next_item: true``,
the older spellings of ``task: ctr`` and ``task: next_item``, stay accepted as aliases so that
every recorded command reproduces (:data:`TASK_ALIASES`, :func:`_resolve_task`). So are the inputs
a task withholds from every model (:func:`withheld_item_columns`, :func:`withheld_relations`).

This module is a leaf: it imports nothing from the package but the schema and the errors, and
knows the models only by their config files.
"""

from __future__ import annotations

import copy
import difflib
import os
import sys
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

import yaml

from .config_schema import JOINT_RULES, KEYS, SECTIONS, SET_BY_COMMAND, Key, keys_for
from .evaluation.metric_names import canonical
from .errors import ConfigError


def _config_dir():
    return resources.files("mmkgrec") / "configs"


def _read_yaml(path, source: str) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("<file>", f"{source}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError("<file>", f"{source}: cannot be read ({e})") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError("<file>", f"{source}: invalid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError("<file>", f"{source}: expected a mapping of key: value")
    return data


_FROM_SCHEMA = object()


def config_value(config, key: str, default=_FROM_SCHEMA):
    """``config[key]`` for a :class:`Config` or a plain mapping; when ``config`` is ``None`` or
    lacks the key, ``default`` if given, else the key's default in the schema. (A Config raises
    ConfigError, not KeyError, for a key it does not have.)"""
    if config is not None:
        try:
            return config[key]
        except (KeyError, ConfigError):
            pass
    if default is not _FROM_SCHEMA:
        return default
    if key not in KEYS:
        raise ConfigError(key, "unknown key")
    return copy.deepcopy(KEYS[key].default)


def model_config_names() -> list[str]:
    """The models that have a config file (``configs/model/NAME.yaml``)."""
    return sorted(p.name[:-5] for p in (_config_dir() / "model").iterdir() if p.name.endswith(".yaml"))


def parse_value(text: str):
    """A ``--set`` value: YAML scalar or flow list (``1e-3``, ``true``, ``[10, 20]``, ``null``)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _unknown(key: str, model: str, known: Mapping[str, Key], source: str) -> ConfigError:
    if key in SET_BY_COMMAND:
        return ConfigError(key, f"is set by {SET_BY_COMMAND[key]}, not by a configuration layer",
                           source)
    if key in KEYS:
        owners = ", ".join(KEYS[key].models or ())
        return ConfigError(key, f"unknown key for model {model}; it is a key of {owners}", source)
    close = difflib.get_close_matches(key, list(known), n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return ConfigError(key, f"unknown key{hint}", source)


def _validated(key: str, value, model: str, known: Mapping[str, Key], source: str):
    """``value`` for ``key`` as ``known`` (the model's keys) accepts it; ConfigError naming the
    key and ``source`` otherwise."""
    if not isinstance(key, str) or key not in known:
        raise _unknown(str(key), model, known, source)
    try:
        return known[key].validate(value)
    except ValueError as e:
        raise ConfigError(key, str(e), source) from None


def _check_joint(values: dict, sources: dict) -> None:
    """The rules that involve several keys (:data:`~mmkgrec.config_schema.JOINT_RULES`), checked
    on the resolved values; the error names the key and where each value involved came from."""
    for key, others, rule in JOINT_RULES:
        if key not in values or any(o not in values for o in others):
            continue
        msg = rule(values)
        if msg:
            also = "".join(f"; {o} from {sources.get(o, 'defaults')}" for o in others)
            raise ConfigError(key, msg + also, sources.get(key, "defaults"))


#: keys whose value names a task: (key, the value that selects it, the task). The first that is
#: on wins (eval_protocol: ctr before eval_next_item: true, as the evaluators always chose).
TASK_ALIASES = (("eval_protocol", "ctr", "ctr"), ("eval_next_item", True, "next_item"))


def _resolve_task(values: dict, sources: dict, base: tuple, rank: Mapping[str, int]) -> None:
    """Set ``values["task"]`` from ``base`` (the ``task`` the layers set, and where) and the
    aliases: an alias set in a later layer than the task wins; a task set in a later layer than
    an alias wins and the alias is reset to its default (so that the resolved values agree);
    both in one layer, disagreeing, is an error naming the task and the alias."""
    task, src = base
    for key, on, alias in TASK_ALIASES:
        if key not in values or values[key] != on:
            continue
        if alias != task:
            a_src = sources.get(key, "defaults")
            ra, rt = rank.get(a_src, 0), rank.get(src, 0)
            if ra == rt:
                raise ConfigError("task", f"'{task}' contradicts {key}: {_fmt(on)} (an alias of "
                                  f"task '{alias}') in the same layer; set one of them", src)
            if ra > rt:
                task, src = alias, f"{key} in {a_src}"
            else:
                values[key], sources[key] = copy.deepcopy(KEYS[key].default), src
        break
    values["task"], sources["task"] = task, src


def task_of(config) -> str:
    """The task of ``config`` (a resolved :class:`Config` or a plain mapping): its ``task``;
    where it has none (a test's dict), the task its aliases name, else the default."""
    if config is not None and "task" in config:
        return config["task"]
    for key, on, alias in TASK_ALIASES:
        if config_value(config, key) == on:
            return alias
    return KEYS["task"].default


def withheld_item_columns(config) -> tuple[str, ...]:
    """The item columns no input may carry (item text, domain KG): under task classification,
    the target column."""
    column = config_value(config, "target_column")
    return (column,) if task_of(config) == "classification" and column else ()


def withheld_relations(config) -> frozenset[str]:
    """The external KG relations no input may carry: under task classification, the
    ``target_leak_relations``."""
    if task_of(config) != "classification":
        return frozenset()
    return frozenset(config_value(config, "target_leak_relations") or ())


class Config(Mapping):
    """A resolved, validated run configuration. Reading an unknown key raises ConfigError."""

    def __init__(self, values: dict, sources: dict | None = None, task_base: tuple | None = None,
                 rank: Mapping[str, int] | None = None):
        self._values = dict(values)
        self._sources = dict(sources or {})
        # the task the layers set (before the aliases) and the order of the layers, so that an
        # update re-resolves the task as loading would have
        self._task_base = task_base or (self._values.get("task"), self.source("task"))
        self._rank = dict(rank or {})

    def __getitem__(self, key):
        try:
            return self._values[key]
        except KeyError:
            raise ConfigError(key, "unknown key") from None

    def __contains__(self, key):
        return key in self._values

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
        """This configuration with ``changes`` applied, each checked like any layer's value. (The
        rules that tie the training keys together, such as a ``valid_metric`` the protocol
        computes, are checked when a configuration is resolved, not here: a finished run may be
        re-evaluated under another protocol.)"""
        model = str(self._values.get("model"))
        known = {k: KEYS[k] for k in self._values if k in KEYS}
        values = dict(self._values)
        sources = dict(self._sources)
        base = self._task_base
        rank = {**self._rank, "override": max(self._rank.values(), default=0) + 1}
        for k, v in changes.items():
            values[k] = _validated(k, v, model, known, "override")
            sources[k] = "override"
            if k == "task":
                base = (values[k], "override")
        if "task" in values:
            _resolve_task(values, sources, base, rank)
        _canonical_metric(values)
        return Config(values, sources, base, rank)

    def __repr__(self):
        return f"Config({self._values})"


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


def _canonical_metric(values: dict) -> None:
    values["valid_metric"] = canonical(values["valid_metric"])


def dataset_settings_file(dataset) -> Path | None:
    """A dataset folder's own settings, ``NAME.yaml`` beside its files (``NAME`` the folder's
    name), when there is one: the folder is ``dataset`` itself when it is a folder, else
    ``$MMKGREC_DATA/<dataset>``."""
    if dataset is None:
        return None
    folder = Path(str(dataset))
    if not folder.is_dir():
        root = os.environ.get("MMKGREC_DATA")
        if not root or folder.is_absolute():
            return None
        folder = Path(root) / str(dataset)
        if not folder.resolve().is_relative_to(Path(root).resolve()):
            return None  # a name pointing outside MMKGREC_DATA: refused when the data is read
    path = folder / f"{folder.resolve().name}.yaml"
    return path if path.is_file() else None


def _packaged_layers(model: str, dataset, own: bool = True) -> list[tuple[dict, str]]:
    """The model's config file, the dataset's packaged one (if any) and, with ``own``, the
    dataset folder's ``NAME.yaml`` (:func:`dataset_settings_file`), as (values, source)."""
    cdir = _config_dir()
    mpath = cdir / "model" / f"{model}.yaml"
    if not isinstance(model, str) or not mpath.is_file():
        raise ConfigError("model", f"unknown model '{model}'; models with a config: "
                          f"{model_config_names()}")
    layers = [(_read_yaml(mpath, f"configs/model/{model}.yaml"), f"configs/model/{model}.yaml")]
    if dataset is not None:
        dpath = cdir / "dataset" / f"{Path(str(dataset)).name}.yaml"
        if dpath.is_file():
            layers.append((_read_yaml(dpath, f"configs/dataset/{dpath.name}"),
                           f"configs/dataset/{dpath.name}"))
        folder_file = dataset_settings_file(dataset) if own else None
        if folder_file is not None:
            layers.append((_read_yaml(folder_file, str(folder_file)), str(folder_file)))
    return layers


def _resolve(model: str, dataset, layers: list[tuple[dict, str]]) -> Config:
    """Schema defaults for ``model`` with ``layers`` applied in order, every value checked."""
    known = keys_for(model)
    values = {k: copy.deepcopy(key.default) for k, key in known.items()}
    sources = {k: "defaults" for k in values}
    rank = {"defaults": 0}
    for layer, source in layers:
        rank[source] = len(rank)
        for k, v in layer.items():
            values[k] = _validated(k, v, model, known, source)
            sources[k] = source
    base = (values["task"], sources["task"])
    _resolve_task(values, sources, base, rank)
    _canonical_metric(values)
    _check_joint(values, sources)
    values["model"] = model
    values["dataset"] = None if dataset is None else str(dataset)
    return Config(values, sources, base, rank)


def load_config(model: str, dataset: str | None = None, file: str | Path | None = None,
                overrides: dict | list[str] | None = None,
                extra: tuple[tuple[dict, str], ...] = ()) -> Config:
    """Resolve the layered configuration for ``model`` on ``dataset``.

    ``overrides`` is a dict or a list of ``key=value`` strings (as from ``--set``); ``extra``:
    further ``(values, source)`` layers above them, each value blamed on its ``source`` when bad
    (a tuning grid's point: ``({"learning_rate": 0.01}, "--grid")``)."""
    layers = _packaged_layers(model, dataset)
    if file is not None:
        layers.append((_read_yaml(Path(file), str(file)), str(file)))
    if overrides:
        layers.append((parse_overrides(overrides), "--set"))
    layers += [(dict(values), source) for values, source in extra]
    return _resolve(model, dataset, layers)


def load_run_config(path: str | Path, device: str | None = None) -> Config:
    """The configuration of a run from its ``config.yaml`` (``path``): the model's and the
    dataset's packaged files, then every value of ``config.yaml``, each checked and, if bad,
    blamed on that file; ``device`` (``--device``) replaces the device the run was trained on."""
    path = Path(path)
    values = _read_yaml(path, str(path))
    for key in SET_BY_COMMAND:
        if key not in values:
            raise ConfigError(key, f"{path}: missing; a run's config.yaml names its {key}", str(path))
    model, dataset = values.pop("model"), values.pop("dataset")
    # the run's config.yaml holds every resolved value: the dataset folder's settings, which may
    # have changed since, are not read
    layers = _packaged_layers(model, dataset, own=False) + [(values, str(path))]
    if device is not None:
        layers.append(({"device": device}, "--device"))
    return _resolve(model, dataset, layers)


# ---- the reference page ------------------------------------------------------------------------
def _fmt(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "\\<").replace(">", "\\>")


def reference_markdown() -> str:
    """``docs/CONFIG.md``: every key of the schema, and the values each packaged model and dataset
    file sets."""
    cdir = _config_dir()
    model_values = {m: _read_yaml(cdir / "model" / f"{m}.yaml", m) for m in model_config_names()}
    out = [
        "# Configuration keys",
        "",
        "<!-- Generated from src/mmkgrec/config_schema.py by `python -m mmkgrec.config "
        "docs/CONFIG.md`; do not edit by hand. -->",
        "",
        "A run's configuration is layered: the defaults below < the model's file "
        "(`configs/model/NAME.yaml`) < the dataset's (`configs/dataset/NAME.yaml`) < the "
        "dataset folder's own `NAME.yaml` beside its files (`NAME` the folder's name) < `--config "
        "FILE` < `--set key=value`. Each layer may set only the keys of the run's model: the "
        "general keys and those that name it under *models*. Every value is checked against its "
        "key when it is read, and an error names the key and the layer it came from. `model` "
        "and `dataset` are set by the command (`--model`, `--dataset`).",
        "",
        "Where a model's file sets a value other than the default, *default* shows it after the "
        "schema's own (`GRU4Rec: 128`).",
    ]
    for section in SECTIONS:
        keys = [k for k in KEYS.values() if k.section == section]
        out += ["", f"## {section}", "", "| key | default | accepts | models | description |",
                "|---|---|---|---|---|"]
        for k in keys:
            default = _fmt(k.default)
            own = [f"{m}: {_fmt(v[k.name])}" for m, v in model_values.items() if k.name in v]
            if own:
                default += " (" + "; ".join(own) + ")"
            models = "all" if k.models is None else ", ".join(k.models)
            out.append(f"| `{k.name}` | {_cell(default)} | {_cell(k.describe())} | {models} | "
                       f"{_cell(k.doc)} |")
    out += ["", "## packaged dataset settings", "", "| dataset | values |", "|---|---|"]
    for p in sorted((cdir / "dataset").iterdir(), key=lambda p: p.name):
        if p.name.endswith(".yaml"):
            vals = _read_yaml(p, p.name)
            out.append(f"| {p.name[:-5]} | " + _cell(", ".join(f"{k}: {_fmt(v)}" for k, v in
                                                                vals.items())) + " |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":  # python -m mmkgrec.config [docs/CONFIG.md]
    text = reference_markdown()
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
