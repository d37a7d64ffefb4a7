"""The bad-input suite (issue 17): every class of careless or hostile input, run in-process
through ``mmkgrec.cli.main(argv)`` (a subprocess only for the signal), each asserting the exit
code, one ``mmkgrec: error:`` line and no traceback, the file / line / key / id the line must
name, and that nothing half-written (``*.partial`` but a resumable run, temporary files, a run
directory) is left behind.

Groups: every configuration key's type, bound, choice and null class (generated from the
schema), configuration files, every reader, the dataset-level rules, every CLI command, the run
directory's files, resume, output folders, non-finite training, a full disk (an injected
``OSError(ENOSPC)``), an internal error, and SIGINT.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import mmkgrec
from mmkgrec import api, runs
from mmkgrec.cli import main
from mmkgrec.config_schema import KEYS, SET_BY_COMMAND

QUIET = ["show_progress=false"]
FAST = ["epochs=1", "show_progress=false"]


# ---- helpers ---------------------------------------------------------------------------------
def _leftovers(root: Path, keep_partial: bool = False) -> list[Path]:
    """Half-written things under ``root``: temporary files and (unless ``keep_partial``)
    ``*.partial`` folders."""
    out = []
    for p in root.rglob("*"):
        if ".tmp" in p.name or (p.name.endswith(".partial") and not keep_partial):
            out.append(p)
    return out


def fails(capsys, argv, *names, code: int = 2, root: Path | None = None,
          keep_partial: bool = False) -> str:
    """Run ``mmkgrec argv``; assert the exit ``code``, exactly one error line naming every one
    of ``names``, no traceback, and nothing half-written under ``root``. Returns the line."""
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert rc == code, f"exit {rc}, expected {code}; stderr:\n{err}"
    assert "Traceback" not in err and "Traceback" not in out, err
    lines = [line for line in err.splitlines() if line.startswith("mmkgrec: error:")]
    assert len(lines) == 1, err
    for name in names:
        assert str(name) in lines[0], f"{name!r} not in {lines[0]!r}"
    if root is not None:
        assert not _leftovers(root, keep_partial), _leftovers(root, keep_partial)
    return lines[0]


def ok(capsys, argv) -> str:
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return out


def write(folder: Path, files: dict[str, str | bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        p = folder / name
        p.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return folder


INTER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + "".join(
    f"{u}\t{i}\t{1 + (ord(u) + ord(i)) % 5}\t{k}\n"
    for k, (u, i) in enumerate((u, i) for u in "abcdef" for i in "pqrstuvwxyz"))


def tiny(tmp_path: Path, name: str = "tiny", **files) -> Path:
    """An atomic dataset folder ``name`` (``INTER`` unless ``inter`` is given)."""
    files = {f"{name}.{ext}": text for ext, text in files.items()}
    files.setdefault(f"{name}.inter", INTER)
    return write(tmp_path / name, files)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "bpr"
    api.train("BPR", "synthetic", out, overrides={"epochs": 2, "show_progress": False})
    return out


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(finished_run, dst)
    return dst


# ---- 1. every configuration key: wrong type, out of bounds, not a choice, null -----------------
def _model_of(key) -> str:
    return key.models[0] if key.models else "BPR"


def _wrong_type(key) -> str:
    return {bool: "maybe", int: "abc", float: "abc", str: "[1, 2]", list: "{a: 1}"}[key.type]


def _outside(key, typ):
    """A value just outside the key's bounds (``None`` when it has none)."""
    step = 1 if typ is int else 0.5
    if key.ge is not None:
        return key.ge - step
    if key.gt is not None:
        return key.gt
    if key.le is not None:
        return key.le + step
    if key.lt is not None:
        return key.lt
    return None


SETTABLE = [k for k in KEYS.values() if k.name not in SET_BY_COMMAND]
TYPE_CASES = [pytest.param(k.name, _wrong_type(k), id=f"type-{k.name}") for k in SETTABLE]
BOUND_CASES = []
for _k in SETTABLE:
    _typ = _k.item if _k.type is list else _k.type
    if _typ in (int, float) and not _k.choices:
        _v = _outside(_k, _typ)
        if _v is not None:
            BOUND_CASES.append(pytest.param(_k.name, f"[{_v}]" if _k.type is list else str(_v),
                                            id=f"bound-{_k.name}"))
CHOICE_CASES = [pytest.param(k.name, "[nonesuch]" if k.type is list else "nonesuch",
                             id=f"choice-{k.name}") for k in SETTABLE if k.choices]
NULL_CASES = [pytest.param(k.name, "null", id=f"null-{k.name}") for k in SETTABLE
              if not k.nullable]


@pytest.mark.parametrize("key, value", TYPE_CASES + BOUND_CASES + CHOICE_CASES + NULL_CASES)
def test_every_config_key_class_is_refused_before_anything_is_written(key, value, tmp_path,
                                                                       capsys):
    out = tmp_path / "run"
    fails(capsys, ["train", "--model", _model_of(KEYS[key]), "--dataset", "synthetic", "--out",
                   out, "--set", f"{key}={value}"], f"config key '{key}'", "--set", root=tmp_path)
    assert not out.exists()


