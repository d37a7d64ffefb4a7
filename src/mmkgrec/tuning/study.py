"""A tune: trials over a grid of configuration values, each trained and scored on validation,
searched through Optuna (grid, random or TPE sampling), resumable, with one JSON per trial and the
chosen configuration written as YAML that ``mmkgrec train --config`` reruns.

``OUT`` (``--out``) holds:

``spec.json``
    What the tune is (model, dataset, the ``--config`` file's hash, ``--set`` values, budget); a
    rerun into the same folder must ask for the same tune, and continues it.
``study.journal``
    The Optuna study (a journal file: every trial asked and told).
``trials/trial-NNNN.json``
    One per finished trial: ``params``, ``value`` (the validation metric; the mean over folds under
    ``folds``), ``valid`` (every validation metric at the best epoch), ``best_epoch``,
    ``epochs_run``, ``seconds``, ``git_sha``, ``command`` (the tune's), ``train_command`` (the
    trial as one ``mmkgrec train``), ``budget`` and, under ``folds``, ``folds`` (one entry per
    fold); ``trial-NNNN.log`` beside it is the trial's training log.
``best.yaml``, ``tune.json``
    Written when every trial has finished: the chosen configuration, complete (every key, with
    ``tune_budget`` naming the budget), and the summary of all trials.
``work/``
    The run directories of trials in progress, keyed by their values, so a killed trial resumes
    from its last epoch; removed when the trial finishes (kept under ``runs/`` with
    ``keep_runs``).

A killed tune is resumed by running the same command again: finished trials are kept, a trial
that was running is run again (from its checkpoint), and the sampler goes on to the points not
yet tried. Random and TPE sampling may draw a point already scored; that trial takes the earlier
score without training (its JSON says ``duplicate_of``), and the tune goes on until ``trials``
distinct points are scored (or the sampler has drawn only old points 50 times in a row).

Under ``folds=K`` every trial trains folds ``0..K-1`` of the ``kfold`` split (``split: kfold,
n_folds: K, fold: k``) and is scored by the mean of its validation metric over the folds; the test
folds are never read. ``best.yaml`` then holds the chosen values over the base configuration
(its own split), not the folds. When the base configuration is itself a ``kfold`` split (``--set
split=kfold``, with its ``n_folds`` and ``fold``), the folds are nested inside it: every trial
trains inner folds ``0..K-1`` of that outer fold's training part (``inner_folds: K, inner_fold:
k``), and the outer test fold enters no trial at all; ``best.yaml`` holds the chosen values over
the outer fold's configuration, the model selection reused for every outer fold.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import json
import logging
import os
import shlex
import shutil
import statistics
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import yaml

from .. import api
from ..config import load_config, parse_overrides
from ..errors import ConfigError, MMKGRecError
from ..evaluation.metric_names import direction
from . import space as sp

log = logging.getLogger("mmkgrec.tune")

SAMPLERS = ("grid", "random", "tpe")
STUDY = "mmkgrec-tune"
FOLD_KEYS = ("split", "n_folds", "fold")
INNER_KEYS = ("inner_folds", "inner_fold")


@dataclass
class TuneResult:
    """A finished tune: ``best`` (the chosen trial's record), ``trials`` (every finished trial's
    record, by number), ``budget``, and the paths of ``best.yaml`` and the folder."""

    out: Path
    budget: dict
    best: dict
    trials: list
    best_yaml: Path

    @property
    def best_params(self) -> dict:
        return self.best["params"]

    @property
    def best_value(self) -> float:
        return self.best["value"]


# ---- the budget ---------------------------------------------------------------------------------
def _fmt(v) -> str:
    return json.dumps(v) if isinstance(v, (list, dict)) else ("null" if v is None else str(v))


def budget_name(b: dict) -> str:
    """One line naming a budget: sampler and values, trial count, epoch cap, patience, metric."""
    values = " ".join(f"{k}={'|'.join(_fmt(v) for v in vs)}" for k, vs in b["space"].items())
    folds = f" in {b['folds']} folds" if b["folds"] else ""
    if b.get("outer_fold") is not None:
        folds = f" in {b['folds']} inner folds of outer fold {b['outer_fold']}"
    return (f"{b['sampler']} over {values}; {b['trials']} trials; epochs<={_fmt(b['epochs'])}; "
            f"patience {_fmt(b['stopping_step'])}; {b['valid_metric']} ({b['direction']}) on "
            f"validation{folds}")


def _budget(base, space: dict, sampler: str, n_trials: int, folds: int | None) -> dict:
    def tuned_or(key):
        return space[key] if key in space else base[key]

    b = {"sampler": sampler, "space": space, "trials": n_trials, "epochs": tuned_or("epochs"),
         "stopping_step": tuned_or("stopping_step"), "valid_metric": base["valid_metric"],
         "direction": direction(base["valid_metric"]), "folds": folds, "seed": base["seed"]}
    if folds and base["inner_folds"]:  # nested (only then the key, so older tunes resume)
        b["outer_fold"] = base["fold"]
    b["name"] = budget_name(b)
    return b


# ---- files --------------------------------------------------------------------------------------
def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _trial_path(out: Path, number: int) -> Path:
    return out / "trials" / f"trial-{number:04d}.json"


def _read_trial(out: Path, number: int) -> dict | None:
    p = _trial_path(out, number)
    return json.loads(p.read_text()) if p.is_file() else None


@contextlib.contextmanager
def _locked(out: Path):
    """One tune at a time in ``out``."""
    fh = open(out / ".lock", "w")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise MMKGRecError(f"{out}: another mmkgrec tune is running in this folder") from None
        yield
    finally:
        fh.close()


def _check_spec(out: Path, spec: dict) -> None:
    path = out / "spec.json"
    if not path.is_file():
        _write_atomic(path, json.dumps(spec, indent=2, default=str))
        return
    old = json.loads(path.read_text())
    new = json.loads(json.dumps(spec, default=str))
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if diff:
        raise MMKGRecError(f"{out} holds another tune (it differs in {', '.join(diff)}); rerun "
                           "its own command to continue it, or choose another --out")


# ---- Optuna -------------------------------------------------------------------------------------
def _storage(out: Path):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(out / "study.journal")))


def _study(storage, sampler: str, space: dict, budget: dict):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seed = budget["seed"]
    if sampler == "grid":
        smp = optuna.samplers.GridSampler(sp.labels(space), seed=seed)
    elif sampler == "random":
        smp = optuna.samplers.RandomSampler(seed=seed)
    else:
        smp = optuna.samplers.TPESampler(seed=seed)
    return optuna.create_study(study_name=STUDY, storage=storage, sampler=smp,
                               direction=budget["direction"], load_if_exists=True)


def _decoded(space: dict, params: dict) -> dict | None:
    """The grid values of an Optuna trial's params (None when it has not all of them)."""
    if set(params) != set(space):
        return None
    return {k: sp.value_of(space, k, params[k]) for k in space}


