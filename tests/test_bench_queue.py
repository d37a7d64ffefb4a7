"""Tests for the benchmark queues' shared mechanics (benchmarks/common.py): resumable jobs run by
several workers, jobs that wait for their tuning, and the equal random-search budget."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import common  # noqa: E402

SPACE = {"learning_rate": [0.001, 0.002, 0.005], "dropout": [0.1, 0.3]}


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    monkeypatch.setenv("MMKGREC_GIT_SHA", "test")
    return tmp_path


def test_trials_start_from_defaults_and_never_repeat():
    t = common.random_trials(SPACE, 5, "SASRec")
    assert t[0] == {} and len(t) == 5
    assert all(set(x) == set(SPACE) and all(x[k] in SPACE[k] for k in x) for x in t[1:])
    assert len({tuple(sorted(x.items())) for x in t[1:]}) == 4
    assert common.random_trials(SPACE, 5, "SASRec") == t  # the same on every machine and rerun
    assert common.random_trials(SPACE, 5, "GRU4Rec") != t  # each model its own draws
    # a space smaller than the budget: every setting once, then no more
    assert len(common.random_trials(SPACE, 50, "x")) == 1 + 6


def test_chosen_trial_takes_the_best_validation_and_waits_for_all(results):
    (results / "s").mkdir()
    for k, (score, trial) in enumerate([(0.10, {}), (0.30, {"dropout": 0.3}), (0.20, {"dropout": 0.1})]):
        if k < 2:
            (results / "s" / f"tune-m-t{k}.json").write_text(
                json.dumps({"valid": {"ndcg@10": score}, "trial": trial}))
    with pytest.raises(common.NotReady, match="tune-m-t2.json"):
        common.chosen_trial("s", "tune-m", 3, "ndcg@10")
    (results / "s" / "tune-m-t2.json").write_text(
        json.dumps({"valid": {"ndcg@10": 0.2}, "trial": {"dropout": 0.1}}))
    assert common.chosen_trial("s", "tune-m", 3, "ndcg@10") == (1, {"dropout": 0.3})
    for k, rmse in enumerate([0.95, 0.91, 0.93]):  # lower is better: the choice follows
        (results / "s" / f"tune-r-t{k}.json").write_text(
            json.dumps({"valid": {"rmse": rmse}, "trial": {"k": k}}))
    assert common.chosen_trial("s", "tune-r", 3, "rmse") == (1, {"k": 1})


def test_queue_runs_with_workers_resumes_and_skips_jobs_not_ready(results):
    seen, lock = [], threading.Lock()

    def runner(job):
        with lock:
            seen.append(job["id"])
        if job["id"] == "wait":
            raise common.NotReady("its tuning is missing")
        return {"value": job["id"]}

    jobs = [{"id": f"j{k}"} for k in range(6)] + [{"id": "wait"}]
    (results / "q").mkdir()
    (results / "q" / "j0.json").write_text("{}")  # done before: not run again
    common.run_queue("q", jobs, runner, workers=3)
    assert sorted(seen) == sorted(["j1", "j2", "j3", "j4", "j5", "wait"])
    written = sorted(p.stem for p in (results / "q").glob("*.json"))
    assert written == ["j0", "j1", "j2", "j3", "j4", "j5"]  # nothing for the job that waited
    r = json.loads((results / "q" / "j3.json").read_text())
    assert r["value"] == "j3" and r["job"] == "j3" and r["git_sha"] == "test"
    seen.clear()
    common.run_queue("q", jobs, runner, only="=j1,wait")
    assert seen == ["wait"]


def test_queue_records_the_load_around_each_run_unless_the_runner_measured_its_own(
        results, monkeypatch):
    loads = iter([(0.5, 0.2, 0.1), (1.25, 0.5, 0.2), (0.1, 0.1, 0.1), (0.2, 0.1, 0.1)])
    monkeypatch.setattr(common.os, "getloadavg", lambda: next(loads))
    common.run_queue("q", [{"id": "a"}, {"id": "b"}],
                     lambda job: {} if job["id"] == "a" else {"load_before": [9.0, 9.0, 9.0]})
    a, b = (json.loads((results / "q" / f"{j}.json").read_text()) for j in "ab")
    assert a["load_before"] == [0.5, 0.2, 0.1] and a["load_after"] == [1.25, 0.5, 0.2]
    assert b["load_before"] == [9.0, 9.0, 9.0] and b["load_after"] == [0.2, 0.1, 0.1]


PIN = ["--set", f"image_encoder={json.dumps('descriptor')}"]
LINK_PIN = ["--set", f"link_item_map={json.dumps(None)}"]


def _assert_rebuilds(model: str, ov: dict, row: Path, job_id: str, exact: bool = True) -> None:
    """A job rebuilt for ``row`` (``ov``) pins ``link_item_map: null`` if and only if the recorded
    run read ML-100K's external KG (computed with its ``.link`` as given), and names its image
    encoder if and only if the recorded run read image features: the pinned descriptor, or an encoder the job chose itself (an
    EfficientNet size; exported features on a GPU machine). A row recorded while the descriptor
    was the default lacks the pin in its command, and its recorded configuration must show that
    it read exactly that encoder. With ``exact``, the rest of the `--set` list (and `--config`)
    is the recorded command's."""
    import shlex

    from mmkgrec.models import get_model_class

    r = json.loads(row.read_text())
    ov = dict(ov)
    config_file = ov.pop("config_file", None)
    sets = [a for k, v in ov.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    recorded = shlex.split(r["command"])
    cfg = r["config"]
    reads_images = ("image" in get_model_class(model).requirements(cfg)
                    or "image" in (cfg.get("require_item_content") or []))
    assert ("image_encoder" in ov) == reads_images, job_id
    reads_link = ("kg" in get_model_class(model).requirements(cfg)
                  and cfg.get("load_kg", True) and cfg.get("kg_merge") in ("auto", "external", "both")
                  and r.get("dataset", "ml-100k") == "ml-100k")
    # rows that read ML-100K's external KG were computed with its .link as given
    assert (ov.get("link_item_map", "unset") is None) == reads_link, job_id
    # (a row that does not read the KG records whatever the packaged map was when it ran)
    assert cfg.get("link_item_map") is None or not reads_link, job_id
    if reads_link and "link_item_map" not in r["command"]:
        assert sets[-2:] == LINK_PIN, job_id
        sets = sets[:-2]
    if reads_images and "image_encoder" not in r["command"]:
        assert sets[-2:] == PIN and cfg["image_encoder"] == "descriptor", job_id
        sets = sets[:-2]
    if not exact:
        return
    assert recorded[recorded.index("--set"):] == sets, job_id
    if config_file:
        assert Path(recorded[recorded.index("--config") + 1]).name == Path(config_file).name
    else:
        assert "--config" not in recorded


def test_popularity_jobs_rebuild_the_exact_settings_of_the_rows_they_retrain():
    """Every job of benchmarks/popularity.py trains with the `--set` list (and `--config`) its
    row's recorded command used, so its groups describe that row and no other run; the rows
    that read images pin the descriptor they were computed with."""
    import popularity

    for job in popularity.jobs():
        try:
            model, ov, fields = popularity.settings(job)
        except popularity.common.NotReady:  # a stage-2 row not chosen yet, or the seq- job's run
            continue
        row = popularity.row_file({**job, **fields})
        if not row.exists():  # a row not run yet on this checkout has nothing to match
            continue
        _assert_rebuilds(model, ov, row, job["id"])
        own = common.RESULTS / popularity.SUITE / f"{job['id']}.json"
        if own.exists():  # the popularity run itself, recorded before the pin
            _assert_rebuilds(model, ov, own, job["id"])


@pytest.mark.parametrize("suite", ["multimodal", "sequential"])
def test_recorded_rows_pin_the_descriptor_where_they_read_images(suite):
    """Every recorded row of the suites whose queues rebuild a row's settings (``row_settings``)
    is rebuilt with ``image_encoder: descriptor`` exactly where the row read images, so the rows
    reproduce whatever the packaged default image encoder is. (Some rows predate settings that do
    not change results, such as ``threads``: the exact command is checked for popularity's.)"""
    import importlib

    mod = importlib.import_module(suite)
    jobs = mod.jobs() if suite == "multimodal" else mod.jobs(len(mod.SEEDS))
    checked = 0
    for job in jobs:
        row = common.RESULTS / suite / f"{job['id']}.json"
        if "lib" in job or not row.exists():
            continue
        try:
            model, ov, *_ = mod.row_settings(job)
        except common.NotReady:
            continue
        _assert_rebuilds(model, ov, row, job["id"], exact=False)
        checked += 1
    assert checked > 0


def test_commands_name_the_repository_not_the_machine():
    """A stored command from another checkout or machine reads relative to the repository root it
    ran in; an interpreter outside that checkout reads `python`; inputs outside it stay."""
    rel = common.relative_command
    assert rel("/work/main/benchmarks/../.venv/bin/python -m mmkgrec.cli train --model BPR --out "
               "/work/main/benchmarks/work/runs/kg/BPR-s2021 --config "
               "/work/main/src/mmkgrec/configs/variant/KGAT-lastfm-ctr.yaml --set seed=2021") == (
        ".venv/bin/python -m mmkgrec.cli train --model BPR --out benchmarks/work/runs/kg/BPR-s2021 "
        "--config src/mmkgrec/configs/variant/KGAT-lastfm-ctr.yaml --set seed=2021")
    assert rel("/opt/torch/.venv/bin/python3 -m mmkgrec.cli train --out /root/repo/benchmarks/work/"
               "runs/gpu/x --set 'text_encoder=\"file:/root/repo/.dev/features/t.npz\"' --set "
               "'image_encoder=\"file:/data/f/i.npz\"'") == (
        "python -m mmkgrec.cli train --out benchmarks/work/runs/gpu/x --set "
        "'text_encoder=\"file:.dev/features/t.npz\"' --set 'image_encoder=\"file:/data/f/i.npz\"'")
    assert rel("/tmp/rbpy /w/b/benchmarks/recbole_runner.py --data-dir /w/b/benchmarks/work/splits/s "
               "--set 'valid_metric=\"NDCG@20\"'") == (
        "python benchmarks/recbole_runner.py --data-dir benchmarks/work/splits/s --set "
        "'valid_metric=\"NDCG@20\"'")
    assert rel("benchmarks/features.py") == "benchmarks/features.py"  # already relative
    assert rel(["/x/y/.venv/bin/python", "/x/y/benchmarks/bound.py", "--k", "20"], "/x/y") == (
        ".venv/bin/python benchmarks/bound.py --k 20")  # an argument list, with its root given


def test_queue_records_commands_relative_to_the_repository(results):
    out = common.ROOT / "benchmarks" / "work" / "runs" / "x"
    cmd = [sys.executable, "-m", "mmkgrec.cli", "train", "--out", str(out), "--set", "seed=1"]
    common.run_queue("q", [{"id": "a"}], lambda job: {"command": " ".join(cmd)})
    recorded = json.loads((results / "q" / "a.json").read_text())["command"]
    assert recorded.endswith(" -m mmkgrec.cli train --out benchmarks/work/runs/x --set seed=1")
    assert str(common.ROOT) not in recorded and not recorded.startswith("/")


def test_reproduce_fingerprints_feature_stores_by_item_id(tmp_path):
    """The features a rerun encoded are named by encoder version and a hash of each item's vector
    keyed by its id, so two stores with the same vectors in another row order agree."""
    import numpy as np

    import reproduce

    def store(root, ids, matrix, version="v1"):
        d = root / "features" / "ds-1" / "text" / "enc-1"
        d.mkdir(parents=True)
        np.save(d / "matrix-00001.npy", np.asarray(matrix, dtype=np.float32))
        (d / "manifest.json").write_text(json.dumps({
            "ids": ids, "n_rows": len(ids), "matrix": "matrix-00001.npy",
            "encoder": {"name": "enc", "version": version, "dim": 2}}))

    store(tmp_path / "a", ["1", "2"], [[1, 2], [3, 4]])
    store(tmp_path / "b", ["2", "1"], [[3, 4], [1, 2]])
    store(tmp_path / "c", ["1", "2"], [[1, 2], [3, 4.0000005]])
    a, b, c = (reproduce.feature_stores(tmp_path / x) for x in "abc")
    assert list(a) == ["ds-1/text/enc-1"] and a == b and a["ds-1/text/enc-1"]["version"] == "v1"
    assert c["ds-1/text/enc-1"]["sha256"] != a["ds-1/text/enc-1"]["sha256"]


def test_reproduce_reads_a_packaged_file_of_another_checkout_from_this_one(tmp_path):
    """A row recorded in another checkout names its variant file by that checkout's absolute
    path; the rerun reads the same file of this checkout (other arguments as recorded)."""
    from pathlib import Path

    import reproduce

    row = {"job": "x", "config": {}, "command": (
        "python -m mmkgrec.cli train --model MMRACLKAL --config "
        "/elsewhere/repo/src/mmkgrec/configs/variant/MMRACLKAL-wo-cl.yaml --out /elsewhere/run "
        "--set seed=1")}
    cmd = reproduce.rerun_command(row, tmp_path / "run", pin=False)
    mapped = Path(cmd[cmd.index("--config") + 1])
    assert mapped == reproduce.ROOT / "src/mmkgrec/configs/variant/MMRACLKAL-wo-cl.yaml"
    assert mapped.exists() and cmd[cmd.index("--out") + 1] == str(tmp_path / "run")
    assert reproduce._in_checkout("/elsewhere/nothing/src/no-such-file") == (
        "/elsewhere/nothing/src/no-such-file")
    other = tmp_path / "control" / "src" / "mmkgrec" / "configs" / "variant"
    other.mkdir(parents=True)
    (other / "MMRACLKAL-wo-cl.yaml").write_text("{}")
    cmd = reproduce.rerun_command(row, tmp_path / "run", pin=False, root=tmp_path / "control")
    assert cmd[cmd.index("--config") + 1] == str(other / "MMRACLKAL-wo-cl.yaml")


def test_learned_image_rows_name_their_encoder_so_the_descriptor_pin_leaves_them():
    """The rows measured again with the learned image encoder (issue 18) name it themselves, so
    ``pins`` adds no descriptor to them, while the descriptor rows they sit beside keep the pin;
    the control is its row's settings with the feature rows shuffled."""
    import multimodal
    import sequential

    enc = multimodal.LEARNED_ENCODER
    assert enc != "descriptor"
    checked = 0
    for job in multimodal.learned_jobs():
        try:
            model, ov, fields = multimodal.row_settings(job)
        except common.NotReady:  # a row whose tuning runs are not stored yet
            continue
        assert ov["image_encoder"] == enc, job["id"]
        base = multimodal.LEARNED_CONTROLS.get(job["variant"])
        if base is not None:
            _, base_ov, _ = multimodal.row_settings({**job, "variant": base})
            assert ov == {**base_ov, "shuffle_features": True}, job["id"]
        checked += 1
    assert checked >= len(multimodal.LRS) * (len(multimodal.LEARNED) - 1)  # every tuning run
    for v, learned in multimodal.LEARNED_OF.items():  # the descriptor row beside it stays pinned
        _, ov, _ = multimodal.row_settings({"variant": v, "seed": 2020, "lr": 0.001})
        _, lov, _ = multimodal.row_settings({"variant": learned, "seed": 2020, "lr": 0.001})
        assert ov["image_encoder"] == "descriptor" and lov["image_encoder"] == enc
        assert {k: x for k, x in lov.items() if k != "image_encoder"} == {
            k: x for k, x in ov.items() if k != "image_encoder"}, v
    for row in [*sequential.LEARNED_LADDER, *sequential.LEARNED_RUNGS]:
        _, ov, _, variant = sequential.row_settings({"row": row, "seed": 2020})
        rung = row.removesuffix(f"-{multimodal.LEARNED_TAG}")
        _, dov, _, dvariant = sequential.row_settings({"row": rung, "seed": 2020})
        assert ov["image_encoder"] == enc and dov["image_encoder"] == "descriptor"
        assert variant == dvariant and {k: x for k, x in ov.items() if k != "image_encoder"} == {
            k: x for k, x in dov.items() if k != "image_encoder"}


def test_a_learned_rows_seed_2020_run_is_its_tuning_run_at_the_chosen_rate(results):
    """A learned row tuned in the queue takes its seed-2020 run from the tuning run at the chosen
    rate (the same command but the output folder) instead of training it again, and says so; the
    image-only VBPR row (tuned at an earlier commit), the control and other seeds train."""
    import multimodal

    v = f"VBPR-both-{multimodal.LEARNED_TAG}"
    (results / "multimodal").mkdir()
    for lr, score in zip(multimodal.LRS, (0.20, 0.22, 0.21)):
        (results / "multimodal" / f"tune-{v}-lr{lr}.json").write_text(json.dumps(
            {"job": f"tune-{v}-lr{lr}", "valid": {"ndcg@10": score}, "test": {"ndcg@10": score},
             "git_sha": "abc", "command": "train", "tuning": True, "chosen_lr": lr}))
    r = multimodal.run({"id": f"{v}-s2020", "variant": v, "seed": 2020})
    lr = multimodal.LRS[1]
    assert r["reused_from"] == f"tune-{v}-lr{lr}" and r["source_git_sha"] == "abc"
    assert r["tuning"] is False and r["chosen_lr"] == lr and r["variant"] == v and "job" not in r
    assert r["test"] == {"ndcg@10": 0.22}
    for job in ({"variant": v, "seed": 2021}, {"variant": v, "seed": 2020, "lr": lr},
                {"variant": f"VBPR-image-{multimodal.LEARNED_TAG}", "seed": 2020},
                {"variant": f"VBPR-image-{multimodal.LEARNED_TAG}-shuffled", "seed": 2020}):
        assert multimodal.reused_tuning_run(job) is None, job


def test_explain_per_user_jobs_resume_after_whole_users_and_stop_in_time(tmp_path, monkeypatch):
    """The long explanation jobs append each finished user and resume after the last whole one
    (a line cut by a kill runs again); a file of another draw is refused; under ``--until`` a
    user that would end too late is not started."""
    import explain

    monkeypatch.setattr(explain, "WORK", tmp_path)
    calls = []

    def one(user):
        calls.append(user)
        return {"rows": [user], "wall": [1.0], "cpu": [1.0]}

    done, stopped = explain.per_user("j", ["a", "b"], one)
    assert [d["user"] for d in done] == ["a", "b"] and stopped is None and calls == ["a", "b"]
    partial = tmp_path / "explain" / "j.partial.jsonl"
    partial.write_text(partial.read_text().splitlines()[0] + "\n" + '{"rows": ["b"], "wa')
    done, _ = explain.per_user("j", ["a", "b", "c"], one)
    assert calls == ["a", "b", "b", "c"] and [d["rows"] for d in done] == [["a"], ["b"], ["c"]]
    with pytest.raises(RuntimeError, match="other users"):
        explain.per_user("j", ["x", "a", "b"], one)
    monkeypatch.setattr(explain.ARGS, "until", "00:00")
    monkeypatch.setattr(explain, "_deadline", lambda: 0.0)  # long past
    done, stopped = explain.per_user("j", ["a", "b", "c", "d"], one)
    assert len(done) == 3 and calls[-1] == "c" and stopped.startswith("3 of 4 users")


def test_explain_per_user_second_process_from_the_end_meets_the_forward_run(tmp_path, monkeypatch):
    """``--from-end`` runs a job's users backwards into its own file and writes no result; the
    forward run stops at the first user that file holds and returns every user once, in order
    (the forward run's record where both ran the meeting user)."""
    import explain
    from common import NotReady

    monkeypatch.setattr(explain, "WORK", tmp_path)
    users = ["a", "b", "c", "d", "e"]
    calls = []

    def one(tag):
        def run(user):
            calls.append((tag, user))
            return {"rows": [f"{tag}:{user}"], "wall": [1.0], "cpu": [1.0]}
        return run

    (tmp_path / "explain").mkdir()
    forward = tmp_path / "explain" / "j.partial.jsonl"
    forward.write_text("".join(json.dumps({"user": u, "rows": [f"fwd:{u}"], "wall": [1.0],
                                           "cpu": [1.0], "user_s": 1.0}) + "\n"
                               for u in ("a", "b", "c")))
    monkeypatch.setattr(explain.ARGS, "from_end", True)
    with pytest.raises(NotReady, match="from the end"):
        explain.per_user("j", users, one("tail"))
    assert calls == [("tail", "e"), ("tail", "d")]  # then c, in the forward file: it stopped
    tail = tmp_path / "explain" / "j.tail.partial.jsonl"
    assert [json.loads(x)["user"] for x in tail.read_text().splitlines()] == ["e", "d"]
    assert all(json.loads(x)["from_end"] for x in tail.read_text().splitlines())
    monkeypatch.setattr(explain.ARGS, "from_end", False)
    calls.clear()
    done, stopped = explain.per_user("j", users, one("fwd"))
    assert calls == [] and stopped is None  # d is in the tail file: nothing left to run
    assert [d["user"] for d in done] == users
    assert [d["rows"][0] for d in done] == ["fwd:a", "fwd:b", "fwd:c", "tail:d", "tail:e"]
    assert explain.users_fields(users, done, None)["users_from_end"] == 2
    # a meeting user both ran counts once, the forward run's
    tail.write_text(tail.read_text() + json.dumps({"user": "c", "rows": ["tail:c"], "wall": [1.0],
                                                   "cpu": [1.0], "user_s": 1.0}) + "\n")
    done, _ = explain.per_user("j", users, one("fwd"))
    assert [d["rows"][0] for d in done] == ["fwd:a", "fwd:b", "fwd:c", "tail:d", "tail:e"]
    # a forward run that meets no tail runs on; a tail file of another draw is refused
    tail.unlink()
    done, _ = explain.per_user("j", users, one("fwd"))
    assert calls == [("fwd", "d"), ("fwd", "e")] and len(done) == 5
    forward.write_text("".join(forward.read_text().splitlines(keepends=True)[:3]))
    tail.write_text('{"user": "x"}\n')
    with pytest.raises(RuntimeError, match="other users"):
        explain.per_user("j", users, one("fwd"))


def test_retune_keeps_a_tunes_record_in_the_repository_and_its_checkpoints_out():
    """A tune of many hours spans fresh checkouts: its spec, journal, trials and chosen
    configuration are tracked; the checkpoints of the trial in progress are ignored."""
    import subprocess

    import retune

    root = common.ROOT
    d = retune.tune_dir("MultiKG4Rec")
    assert d.is_relative_to(root) and not d.is_relative_to(common.WORK)
    rel = d.relative_to(root)

    def ignored(p):
        return subprocess.run(["git", "check-ignore", "-q", "--no-index", str(rel / p)],
                              cwd=root).returncode == 0

    kept = ["spec.json", "study.journal", "trials/trial-0000.json", "trials/trial-0000.log",
            "best.yaml", "tune.json"]
    assert not [p for p in kept if ignored(p)]
    assert all(ignored(p) for p in ["work/abc/run/checkpoint.pt", "runs/trial-0000/x", ".lock"])


def test_retune_runs_a_tune_from_the_repository_root_with_a_relative_folder(monkeypatch):
    """The tune writes its own command into the kept files: it must name no machine's path."""
    import retune

    seen = {}

    class Stop(Exception):
        pass

    def fake_run(cmd, log, env=None, cwd=None):
        seen.update(cmd=cmd, cwd=cwd)
        raise Stop

    monkeypatch.setattr(retune, "run_cmd", fake_run)
    with pytest.raises(Stop):
        retune.tune({"id": "tune-MultiKG4Rec", "row": "MultiKG4Rec"})
    out = seen["cmd"][seen["cmd"].index("--out") + 1]
    assert out == "benchmarks/tunes/retune/MultiKG4Rec"
    assert Path(seen["cwd"]) == common.ROOT


def test_reproduce_skips_a_row_whose_config_file_is_gone_and_reads_one_that_is_here():
    import reproduce

    row = {"library": "mmkgrec", "job": "x", "test": {}, "config": {}, "command": (
        "python -m mmkgrec.cli train --model MKGAT --config benchmarks/work/retune/gone/best.yaml "
        "--set seed=1")}
    said = reproduce.missing_config(row)
    assert "benchmarks/work/retune/gone/best.yaml, is not in this checkout" in said
    assert reproduce.why_not(row) is None  # still a row of the kind the report counts
    row["command"] = ("python -m mmkgrec.cli train --model MMRACLKAL --config "
                      "/elsewhere/repo/src/mmkgrec/configs/variant/MMRACLKAL-wo-cl.yaml")
    assert reproduce.missing_config(row) is None


def test_reproduce_says_in_one_line_where_a_failed_rerun_logged(tmp_path, monkeypatch, capsys):
    import subprocess

    import reproduce

    src = tmp_path / "row.json"
    src.write_text(json.dumps({"library": "mmkgrec", "suite": "s", "job": "x", "test": {},
                               "config": {}, "command": "python -m mmkgrec.cli train --set seed=1"}))

    def fail(cmd, log, env=None, cwd=None):
        raise subprocess.CalledProcessError(2, cmd)

    monkeypatch.setattr(reproduce, "OUT", tmp_path / "out")
    monkeypatch.setattr(reproduce, "run_cmd", fail)
    assert reproduce.main([str(src)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the rerun failed (exit 2); see benchmarks/work/reproduce/x.log" in err[0]
    assert not (tmp_path / "out").exists()