# the examples the issue names, by their own values
@pytest.mark.parametrize("setting, key", [
    ("train_batch_size=0", "train_batch_size"), ("eval_step=0", "eval_step"),
    ("num_neg=0", "num_neg"), ("metrics=[foo]", "metrics"), ("learning_rate=.nan", "learning_rate"),
    ("learning_rate=.inf", "learning_rate"), ("weight_decay=-1", "weight_decay"),
    ("rating_threshold=abc", "rating_threshold"), ("valid_ratio=2", "valid_ratio"),
    ("sampled_negatives=0", "sampled_negatives"), ("embedding_size=0", "embedding_size"),
    ("topk=[0]", "topk"), ("split_ratio=[0.5, 0.6]", "split_ratio"),
    ("device=tpu", "device"), ("valid_metric=foo@10", "valid_metric"),
    ("learning_rat=0.1", "learning_rat"), ("n_heads=2", "n_heads"),
])
def test_named_config_examples(setting, key, tmp_path, capsys):
    fails(capsys, ["train", "--model", "BPR", "--dataset", "synthetic", "--out", tmp_path / "r",
                   "--set", setting], f"'{key}'", root=tmp_path)
    assert not (tmp_path / "r").exists()


# ---- 2. configuration files and command-line shapes -------------------------------------------
@pytest.mark.parametrize("content, named", [
    ("learning_rate: [unclosed", "invalid YAML"),
    ("- a\n- b\n", "expected a mapping"),
    ("learning_rate: abc\n", "learning_rate"),
    ("nonesuch: 1\n", "nonesuch"),
    ("model: LightGCN\n", "model"),
    (b"learning_rate: 0.1 \xff\n", "cannot be read"),
])
def test_bad_config_file(content, named, tmp_path, capsys):
    f = tmp_path / "my.yaml"
    f.write_bytes(content if isinstance(content, bytes) else content.encode())
    fails(capsys, ["train", "--model", "BPR", "--dataset", "synthetic", "--out", tmp_path / "r",
                   "--config", f], named, root=tmp_path)


@pytest.mark.parametrize("argv, named", [
    (["--config", "nonesuch.yaml"], "nonesuch.yaml"),
    (["--config", "variant:nonesuch"], "nonesuch"),
    (["--set", "learning_rate"], "learning_rate"),
    (["--set", "model=LightGCN"], "model"),
    (["--set", "dataset=ml-100k"], "dataset"),
])
def test_bad_train_arguments(argv, named, tmp_path, capsys):
    fails(capsys, ["train", "--model", "BPR", "--dataset", "synthetic", "--out", tmp_path / "r",
                   *argv], named, root=tmp_path)


@pytest.mark.parametrize("model, settings, key", [
    ("SASRec", ["hidden_size=64", "n_heads=3"], "n_heads"),
    ("BERT4Rec", ["hidden_size=10", "n_heads=4"], "n_heads"),
    ("MultiKG4Rec", ["embedding_size=30", "fusion_heads=8", "modalities=[text]"], "fusion_heads"),
])
def test_keys_that_must_agree_are_refused_before_anything_is_written(model, settings, key,
                                                                      tmp_path, capsys):
    fails(capsys, ["train", "--model", model, "--dataset", "synthetic", "--out", tmp_path / "r",
                   "--set", *FAST, *settings], f"config key '{key}'", root=tmp_path)
    assert not (tmp_path / "r").exists()


def test_unknown_model_names_it(tmp_path, capsys):
    fails(capsys, ["train", "--model", "NoSuchModel", "--dataset", "synthetic", "--out",
                   tmp_path / "r"], "NoSuchModel", root=tmp_path)