def _recover(storage, out: Path, space: dict) -> None:
    """After a killed tune: a trial left running is told finished if its JSON was written, else
    failed; the values of every failed trial not since finished are queued again (first)."""
    import optuna
    from optuna.trial import TrialState

    # told through a plain sampler: the grid sampler's after_trial may stop a study, which only an
    # optimize loop allows
    study = optuna.load_study(study_name=STUDY, storage=storage,
                              sampler=optuna.samplers.RandomSampler())
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        rec = _read_trial(out, t.number)
        if rec is not None:
            study.tell(t.number, rec["value"])
        else:
            study.tell(t.number, state=TrialState.FAIL)
    trials = study.get_trials(deepcopy=False)
    settled = {sp.params_key(t.params) for t in trials
               if t.state in (TrialState.COMPLETE, TrialState.WAITING)}
    retry = None
    for t in trials:
        if t.state == TrialState.FAIL and _decoded(space, t.params) is not None:
            key = sp.params_key(t.params)
            if key not in settled:
                if retry is None:
                    with warnings.catch_warnings():  # experimental in Optuna 5
                        warnings.simplefilter("ignore")
                        from optuna.storages import RetryFailedTrialCallback

                        retry = RetryFailedTrialCallback(max_retry=None)
                log.info("trial %d did not finish; its values are queued again", t.number)
                # a copy of the trial, waiting (its grid point included, so the grid sampler
                # counts the point done once the copy finishes)
                retry(study, t)
                settled.add(key)


def _complete(study) -> list:
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


