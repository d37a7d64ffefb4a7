"""Tuning: a tiny grid on synthetic data, resume after a killed trial, the chosen YAML reruns to the
same validation metric, the metric's direction, and bad grids refused before anything is written."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import mmkgrec
from mmkgrec import api
from mmkgrec.cli import main
from mmkgrec.data import load_dataset, split_dataset
from mmkgrec.errors import ConfigError, MMKGRecError
from mmkgrec.evaluation.metric_names import direction, lower_is_better
from mmkgrec.tuning import study as tune_study
from mmkgrec.tuning.space import checked_space, parse_grid, split_values

BASE = {"epochs": 3, "threads": 1}
GRID = {"learning_rate": [0.01, 0.05], "reg_weight": [0.0, 1e-4]}


def _tune(out, **kw):
    kw.setdefault("overrides", BASE)
    return mmkgrec.tune("BPR", "synthetic", kw.pop("grid", GRID), out=out, **kw)


def _values(out: Path) -> dict:
    """``{params: value}`` of every trial JSON under ``out``."""
    recs = [json.loads(p.read_text()) for p in sorted((out / "trials").glob("trial-*.json"))]
    return {json.dumps(r["params"], sort_keys=True): r["value"] for r in recs}


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    out = tmp_path_factory.mktemp("tune") / "bpr"
    return _tune(out)


def test_a_tiny_grid_writes_one_json_per_trial_and_chooses_the_best(tuned):
    out = tuned.out
    recs = [json.loads(p.read_text()) for p in sorted((out / "trials").glob("trial-*.json"))]
    assert len(recs) == 4 and len(tuned.trials) == 4
    points = {(r["params"]["learning_rate"], r["params"]["reg_weight"]) for r in recs}
    assert points == {(0.01, 0.0), (0.01, 1e-4), (0.05, 0.0), (0.05, 1e-4)}
    for r in recs:
        assert r["value"] == r["valid"]["mrr@10"] and r["metric"] == "mrr@10"
        assert isinstance(r["best_epoch"], int) and 0 <= r["best_epoch"] < 3
        assert r["seconds"] > 0 and r["command"] and "git_sha" in r
        assert r["budget"] == tuned.budget
        assert "--set learning_rate=" in r["train_command"]
        assert (out / "trials" / f"trial-{r['number']:04d}.log").is_file()
    b = tuned.budget
    assert (b["trials"], b["epochs"], b["stopping_step"], b["valid_metric"], b["direction"]) == (
        4, 3, 10, "mrr@10", "maximize")
    assert b["name"] == ("grid over learning_rate=0.01|0.05 reg_weight=0.0|0.0001; 4 trials; "
                         "epochs<=3; patience 10; mrr@10 (maximize) on validation")
    assert tuned.best_value == max(r["value"] for r in recs)
    summary = json.loads((out / "tune.json").read_text())
    assert summary["best"]["number"] == tuned.best["number"] and len(summary["trials"]) == 4
    best = yaml.safe_load((out / "best.yaml").read_text())
    assert best["tune_budget"] == b["name"]
    assert best["learning_rate"] == tuned.best_params["learning_rate"] and best["epochs"] == 3
    assert not (out / "work").exists()  # trial run directories go once the trial has finished


def test_the_chosen_yaml_reruns_to_the_same_validation_metric(tuned, tmp_path):
    run = api.train("BPR", "synthetic", tmp_path / "run", config_file=tuned.best_yaml)
    assert run.metrics["valid"]["mrr@10"] == tuned.best_value
    assert run.metrics["best_epoch"] == tuned.best["best_epoch"]
    assert run.config["tune_budget"] == tuned.budget["name"]


def test_a_rerun_of_a_finished_tune_trains_nothing_and_another_tune_is_refused(tuned, monkeypatch):
    def no_training(*a, **k):
        raise AssertionError("a finished trial was trained again")

    monkeypatch.setattr(api, "train", no_training)
    again = _tune(tuned.out)
    assert again.best == tuned.best
    with pytest.raises(MMKGRecError, match="holds another tune.*budget"):
        _tune(tuned.out, grid={"learning_rate": [0.01]})


def test_an_interrupted_tune_continues_where_it_stopped(tuned, tmp_path, monkeypatch):
    real, calls = api.train, []

    def interrupted(*a, **k):
        calls.append(k.get("command") or a)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(api, "train", interrupted)
    out = tmp_path / "t"
    with pytest.raises(KeyboardInterrupt):
        _tune(out)
    assert len(list((out / "trials").glob("trial-*.json"))) == 2
    first = {p.name: p.read_text() for p in (out / "trials").glob("trial-*.json")}
    calls.clear()
    monkeypatch.setattr(api, "train", lambda *a, **k: calls.append(1) or real(*a, **k))
    res = _tune(out)
    assert len(calls) == 2  # the interrupted point again, and the one never reached
    assert all((out / "trials" / name).read_text() == text for name, text in first.items())
    assert _values(out) == _values(tuned.out)  # every point scored as without the interruption
    assert res.best_value == tuned.best_value and res.best_params == tuned.best_params


def test_a_killed_tune_resumes_its_running_trial_from_the_checkpoint(tmp_path):
    # a real kill (SIGKILL) leaves the trial running in the study and its run half-written
    out = tmp_path / "k"
    cmd = [sys.executable, "-m", "mmkgrec.cli", "tune", "BPR", "synthetic", "--grid",
           "learning_rate=0.02,0.04", "--set", "epochs=25", "--set", "stopping_step=0",
           "--set", "threads=1", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(Path(mmkgrec.__file__).parents[1])}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            ckpt = list((out / "work").glob("*/run.partial/checkpoint/LATEST")) if (out / "work").is_dir() else []
            if (out / "trials" / "trial-0000.json").is_file() and ckpt:
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert (out / "trials" / "trial-0000.json").is_file()
    assert main(cmd[3:]) == 0
    recs = {p.name: json.loads(p.read_text()) for p in (out / "trials").glob("trial-*.json")}
    assert sorted(r["params"]["learning_rate"] for r in recs.values()) == [0.02, 0.04]
    ref = tmp_path / "ref"
    assert main(cmd[3:-1] + [str(ref)]) == 0
    assert _values(out) == _values(ref)  # resumed from the checkpoint: the same scores
    logs = "".join(p.read_text() for p in (out / "trials").glob("trial-*.log"))
    assert "resumed after epoch" in logs and len(recs) == 2  # trial 1 killed, run again as 2


def test_the_metric_direction_is_read_from_one_place(tuned, tmp_path, monkeypatch):
    assert direction("ndcg@10") == "maximize" and direction("auc") == "maximize"
    assert direction("rmse") == "minimize" and lower_is_better("MAE")
    monkeypatch.setattr(tune_study, "direction", lambda name: "minimize")
    res = _tune(tmp_path / "low")
    assert res.budget["direction"] == "minimize"
    assert res.best_value == min(r["value"] for r in tuned.trials)


def test_grid_values_are_parsed_as_yaml_with_lists_kept_whole():
    assert split_values("0.1, [64, 32],[16],x") == ["0.1", "[64, 32]", "[16]", "x"]
    assert parse_grid(["layers=[64, 32],[16]", "learning_rate=1e-3,0.01"]) == {
        "layers": [[64, 32], [16]], "learning_rate": ["1e-3", 0.01]}
    _, space = checked_space("KGAT", "synthetic", None, {}, parse_grid(["learning_rate=1e-3,0.01"]))
    assert space == {"learning_rate": [0.001, 0.01]}  # read as the schema reads it


@pytest.mark.parametrize("args, key", [
    (["--grid", "lerning_rate=0.1"], "lerning_rate"),
    (["--grid", "learning_rate=0.1,abc"], "learning_rate"),
    (["--grid", "n_heads=2,4"], "n_heads"),
    (["--grid", "learning_rate="], "learning_rate"),
    (["--grid", "epochs=2", "--grid", "epochs=3"], "epochs"),
    (["--grid", "valid_metric=ndcg@10"], "valid_metric"),
    (["--grid", "epochs=2,3", "--set", "epochs=4"], "epochs"),
    (["--grid", "learning_rate=0.1,1e-1"], "learning_rate"),
    (["--grid", "eval_protocol=full,sampled", "--set", "valid_metric=recall@10"], "valid_metric"),
    (["--grid", "model=BPR"], "model"),
])
def test_bad_grids_are_refused_in_one_line_before_anything_is_written(args, key, tmp_path, capsys):
    out = tmp_path / "t"
    assert main(["tune", "BPR", "synthetic", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"'{key}'" in err[0], err
    assert not out.exists()


def test_bad_options_are_refused(tmp_path, capsys):
    out = tmp_path / "t"
    for args, words in ((["--trials", "0"], "--trials"), (["--folds", "1"], "--folds")):
        assert main(["tune", "BPR", "synthetic", "--grid", "epochs=1", *args, "--out", str(out)]) == 2
        assert words in capsys.readouterr().err and not out.exists()
    with pytest.raises(MMKGRecError, match="sampler"):
        mmkgrec.tune("BPR", "synthetic", GRID, out=out, sampler="anneal")


def test_folds_average_the_validation_metric_over_the_training_folds(tmp_path):
    res = _tune(tmp_path / "f", folds=3, grid={"learning_rate": [0.01, 0.05]})
    for r in res.trials:
        assert [f["fold"] for f in r["folds"]] == [0, 1, 2]
        assert r["value"] == pytest.approx(sum(f["valid"]["mrr@10"] for f in r["folds"]) / 3)
        assert len(r["best_epoch"]) == 3
    assert res.budget["folds"] == 3 and "in 3 folds" in res.budget["name"]
    best = yaml.safe_load(res.best_yaml.read_text())
    assert best["split"] == "random_ratio"  # the chosen values over the base split, not a fold
    with pytest.raises(ConfigError, match="'split'"):
        _tune(tmp_path / "g", folds=3, grid={"split": ["random_ratio"]})


def test_folds_nest_inside_an_outer_kfold_fold_and_never_read_its_test_fold(tmp_path):
    outer = {**BASE, "split": "kfold", "n_folds": 4, "fold": 1}
    res = _tune(tmp_path / "n", folds=2, grid={"learning_rate": [0.01]}, overrides=outer)
    (r,) = res.trials
    assert [f["fold"] for f in r["folds"]] == [0, 1]
    assert res.budget["outer_fold"] == 1 and "in 2 inner folds of outer fold 1" in res.budget["name"]
    best = yaml.safe_load(res.best_yaml.read_text())  # the outer fold's configuration
    assert (best["split"], best["n_folds"], best["fold"], best["inner_folds"]) == ("kfold", 4, 1, 0)
    # what each inner fold trained and scored on: never an interaction of the outer test fold
    ds = load_dataset("synthetic", {"data_format": "synthetic"})
    test = split_dataset(ds, "kfold", seed=2020, n_folds=4, fold=1).test
    held = set(test.user * ds.n_items + test.item)
    for k in (0, 1):
        s = split_dataset(ds, "kfold", seed=2020, n_folds=4, fold=1, inner_folds=2, inner_fold=k)
        for part in (s.train, s.valid, s.test):
            assert not held & set(part.user * ds.n_items + part.item)
    for key, where in (("inner_fold", {"overrides": {**outer, "inner_fold": 1}}),
                       ("inner_folds", {"grid": {"inner_folds": [2]}})):
        with pytest.raises(ConfigError, match=f"'{key}'"):
            _tune(tmp_path / key, folds=2, **{"grid": {"learning_rate": [0.01]},
                                                "overrides": outer, **where})
        assert not (tmp_path / key).exists()