# ---- 3. readers: every file kind and its faults ----------------------------------------------
BAD_ATOMIC = {
    "non-utf8-inter": (dict(inter=INTER.encode() + b"g\tp\xff\t1\t99\n"),
                       ["tiny.inter, line 68", "UTF-8", "0xff"]),
    "non-utf8-item": (dict(item=b"item_id:token\ttitle:token\np\tcaf\xe9\n"),
                      ["tiny.item, line 2", "UTF-8"]),
    "comma-header": (dict(inter="user_id:token,item_id:token\na,p\n"),
                     ["tiny.inter, line 1", "tab-separated"]),
    "comma-row": (dict(inter="user_id:token\titem_id:token\na,p\n"),
                  ["tiny.inter, line 2", "comma-separated"]),
    "unknown-type": (dict(inter="user_id:token\titem_id:int\na\tp\n"), ["tiny.inter", "int"]),
    "no-type": (dict(inter="user_id\titem_id:token\na\tp\n"), ["tiny.inter, line 1", "user_id"]),
    "duplicate-column": (dict(inter="user_id:token\tuser_id:token\na\tb\n"),
                         ["tiny.inter, line 1", "duplicate"]),
    "missing-item-column": (dict(inter="user_id:token\trating:float\na\t1\n"),
                            ["tiny.inter", "item_id"]),
    "empty-file": (dict(inter=""), ["tiny.inter, line 1", "empty"]),
    "field-count": (dict(inter="user_id:token\titem_id:token\na\tp\tx\n"),
                    ["tiny.inter, line 2", "expected 2"]),
    "non-numeric-rating": (dict(inter="user_id:token\titem_id:token\trating:float\na\tp\tfive\n"),
                           ["tiny.inter, line 2", "five"]),
    "rating-as-token": (dict(inter="user_id:token\titem_id:token\trating:token\na\tp\t5\n"),
                        ["tiny.inter", "rating"]),
    "nan-timestamp": (dict(inter=INTER + "g\tp\t3\t\n"), ["tiny.inter, line 68", "timestamp"]),
    "nan-literal-timestamp": (dict(inter=INTER + "g\tp\t3\tnan\n"),
                              ["tiny.inter, line 68", "timestamp"]),
    "inf-rating": (dict(inter=INTER + "g\tp\tinf\t1\n"), ["tiny.inter, line 68", "rating"]),
    "empty-user-id": (dict(inter=INTER + "\tp\t3\t5\n"), ["tiny.inter, line 68", "user_id"]),
    "blank-item-id": (dict(inter=INTER + "g\t  \t3\t5\n"), ["tiny.inter, line 68", "item_id"]),
    "duplicate-item-row": (dict(item="item_id:token\ttitle:token\np\tA\nq\tB\np\tC\n"),
                           ["tiny.item, line 4", "'p'", "line 2"]),
    "duplicate-user-row": (dict(user="user_id:token\tage:float\na\t1\na\t2\n"),
                           ["tiny.user, line 3", "'a'"]),
    "kg-without-link": (dict(kg="head_id:token\trelation_id:token\ttail_id:token\ne1\tr\te2\n"),
                        ["tiny.kg", "tiny.link"]),
    "link-without-kg": (dict(link="item_id:token\tentity_id:token\np\te1\n"),
                        ["tiny.link", "tiny.kg"]),
    "kg-missing-column": (dict(kg="head_id:token\ttail_id:token\ne1\te2\n",
                               link="item_id:token\tentity_id:token\np\te1\n"),
                          ["tiny.kg", "relation_id"]),
    "link-missing-column": (dict(kg="head_id:token\trelation_id:token\ttail_id:token\ne\tr\tf\n",
                                 link="item_id:token\tentity:token\np\te1\n"),
                            ["tiny.link", "entity_id"]),
    "non-utf8-kg": (dict(kg=b"head_id:token\trelation_id:token\ttail_id:token\ne\xc3\tr\tf\n",
                         link="item_id:token\tentity_id:token\np\te\n"),
                    ["tiny.kg, line 2", "UTF-8"]),
}


@pytest.mark.parametrize("case", sorted(BAD_ATOMIC))
def test_bad_atomic_files(case, tmp_path, capsys):
    files, names = BAD_ATOMIC[case]
    d = tiny(tmp_path, **files)
    fails(capsys, ["data", "info", d], *names, root=tmp_path)


@pytest.mark.parametrize("case", sorted(BAD_ATOMIC)[:8])
def test_bad_atomic_files_stop_train_before_anything_is_written(case, tmp_path, capsys):
    files, names = BAD_ATOMIC[case]
    d = tiny(tmp_path, **files)
    out = tmp_path / "r"
    fails(capsys, ["train", "--model", "BPR", "--dataset", d, "--out", out], *names,
          root=tmp_path)
    assert not out.exists()


@pytest.mark.parametrize("settings, named", [
    (["rating_threshold=9"], "empty after filtering"),
    (["user_min_inter=100"], "empty after filtering"),
    (["subsample_users=0"], "subsample_users"),
])
def test_data_rules_that_leave_nothing(settings, named, tmp_path, capsys):
    d = tiny(tmp_path)
    fails(capsys, ["data", "info", d, "--set", *settings], named, root=tmp_path)


def test_rating_threshold_on_data_without_ratings(tmp_path, capsys):
    d = tiny(tmp_path, inter="user_id:token\titem_id:token\na\tp\nb\tq\n")
    fails(capsys, ["data", "info", d, "--set", "rating_threshold=1"], "rating_threshold")


def _kgat(tmp_path, train="0 0 1 2 3\n1 1 2 3 4\n2 0 2 4\n", test="0 4\n1 0\n2 1\n", kg=None):
    files = {"train.txt": train, "test.txt": test}
    if kg is not None:
        files["kg_final.txt"] = kg
    return write(tmp_path / "mykgat", files)


@pytest.mark.parametrize("kwargs, named", [
    (dict(train="0 1 x\n"), ["train.txt, line 1", "'x'"]),
    (dict(test=b"0 1\n1 \xff\n"), ["test.txt, line 2", "UTF-8"]),
    (dict(kg="0 1\n"), ["kg_final.txt, line 1", "expected 3"]),
    (dict(test=""), ["nothing to test"]),
    (dict(test="7 1\n"), ["nothing to test"]),
])
def test_bad_kgat_folder(kwargs, named, tmp_path, capsys):
    d = _kgat(tmp_path, **kwargs)
    fails(capsys, ["data", "info", d, "--set", "split=given"], *named, root=tmp_path)


def test_kgat_folder_is_not_split_past_its_test_file(tmp_path, capsys):
    d = _kgat(tmp_path)
    fails(capsys, ["data", "info", d], "config key 'split'", "test file", "given")
    info = json.loads(ok(capsys, ["data", "info", d, "--set", "split=given"]))
    assert info["split"]["test"] == 3