# ---- one trial ----------------------------------------------------------------------------------
class _Tune:
    def __init__(self, model, dataset, config_file, fixed: dict, space: dict, budget: dict,
                 folds, out: Path, keep_runs: bool, command: str):
        self.model, self.dataset, self.config_file = model, dataset, config_file
        self.fixed, self.space, self.budget, self.folds = fixed, space, budget, folds
        self.out, self.keep_runs, self.command = out, keep_runs, command
        self.metric = budget["valid_metric"]
        self.nested = budget.get("outer_fold") is not None
        self.sha = api.git_sha()

    def fold_keys(self, k) -> dict:
        if k is None:
            return {}
        if self.nested:
            return {"inner_folds": self.folds, "inner_fold": k}
        return {"split": "kfold", "n_folds": self.folds, "fold": k}

    def overrides(self, params: dict, k=None) -> dict:
        quiet = {} if "show_progress" in self.fixed else {"show_progress": False}
        return {**quiet, **self.fixed, **params, **self.fold_keys(k)}

    def train_command(self, params: dict, k=None) -> str:
        words = ["mmkgrec", "train", "--model", self.model, "--dataset", str(self.dataset)]
        if self.config_file is not None:
            words += ["--config", str(self.config_file)]
        for key, v in {**self.fixed, **params, **self.fold_keys(k)}.items():
            words += ["--set", f"{key}={_fmt(v)}"]
        return " ".join(shlex.quote(w) for w in words + ["--out", "RUN_DIR"])

    def run(self, number: int, params: dict) -> dict:
        """Train the trial's run(s) and return its record (written by the caller)."""
        key = hashlib.sha1(sp.params_key(params).encode()).hexdigest()[:12]
        work = self.out / "work" / key
        folds = []
        t0 = time.perf_counter()
        for k in (range(self.folds) if self.folds else [None]):
            run_dir = work / ("run" if k is None else f"fold-{k}")
            if (run_dir / "metrics.json").is_file():  # finished before the tune was killed
                metrics = json.loads((run_dir / "metrics.json").read_text())
            else:
                metrics = api.train(self.model, self.dataset, run_dir, self.config_file,
                                    self.overrides(params, k), resume=True,
                                    command=self.train_command(params, k)).metrics
            folds.append({"fold": k, "valid": metrics["valid"], "best_epoch": metrics["best_epoch"],
                          "epochs_run": metrics["epochs_run"],
                          "seconds": metrics["timing"]["total_s"]})
            self._keep_log(run_dir, number, k)
        value = statistics.fmean(f["valid"][self.metric] for f in folds)
        if value != value:  # NaN
            raise MMKGRecError(f"trial {number} ({sp.params_key(params)}): validation "
                               f"{self.metric} is NaN")
        rec = {"number": number, "state": "complete", "params": params, "value": value,
               "metric": self.metric, "direction": self.budget["direction"]}
        if self.folds:
            names = folds[0]["valid"].keys()
            rec.update(valid={m: statistics.fmean(f["valid"][m] for f in folds) for m in names},
                       best_epoch=[f["best_epoch"] for f in folds],
                       epochs_run=[f["epochs_run"] for f in folds], folds=folds)
        else:
            f = folds[0]
            rec.update(valid=f["valid"], best_epoch=f["best_epoch"], epochs_run=f["epochs_run"])
        rec.update(seconds=time.perf_counter() - t0, git_sha=self.sha, command=self.command,
                   train_command=self.train_command(params), budget=self.budget,
                   finished_at=datetime.datetime.now().isoformat(timespec="seconds"))
        return rec

    def _keep_log(self, run_dir: Path, number: int, k) -> None:
        src = run_dir / "log.txt"
        if src.is_file():
            tail = "" if k is None else f"-fold-{k}"
            shutil.copyfile(src, self.out / "trials" / f"trial-{number:04d}{tail}.log")

    def finish(self, params: dict, number: int) -> None:
        key = hashlib.sha1(sp.params_key(params).encode()).hexdigest()[:12]
        work = self.out / "work" / key
        if self.keep_runs and work.is_dir():
            dest = self.out / "runs" / f"trial-{number:04d}"
            shutil.rmtree(dest, ignore_errors=True)
            dest.parent.mkdir(exist_ok=True)
            os.replace(work, dest)
        shutil.rmtree(work, ignore_errors=True)