KGCN_RATINGS = "".join(f"{u}\t{i}\t{int((u + i) % 3 != 0)}\n" for u in range(8) for i in range(9))


def _kgcn(tmp_path, ratings=KGCN_RATINGS, name="myfm", own=None):
    files = {"ratings_final.txt": ratings, "kg_final.txt": "0\t0\t5\n1\t1\t5\n"}
    if own is not None:
        files[f"{name}.yaml"] = own
    return write(tmp_path / name, files)


def test_kgcn_folder_without_a_label_rule_is_refused(tmp_path, capsys):
    d = _kgcn(tmp_path)
    fails(capsys, ["data", "info", d], "config key 'rating_threshold'", "KGCN", "myfm.yaml")
    fails(capsys, ["train", "--model", "BPR", "--dataset", d, "--out", tmp_path / "r"],
          "rating_threshold", root=tmp_path)


def test_kgcn_labels_0_are_not_interactions_with_the_folders_own_rule(tmp_path, capsys):
    d = _kgcn(tmp_path, own="rating_threshold: 1\n")
    info = json.loads(ok(capsys, ["data", "info", d]))
    positives = sum(int(line.split("\t")[2]) for line in KGCN_RATINGS.splitlines())
    assert info["dataset"]["n_interactions"] == positives < 72  # the label-1 rows only


@pytest.mark.parametrize("own, named", [
    ("rating_threshold: abc\n", ["myfm.yaml", "rating_threshold"]),
    ("nonesuch: 1\n", ["myfm.yaml", "nonesuch"]),
    ("rating_threshold: [1\n", ["myfm.yaml", "invalid YAML"]),
])
def test_bad_dataset_folder_settings_name_their_file(own, named, tmp_path, capsys):
    d = _kgcn(tmp_path, own=own)
    fails(capsys, ["data", "info", d], *named)


def test_bad_kgcn_ratings_line(tmp_path, capsys):
    d = _kgcn(tmp_path, ratings="0\t0\t1\n0\t1\n", own="rating_threshold: 1\n")
    fails(capsys, ["data", "info", d], "ratings_final.txt, line 2", "expected 3")


@pytest.mark.parametrize("name, named", [
    ("nonesuch", "nonesuch"),
    ("../outside", "outside"),
])
def test_dataset_names_stay_under_the_data_root(name, named, tmp_path, monkeypatch, capsys):
    root = tmp_path / "data"
    root.mkdir()
    tiny(tmp_path, name="outside")  # beside the root, reachable by ../outside
    monkeypatch.setenv("MMKGREC_DATA", str(root))
    here = tmp_path / "a" / "b"  # ../outside does not exist from here: a name, not a path
    here.mkdir(parents=True)
    monkeypatch.chdir(here)
    fails(capsys, ["data", "info", name], named)


def test_unknown_folder_format(tmp_path, capsys):
    d = write(tmp_path / "odd", {"readme.txt": "nothing here"})
    fails(capsys, ["data", "info", d], "cannot tell the format", "odd")


# ---- 4. images: paths confined, URLs opt-in, bombs refused -----------------------------------
def _with_images(tmp_path, column_values: dict[str, str]):
    item = "item_id:token\tposter:token\n" + "".join(f"{i}\t{v}\n" for i, v in
                                                       column_values.items())
    return tiny(tmp_path, item=item)