# ---- the tune -----------------------------------------------------------------------------------
def _check_folds(folds, grid: dict, fixed: dict) -> tuple:
    """The configuration layer ``--folds`` adds (for the schema's checks): plain folds of a
    ``kfold`` split, or, when ``fixed`` sets ``split: kfold``, inner folds nested in its fold."""
    if folds is None:
        return ()
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise MMKGRecError(f"--folds must be an integer >= 2, got {folds!r}")
    nested = fixed.get("split") == "kfold"
    for key in (*FOLD_KEYS, *INNER_KEYS):
        if key in grid or (key in fixed and (not nested or key in INNER_KEYS)):
            what = ("inner folds 0..K-1 of the outer kfold fold" if nested
                    else "folds 0..K-1 of split kfold")
            raise ConfigError(key, f"is set by --folds (each trial trains {what})",
                              "--grid" if key in grid else "--set")
    if nested:
        return (({"inner_folds": folds, "inner_fold": 0}, "--folds"),)
    return (({"split": "kfold", "n_folds": folds, "fold": 0}, "--folds"),)


def tune(model: str, dataset: str, grid, out: str | Path | None = None, trials: int | None = None,
         sampler: str = "grid", folds: int | None = None, config_file=None,
         overrides: dict | list | None = None, keep_runs: bool = False,
         command: str | None = None) -> TuneResult:
    """Tune ``model`` on ``dataset`` over ``grid`` (``{key: [values]}`` or ``["KEY=V1,V2", ...]``)
    and return the :class:`TuneResult`; see the module docstring for the files under ``out``
    (default ``tune-MODEL-DATASET``).

    ``sampler``: ``grid`` (every point, in a seeded order), ``random`` or ``tpe`` (Optuna's
    samplers over the same values); ``trials`` caps the number of trials (default and most: the
    number of points). Each trial trains with the base configuration (``config_file``,
    ``overrides``) and its values, and is scored by ``valid_metric`` on validation, in the
    metric's own direction (:func:`~mmkgrec.evaluation.metric_names.direction`); under ``folds``
    by its mean over the folds of the ``kfold`` split. Everything is checked before anything is
    written: the grid against the schema (one ConfigError naming the key and ``--grid``)."""
    if sampler not in SAMPLERS:
        raise MMKGRecError(f"unknown sampler '{sampler}'; choose one of {', '.join(SAMPLERS)}")
    if trials is not None and (isinstance(trials, bool) or not isinstance(trials, int) or trials < 1):
        raise MMKGRecError(f"--trials must be an integer >= 1, got {trials!r}")
    grid = sp.parse_grid(grid)
    fixed = parse_overrides(overrides)
    fold_layer = _check_folds(folds, grid, fixed)
    base, space = sp.checked_space(model, dataset, config_file, fixed, grid, fold_layer)
    n_trials = min(trials or sp.size(space), sp.size(space))
    budget = _budget(base, space, sampler, n_trials, folds)
    out = Path(out) if out is not None else Path(f"tune-{model}-{Path(str(dataset)).name}")
    config_sha = (hashlib.sha256(Path(config_file).read_bytes()).hexdigest()
                  if config_file is not None else None)
    spec = {"model": model, "dataset": str(dataset), "config_file_sha256": config_sha,
            "overrides": fixed, "budget": budget}
    command = command or f"mmkgrec.tune({model!r}, {str(dataset)!r}, ...)"
    (out / "trials").mkdir(parents=True, exist_ok=True)
    with _locked(out):
        _check_spec(out, spec)
        storage = _storage(out)
        study = _study(storage, sampler, space, budget)
        _recover(storage, out, space)
        job = _Tune(model, dataset, config_file, fixed, space, budget, folds, out, keep_runs,
                    command)
        _loop(study, job, space, n_trials)
        return _finish(study, job, base, space)


#: a random or TPE sampler that draws only points already scored this many times in a row is
#: taken to have nothing new to offer
MAX_REPEATS = 50


def _scored(study) -> dict:
    """The first finished trial of every point scored so far, by the point's key."""
    out = {}
    for t in sorted(_complete(study), key=lambda t: t.number):
        out.setdefault(sp.params_key(t.params), t)
    return out