@pytest.mark.parametrize("value, key", [
    ("https://example.com/a.jpg", "allow_url_images"),
    ("../secret.png", "allow_outside_paths"),
    ("/etc/passwd", "allow_outside_paths"),
])
def test_image_column_boundaries(value, key, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MMKGREC_CACHE", str(tmp_path / "cache"))
    d = _with_images(tmp_path, {"p": value})
    fails(capsys, ["features", "extract", "--dataset", d, "--text", "none", "--image",
                   "descriptor", "--set", "image_column=poster", *QUIET], f"config key '{key}'",
          "'p'")


def test_relative_image_dir_outside_the_dataset(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MMKGREC_CACHE", str(tmp_path / "cache"))
    (tmp_path / "elsewhere").mkdir()
    d = tiny(tmp_path)
    fails(capsys, ["features", "extract", "--dataset", d, "--text", "none", "--image",
                   "descriptor", "--set", "image_dir=../elsewhere", *QUIET],
          "allow_outside_paths", "image_dir")


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    from PIL import Image

    from mmkgrec.features.content import load_image

    p = tmp_path / "bomb.png"
    Image.new("1", (12000, 12000)).save(p)  # a few KB on disk, 144 M pixels decoded
    assert p.stat().st_size < 100_000
    with pytest.raises(ValueError, match="decompression-bomb limit"):
        load_image(str(p))


# ---- 5. CLI commands on a finished run -------------------------------------------------------
@pytest.mark.parametrize("argv, named", [
    (["recommend", "{run}", "--user", "nobody"], "'nobody'"),
    (["recommend", "{run}", "--user", "1", "-k", "0"], "-k"),
    (["recommend", "{run}", "--user", "1", "-k", "-3"], "-k"),
    (["recommend", "{run}", "--all"], "--out"),
    (["recommend", "{run}", "--user", "1", "--device", "tpu"], "device"),
    (["similar", "{run}", "--item", "nothing"], "'nothing'"),
    (["similar", "{run}", "--item", "1", "-k", "0"], "-k"),
    (["evaluate", "{run}", "--set", "learning_rate=1"], "learning_rate"),
    (["evaluate", "{run}", "--set", "topk=[0]"], "topk"),
    (["evaluate", "{run}", "--set", "metrics=[foo]"], "metrics"),
    (["evaluate", "{run}", "--set", "eval_protocol=sampled", "sampled_negatives=100000"],
     "maximum"),
    (["evaluate", "{run}", "--by-popularity", "0"], "--by-popularity"),
    (["evaluate", "{missing}"], "nope"),
    (["recommend", "{missing}", "--user", "1"], "nope"),
    (["compare", "{run}", "{missing}"], "nope"),
    (["compare", "{run}", "--metric", "foo@10"], "foo@10"),
])
def test_commands_on_a_run(argv, named, finished_run, tmp_path, capsys):
    argv = [a.format(run=finished_run, missing=tmp_path / "nope") for a in argv]
    fails(capsys, argv, named, root=tmp_path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
@pytest.mark.parametrize("argv", [
    ["train", "--model", "BPR", "--dataset", "synthetic", "--out", "{tmp}/r", "--set",
     "device=cuda"],
    ["recommend", "{run}", "--user", "1", "--device", "cuda"],
    ["evaluate", "{run}", "--device", "cuda:1"],
])
def test_cuda_without_a_gpu(argv, finished_run, tmp_path, capsys):
    argv = [a.format(run=finished_run, tmp=tmp_path) for a in argv]
    fails(capsys, argv, "'device'", "CUDA", root=tmp_path)
    assert not (tmp_path / "r").exists()


def test_recommend_all_into_a_folder_leaves_no_temporary_file(finished_run, tmp_path, capsys):
    target = tmp_path / "already-a-folder.csv"
    target.mkdir()
    fails(capsys, ["recommend", finished_run, "--all", "--out", target], "already-a-folder",
          root=tmp_path)


@pytest.mark.parametrize("argv, named", [
    (["data", "download", "nonesuch", "--dest", "{tmp}"], "nonesuch"),
    (["data", "download", "ml-100k", "--dest", "{tmp}"], "cannot download"),
    (["features", "extract", "--dataset", "synthetic", "--text", "nonesuch:x", "--image",
      "none"], "nonesuch"),
    (["features", "export", "--dataset", "synthetic", "--modality", "text", "--out",
      "{tmp}/f.npz", "--encoder", "file:{tmp}/none.npz"], "none.npz"),
    (["tune", "BPR", "synthetic", "--grid", "nonesuch=1,2", "--out", "{tmp}/t"], "nonesuch"),
    (["tune", "BPR", "synthetic", "--grid", "learning_rate=-1,2", "--out", "{tmp}/t"],
     "learning_rate"),
    (["data", "export-recbole", "synthetic", "--out", "{tmp}/x", "--set", "split=nonesuch"],
     "split"),
])
def test_other_commands(argv, named, tmp_path, monkeypatch, capsys):
    import urllib.request

    def offline(*a, **k):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlretrieve", offline)
    monkeypatch.setenv("MMKGREC_CACHE", str(tmp_path / "cache"))
    fails(capsys, [a.format(tmp=tmp_path) for a in argv], named, root=tmp_path)
    assert not (tmp_path / "ml-100k").exists()


# ---- 6. the run directory's files -------------------------------------------------------------
def _flip(path: Path, offset: int = -5) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 2)])


RUN_FAULTS = {
    "weights-truncated": ("model.safetensors", _truncate),
    "weights-flipped": ("model.safetensors", _flip),
    "weights-missing": ("model.safetensors", Path.unlink),
    "split-flipped": ("split.safetensors", _flip),
    "ids-flipped": ("ids.safetensors", _flip),
    "ids-missing": ("ids.safetensors", Path.unlink),
    "exclude-truncated": ("exclude.safetensors", _truncate),
    "items-flipped": ("items.safetensors", _flip),
    "config-invalid-yaml": ("config.yaml", lambda p: p.write_text("model: [BPR\n")),
    "config-missing": ("config.yaml", Path.unlink),
    "config-not-a-mapping": ("config.yaml", lambda p: p.write_text("- 1\n")),
    "metrics-truncated": ("metrics.json", _truncate),
    "metrics-missing": ("metrics.json", Path.unlink),
    "manifest-truncated": ("run.json", _truncate),
    "manifest-missing": ("run.json", Path.unlink),
    "manifest-not-an-object": ("run.json", lambda p: p.write_text("[1, 2]")),
}


@pytest.mark.parametrize("command", ["recommend", "evaluate"])
@pytest.mark.parametrize("fault", sorted(RUN_FAULTS))
def test_run_directory_faults_name_the_file(fault, command, run_copy, capsys):
    name, damage = RUN_FAULTS[fault]
    damage(run_copy / name)
    argv = (["recommend", run_copy, "--user", "1"] if command == "recommend"
            else ["evaluate", run_copy])
    fails(capsys, argv, name)


COMPARE_FAULTS = {
    "metrics-empty-object": ("metrics.json", lambda p: p.write_text("{}")),
    "metrics-truncated": ("metrics.json", _truncate),
    "metrics-missing": ("metrics.json", Path.unlink),
    "per-user-truncated": ("per_user_test.npz", _truncate),
    "config-invalid-yaml": ("config.yaml", lambda p: p.write_text("a: [1\n")),
    "config-not-a-mapping": ("config.yaml", lambda p: p.write_text("- 1\n")),
}


@pytest.mark.parametrize("fault", sorted(COMPARE_FAULTS))
def test_compare_names_a_damaged_file(fault, finished_run, run_copy, capsys):
    name, damage = COMPARE_FAULTS[fault]
    damage(run_copy / name)
    fails(capsys, ["compare", finished_run, run_copy], name)


def test_a_bad_key_in_a_runs_config_is_blamed_on_that_file(run_copy, capsys):
    cfg = run_copy / "config.yaml"
    cfg.write_text(cfg.read_text().replace("learning_rate: 0.001", "learning_rate: abc"))
    line = fails(capsys, ["evaluate", run_copy], "config.yaml", "learning_rate")
    assert "--set" not in line


def test_index_flipped_for_similar(run_copy, capsys):
    index = sorted(p for p in (run_copy / "index").iterdir() if p.is_file())
    _flip(index[-1], len(index[-1].read_bytes()) // 2)
    fails(capsys, ["similar", run_copy, "--item", "1"], "index")


def test_nan_weights_are_refused_not_recommended_from(run_copy, capsys):
    from safetensors.torch import load_file

    path = run_copy / "model.safetensors"
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    state = load_file(str(path))
    k = sorted(state)[0]
    state[k][0, 0] = float("nan")
    runs.save_weights(path, state, meta)
    m = json.loads((run_copy / "run.json").read_text())
    m["checksums"]["model.safetensors"] = runs.file_sha256(path)  # a consistent, NaN run
    (run_copy / "run.json").write_text(json.dumps(m))
    fails(capsys, ["recommend", run_copy, "--user", "1"], "not finite", k)
    fails(capsys, ["evaluate", run_copy], "not finite", k)


def test_split_altered_consistently_is_caught_by_the_fingerprint(run_copy):
    data = runs.RunData(run_copy)
    user_ids, item_ids = data.ids()
    indptr, indices = data.exclusion()
    from mmkgrec.data.dataset import Dataset, Interactions

    ds = Dataset(name="synthetic", user_ids=user_ids[::-1].copy(), item_ids=item_ids,
                 inter=Interactions(np.repeat(np.arange(data.n_users), np.diff(indptr)), indices))
    with pytest.raises(mmkgrec.errors.ChecksumError, match="fingerprint"):
        data.check_fingerprint(ds, data.split(ds))


# ---- 7. output folders: never lose a file -----------------------------------------------------
def test_train_refuses_a_foreign_folder(tmp_path, capsys):
    out = write(tmp_path / "mine", {"thesis.tex": "years of work"})
    fails(capsys, ["train", "--model", "Pop", "--dataset", "synthetic", "--out", out,
                   "--overwrite"], "mine", "not a run", root=tmp_path)
    assert (out / "thesis.tex").read_text() == "years of work" and len(list(out.iterdir())) == 1


def test_train_refuses_a_file_as_out(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    fails(capsys, ["train", "--model", "Pop", "--dataset", "synthetic", "--out", f], "file",
          root=tmp_path)
    assert f.read_text() == "x"


def test_train_refuses_a_run_without_overwrite_and_overwrite_keeps_other_files(tmp_path,
                                                                             capsys):
    out = tmp_path / "run"
    ok(capsys, ["train", "--model", "Pop", "--dataset", "synthetic", "--out", out])
    first = json.loads((out / "run.json").read_text())["run_id"]
    (out / "notes.md").write_text("keep me")
    fails(capsys, ["train", "--model", "Pop", "--dataset", "synthetic", "--out", out],
          "--overwrite", root=tmp_path)
    ok(capsys, ["train", "--model", "Pop", "--dataset", "synthetic", "--out", out,
                "--overwrite"])
    assert json.loads((out / "run.json").read_text())["run_id"] != first
    assert (out / "notes.md").read_text() == "keep me"
    assert not _leftovers(tmp_path)


def test_train_refuses_a_foreign_partial_folder(tmp_path, capsys):
    write(tmp_path / "run.partial", {"mine.txt": "x"})
    fails(capsys, ["train", "--model", "Pop", "--dataset", "synthetic", "--out", tmp_path / "run"],
          "run.partial")
    assert (tmp_path / "run.partial" / "mine.txt").read_text() == "x"


def test_demo_refuses_a_foreign_folder_before_training(tmp_path, capsys):
    out = write(tmp_path / "demo", {"data.csv": "1,2"})
    fails(capsys, ["demo", "--out", out, "--epochs", "1"], "demo", "not empty")
    assert (out / "data.csv").read_text() == "1,2" and len(list(out.iterdir())) == 1


def test_demo_refuses_a_foreign_model_folder_in_its_own(tmp_path, capsys):
    out = write(tmp_path / "demo", {".mmkgrec-demo": ""})
    write(out / "BPR", {"mine.txt": "x"})
    fails(capsys, ["demo", "--out", out, "--epochs", "1"], "BPR")
    assert (out / "BPR" / "mine.txt").read_text() == "x"


# ---- 8. non-finite training: stopped, named, nothing reported ---------------------------------
@pytest.mark.parametrize("model, settings", [
    ("BPR", ["learning_rate=1e30"]),
    ("LightGCN", ["learning_rate=1e30", "train_batch_size=64"]),
])
def test_training_that_diverges_stops_naming_epoch_and_tensor(model, settings, tmp_path, capsys):
    out = tmp_path / "r"
    line = fails(capsys, ["train", "--model", model, "--dataset", "synthetic", "--out", out,
                          "--set", "epochs=3", *QUIET, *settings], "epoch 0", root=tmp_path)
    assert "loss" in line or "parameter" in line
    assert not out.exists()


def test_nan_in_a_features_file_names_the_file_and_item(tmp_path, capsys):
    ids = np.asarray([str(i) for i in range(200)])
    feats = np.ones((200, 4), dtype=np.float32)
    feats[7, 2] = np.nan
    f = tmp_path / "text.npz"
    np.savez(f, item_ids=ids, features=feats)
    fails(capsys, ["train", "--model", "VBPR", "--dataset", "synthetic", "--out", tmp_path / "r",
                   "--set", "modalities=[text]", f"text_encoder=file:{f}", *FAST],
          "text.npz", "NaN", root=tmp_path)


def test_sampled_negatives_beyond_the_unseen_items(tmp_path, capsys):
    fails(capsys, ["train", "--model", "Pop", "--dataset", "synthetic", "--out", tmp_path / "r",
                   "--set", "eval_protocol=sampled", "sampled_negatives=100000", "valid_metric=hit@10"],
          "sampled_negatives", "maximum", root=tmp_path)


# ---- 9. resume: the same run or nothing -------------------------------------------------------
@pytest.fixture
def interrupted(tmp_path, monkeypatch, capsys):
    """A LightGCN run interrupted (Ctrl-C) after its epochs, before its files were written:
    ``<out>.partial`` with a checkpoint."""
    out = tmp_path / "run"

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(runs, "write_run_data", interrupt)
        fails(capsys, ["train", "--model", "LightGCN", "--dataset", "synthetic", "--out", out,
                       "--set", "epochs=2", *QUIET], "interrupted", "--resume", code=130,
              root=tmp_path, keep_partial=True)
    assert runs.resumable(out.with_name("run.partial")) and not out.exists()
    return out


@pytest.mark.parametrize("settings, named", [
    (["learning_rate=0.01"], "learning_rate"),
    (["seed=7"], "seed"),
    (["epochs=1"], "epochs"),
    (["n_layers=3"], "n_layers"),
])
def test_resume_refuses_a_changed_config(settings, named, interrupted, capsys):
    fails(capsys, ["train", "--model", "LightGCN", "--dataset", "synthetic", "--out", interrupted,
                   "--set", "epochs=2", *QUIET, *settings, "--resume"], f"'{named}'",
          root=interrupted.parent, keep_partial=True)
    assert runs.resumable(interrupted.with_name("run.partial"))  # untouched


def test_resume_refuses_another_model(interrupted, capsys):
    fails(capsys, ["train", "--model", "BPR", "--dataset", "synthetic", "--out", interrupted,
                   "--set", "epochs=2", *QUIET, "--resume"], "'model'", keep_partial=True)


def test_resume_refuses_a_damaged_checkpoint(interrupted, capsys):
    ckpt = interrupted.with_name("run.partial") / "checkpoint"
    latest = ckpt / (ckpt / "LATEST").read_text().strip()
    (latest / "state.json").write_text("{not json")
    fails(capsys, ["train", "--model", "LightGCN", "--dataset", "synthetic", "--out", interrupted,
                   "--set", "epochs=2", *QUIET, "--resume"], "state.json")
    assert (latest / "state.json").read_text() == "{not json"  # kept for the user to decide


def test_resume_with_resumable_keys_completes(interrupted, capsys):
    ok(capsys, ["train", "--model", "LightGCN", "--dataset", "synthetic", "--out", interrupted,
                "--set", "epochs=3", "threads=1", "eval_batch_size=100", *QUIET, "--resume"])
    assert (interrupted / "run.json").is_file() and not _leftovers(interrupted.parent)


def test_resume_across_a_key_added_since(interrupted, capsys):
    """A run interrupted before the library gained a key (its config.yaml lacks it) resumes at
    that key's default, the behaviour the run had; another value of the key is refused."""
    import yaml

    cfg_path = interrupted.with_name("run.partial") / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg.pop("negative_items")
    cfg_path.write_text(yaml.safe_dump(cfg))
    fails(capsys, ["train", "--model", "LightGCN", "--dataset", "synthetic", "--out", interrupted,
                   "--set", "epochs=2", *QUIET, "negative_items=seen", "--resume"],
          "'negative_items'", root=interrupted.parent, keep_partial=True)
    ok(capsys, ["train", "--model", "LightGCN", "--dataset", "synthetic", "--out", interrupted,
                "--set", "epochs=2", *QUIET, "--resume"])
    assert (interrupted / "run.json").is_file()


def test_resume_refuses_changed_data(tmp_path, monkeypatch, capsys):
    d = tiny(tmp_path)
    out = tmp_path / "run"

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(runs, "write_run_data", interrupt)
        fails(capsys, ["train", "--model", "BPR", "--dataset", d, "--out", out, "--set",
                       "epochs=1", *QUIET], "interrupted", code=130)
    (d / "tiny.inter").write_text(INTER + "g\tp\t3\t100\n")
    fails(capsys, ["train", "--model", "BPR", "--dataset", d, "--out", out, "--set", "epochs=1",
                   *QUIET, "--resume"], "data", "run.partial", keep_partial=True)


# ---- 10. a full disk, an internal error, --debug, SIGINT --------------------------------------
def _enospc(*a, **k):
    raise OSError(errno.ENOSPC, "No space left on device", "model.safetensors")


def test_full_disk_before_any_checkpoint_leaves_nothing(tmp_path, monkeypatch, capsys):
    from mmkgrec.training import trainer

    monkeypatch.setattr(trainer, "save_file", _enospc)
    fails(capsys, ["train", "--model", "BPR", "--dataset", "synthetic", "--out", tmp_path / "r",
                   "--set", *FAST], "no space left", root=tmp_path)
    assert not (tmp_path / "r").exists()


def test_full_disk_in_a_later_checkpoint_keeps_the_run_without_temporaries(tmp_path, monkeypatch,
                                                                           capsys):
    from safetensors.torch import save_file

    from mmkgrec.training import trainer

    calls = []

    def fill_up(*a, **k):  # epoch 0 writes its weights and best weights; epoch 1 finds no room
        calls.append(1)
        if len(calls) > 2:
            _enospc()
        save_file(*a, **k)

    out = tmp_path / "r"
    monkeypatch.setattr(trainer, "save_file", fill_up)
    fails(capsys, ["train", "--model", "BPR", "--dataset", "synthetic", "--out", out, "--set",
                   "epochs=3", *QUIET], "no space left", root=tmp_path, keep_partial=True)
    ckpt = out.with_name("r.partial") / "checkpoint"
    assert (ckpt / "LATEST").read_text().strip() == "epoch-0" and not out.exists()


def test_full_disk_at_the_end_keeps_a_resumable_run_only(tmp_path, monkeypatch, capsys):
    out = tmp_path / "r"
    with monkeypatch.context() as m:
        m.setattr(runs, "save_weights", _enospc)
        fails(capsys, ["train", "--model", "BPR", "--dataset", "synthetic", "--out", out,
                       "--set", *FAST], "no space left", root=tmp_path, keep_partial=True)
    assert runs.resumable(out.with_name("r.partial")) and not out.exists()
    ok(capsys, ["train", "--model", "BPR", "--dataset", "synthetic", "--out", out, "--set",
                *FAST, "--resume"])
    assert (out / "model.safetensors").is_file() and not _leftovers(tmp_path)


def test_full_disk_while_writing_recommendations(finished_run, tmp_path, monkeypatch, capsys):
    from mmkgrec import api as api_mod

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(api_mod._CsvRows, "write", full)
    fails(capsys, ["recommend", finished_run, "--all", "--out", tmp_path / "all.csv"],
          "no space left", root=tmp_path)
    assert not (tmp_path / "all.csv").exists()


def test_an_internal_error_is_one_line_and_debug_shows_the_traceback(tmp_path, monkeypatch,
                                                                    capsys):
    from mmkgrec import api as api_mod

    def broken(*a, **k):
        raise TypeError("something the library did not expect")

    monkeypatch.setattr(api_mod, "prepare", broken)
    argv = ["train", "--model", "BPR", "--dataset", "synthetic", "--out", tmp_path / "r"]
    fails(capsys, argv, "internal error", "TypeError", "--debug", code=1, root=tmp_path)
    with pytest.raises(TypeError):
        main(["--debug", *map(str, argv)])
    with pytest.raises(TypeError):
        main([*map(str, argv), "--debug"])


def test_sigint_while_training_exits_130_and_keeps_a_resumable_run(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(Path(mmkgrec.__file__).parents[1]),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "mmkgrec.cli", "train", "--model", "LightGCN",
                             "--dataset", "synthetic", "--out", str(out), "--set", "epochs=500",
                             "stopping_step=0", "threads=1", *QUIET],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # a shell's background job (nohup make test &) ignores SIGINT, and
                            # the child would inherit that: give it the default, as a terminal has
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    latest = out.with_name("run.partial") / "checkpoint" / "LATEST"
    deadline = time.monotonic() + 120
    while not latest.is_file() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert latest.is_file(), proc.stderr.read() if proc.poll() is not None else "no checkpoint"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("mmkgrec: error:")]
    assert len(lines) == 1 and "interrupted" in lines[0] and "--resume" in lines[0]
    assert runs.resumable(out.with_name("run.partial")) and not out.exists()
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name and p.is_file()]