def _loop(study, job: _Tune, space: dict, n_trials: int) -> None:
    """Run trials until ``n_trials`` distinct points have been scored (those of earlier, killed
    runs count). A trial's JSON is written before Optuna is told, so a tune killed in between
    still has it."""
    choices = sp.labels(space)

    def objective(trial) -> float:
        labels = {k: trial.suggest_categorical(k, v) for k, v in choices.items()}
        params = _decoded(space, labels)
        scored = _scored(study)
        earlier = scored.get(sp.params_key(labels))
        if earlier is not None:  # random / TPE drew a point already scored
            rec = {**_read_trial(job.out, earlier.number), "number": trial.number,
                   "duplicate_of": earlier.number, "seconds": 0.0,
                   "finished_at": datetime.datetime.now().isoformat(timespec="seconds")}
            _write_atomic(_trial_path(job.out, trial.number), json.dumps(rec, indent=2))
            log.info("trial %d: %s drawn again: %s %.4f from trial %d", trial.number,
                     _show(params), job.metric, rec["value"], earlier.number)
            return rec["value"]
        log.info("trial %d (%d of %d): %s ...", trial.number, len(scored) + 1, n_trials,
                 _show(params))
        rec = job.run(trial.number, params)
        _write_atomic(_trial_path(job.out, trial.number), json.dumps(rec, indent=2, default=float))
        job.finish(params, trial.number)
        log.info("trial %d: %s %s %.4f (best epoch %s, %.1f s)", trial.number, _show(params),
                 job.metric, rec["value"], rec["best_epoch"], rec["seconds"])
        return rec["value"]

    repeats = 0
    while len(_scored(study)) < n_trials:
        before = len(_scored(study))
        study.optimize(objective, n_trials=1)
        repeats = repeats + 1 if len(_scored(study)) == before else 0
        if repeats >= MAX_REPEATS:
            log.info("the %s sampler drew %d points in a row that were already scored; "
                     "stopping at %d of %d points", job.budget["sampler"], repeats, before,
                     n_trials)
            return


def _show(params: dict) -> str:
    return " ".join(f"{k}={_fmt(v)}" for k, v in params.items())


def _finish(study, job: _Tune, base, space: dict) -> TuneResult:
    records = sorted((_read_trial(job.out, t.number) for t in _complete(study)),
                     key=lambda r: r["number"])
    best = study.best_trial
    best_rec = next(r for r in records if r["number"] == best.number)
    if "duplicate_of" in best_rec:
        best_rec = next(r for r in records if r["number"] == best_rec["duplicate_of"])
    cfg = load_config(job.model, job.dataset, job.config_file, job.fixed,
                      ((best_rec["params"], sp.SOURCE), ({"tune_budget": job.budget["name"]}, "tune")))
    values = {k: v for k, v in cfg.to_dict().items() if k not in ("model", "dataset")}
    head = [f"Chosen by: {job.command}",
            f"Budget: {job.budget['name']}",
            f"Best: trial {best_rec['number']}, {job.metric} = {best_rec['value']:.6g} on "
            f"validation{' (mean over folds)' if job.folds else ''}, best epoch "
            f"{best_rec['best_epoch']}",
            f"Rerun: mmkgrec train --model {job.model} --dataset {job.dataset} --config "
            f"{job.out / 'best.yaml'} --out RUN_DIR"]
    text = "".join(f"# {line}\n" for line in head) + yaml.safe_dump(values, sort_keys=True)
    _write_atomic(job.out / "best.yaml", text)
    summary = {"model": job.model, "dataset": str(job.dataset), "command": job.command,
               "budget": job.budget, "best": best_rec, "best_yaml": "best.yaml",
               "trials": [{k: r.get(k) for k in ("number", "params", "value", "best_epoch",
                                                 "seconds", "duplicate_of")} for r in records]}
    _write_atomic(job.out / "tune.json", json.dumps(summary, indent=2, default=float))
    with contextlib.suppress(OSError):
        (job.out / "work").rmdir()  # empty once every trial has finished
    log.info("best: trial %d %s: %s %.4f; chosen configuration in %s", best_rec["number"],
             _show(best_rec["params"]), job.metric, best_rec["value"], job.out / "best.yaml")
    return TuneResult(job.out, job.budget, best_rec, records, job.out / "best.yaml")
