import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mmkgrec.cli import main
from mmkgrec.data import load_dataset

Q = ["--set", "show_progress=false"]


def test_train_writes_a_complete_run_directory(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", "BPR", "--dataset", "synthetic", "--out", str(out),
                 "--set", "epochs=3", *Q]) == 0
    m = json.loads((out / "metrics.json").read_text())
    for key in ("model", "dataset", "seed", "best_epoch", "valid", "test", "timing", "peak_rss_mb",
                "versions", "git_sha", "command"):
        assert key in m, key
    for k in ("recall", "ndcg", "mrr", "hit", "precision"):
        assert f"{k}@10" in m["test"] and f"{k}@20" in m["test"]
    assert set(m["timing"]) == {"train_epoch_s", "eval_s", "total_s"}
    assert "--set epochs=3" in m["command"]
    assert {p.name for p in out.iterdir()} >= {"config.yaml", "log.txt", "model.safetensors",
                                              "metrics.json", "per_user_test.npz"}
    with np.load(out / "per_user_test.npz", allow_pickle=False) as z:
        assert len(z["user_ids"]) == m["n_test_users"]
        assert np.isclose(np.nanmean(z["ndcg@10"]), m["test"]["ndcg@10"])
    assert "ndcg@10" in capsys.readouterr().out

    assert main(["evaluate", str(out)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["ndcg@10"] == pytest.approx(m["test"]["ndcg@10"])
    assert main(["evaluate", str(out), "--set", "eval_protocol=sampled"]) == 0
    sampled = json.loads(capsys.readouterr().out)
    assert sampled["ndcg@10"] > again["ndcg@10"]  # 1 positive among 100 negatives is easier
    assert main(["evaluate", str(out), "--set", "learning_rate=0.1"]) != 0
    assert "learning_rate" in capsys.readouterr().err

    assert main(["recommend", str(out), "--user", "0", "-k", "5"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 5 and lines[0].startswith("1\t")
    ds = load_dataset("synthetic", {"data_format": "synthetic"})
    seen = set(ds.item_ids[ds.inter.item[ds.inter.user == ds.user_index("0")]])
    assert not {l.split("\t")[1] for l in lines} & seen

    pop = tmp_path / "pop"
    assert main(["train", "--model", "Pop", "--dataset", "synthetic", "--out", str(pop)]) == 0
    capsys.readouterr()
    assert main(["compare", str(out), str(pop), "--metric", "NDCG@10"]) == 0
    table = capsys.readouterr().out
    assert "p vs best (ndcg@10)" in table and "Pop" in table and "BPR" in table


def test_bad_config_key_fails_cleanly(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", "BPR", "--dataset", "synthetic", "--out", str(out),
                 "--set", "learning_rat=0.1"]) == 2
    assert "config key 'learning_rat'" in capsys.readouterr().err
    assert not out.exists() and not out.with_name("run.partial").exists()


def test_bad_data_fails_cleanly(tmp_path, capsys):
    d = tmp_path / "broken"
    d.mkdir()
    (d / "broken.inter").write_text("user_id:token\titem_id:token\trating:float\nu\ti\tx\n")
    out = tmp_path / "run"
    assert main(["train", "--model", "BPR", "--dataset", str(d), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "broken.inter, line 2" in err and "non-numeric value 'x'" in err
    assert not out.exists() and not out.with_name("run.partial").exists()


def test_existing_run_directory_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["train", "--model", "Pop", "--dataset", "synthetic", "--out", str(out)]) == 2
    assert "is not empty and is not a run" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine" and len(list(out.iterdir())) == 1


def test_data_info_and_export(tmp_path, capsys):
    assert main(["data", "info", "synthetic"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["dataset"]["n_users"] == 300 and info["split"]["method"] == "random_ratio"
    assert main(["data", "export-recbole", "synthetic", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "synthetic" / "synthetic.train.inter").is_file()


def test_download_recipe_converts_and_checks(tmp_path, monkeypatch):
    from mmkgrec.data.download import download, md5sum
    from mmkgrec.errors import MMKGRecError

    z = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("ml-100k/u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
        f.writestr("ml-100k/u.item", "242|Kolya (1996)|24-Jan-1997||http://x|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
                   "302|L.A. Confidential (1997)|01-Jan-1997||http://x|0|0|0|0|0|0|1|0|0|0|0|0|0|1|0|0|1|0|0\n")
        f.writestr("ml-100k/u.user", "196|49|M|writer|55105\n186|39|F|executive|00000\n")
    dest = tmp_path / "data"
    with pytest.raises(MMKGRecError, match="checksum mismatch"):
        download("ml-100k", dest, url=z.as_uri(), md5="0" * 32)
    assert not (dest / "ml-100k").exists() and not list(dest.iterdir())
    path = download("ml-100k", dest, url=z.as_uri(), md5=md5sum(z))
    ds = load_dataset(str(path))
    assert ds.n_users == 2 and ds.item_features["movie_title"][ds.item_index("302")] == ["L.A.", "Confidential"]
    assert ds.item_features["class"][ds.item_index("302")] == ["Crime", "Mystery", "Thriller"]
    assert ds.item_features["release_year"][ds.item_index("242")] == "1996"


def test_demo_without_data_runs_multikg4rec_on_synthetic(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("MMKGREC_DATA", raising=False)
    monkeypatch.setenv("MMKGREC_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--epochs", "1"]) == 0
    text = capsys.readouterr().out
    assert "SYNTHETIC" in text
    for model in ("Pop", "BPR", "KGAT", "MultiKG4Rec"):
        assert (out / model / "metrics.json").is_file(), model
        assert model in text
    cfg = (out / "MultiKG4Rec" / "config.yaml").read_text()
    assert "modalities:\n- text" in cfg  # the generated items have no images
    # the suggested full run names only real keys, with the values validation chose
    full = next(line for line in text.splitlines() if line.startswith("a full run"))
    sets = full.split("--set ")[1:]
    assert sorted(s.split("=")[0] for s in sets) == ["learning_rate", "reg_weight", "valid_metric"]
    from mmkgrec.config import load_config

    load_config("MultiKG4Rec", "synthetic", overrides=[s.strip() for s in sets])
    # the demo ends on the page: the command it prints serves the Multi-KG4Rec run
    serve = next(line for line in text.splitlines() if line.startswith("serve it"))
    assert serve.split("mmkgrec serve ")[1].split()[0] == str(out / "MultiKG4Rec")
    pytest.importorskip("fastapi", reason="the serve extra is not installed")
    from fastapi.testclient import TestClient

    from mmkgrec.serving.app import create_app

    with TestClient(create_app(out / "MultiKG4Rec")) as c:
        assert c.get("/health").json()["model"] == "MultiKG4Rec"
        user = c.get("/v1/users").json()["users"][0]
        items = c.get("/v1/recommend", params={"user": user, "k": 5}).json()["items"]
        assert len(items) == 5
        assert c.get("/v1/explain", params={"user": user, "item": items[0]["item"]}).status_code == 200


def test_set_takes_several_pairs_after_one_flag(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", "BPR", "--dataset", "synthetic", "--out", str(out),
                 "--set", "epochs=2", "learning_rate=0.01", "topk=[5, 10]",
                 "--set", "show_progress=false", "embedding_size=16"]) == 0
    import yaml

    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert (cfg["epochs"], cfg["learning_rate"], cfg["topk"], cfg["show_progress"],
            cfg["embedding_size"]) == (2, 0.01, [5, 10], False, 16)
    capsys.readouterr()
    assert main(["evaluate", str(out), "--set", "eval_protocol=sampled", "topk=[5]"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"mrr@5", "ndcg@5", "hit@5"}
    assert main(["data", "info", "synthetic", "--set", "split=leave_one_out", "seed=3"]) == 0
    assert json.loads(capsys.readouterr().out)["split"]["method"] == "leave_one_out"
    assert main(["evaluate", str(out), "--set", "topk=[5]", "oops"]) == 2
    assert "'oops'" in capsys.readouterr().err


def test_packaged_variant_configs_by_name(tmp_path, capsys, monkeypatch):
    from mmkgrec import api
    from mmkgrec.config import load_config

    names = api.variant_names()
    assert "MultiKG4Rec-t2v" in names and "Text-SASRec" in names
    with api.config_file_path("variant:MultiKG4Rec-t2v") as p:
        cfg = load_config("MultiKG4Rec", "synthetic", p)
    assert cfg["fusion"] == "t2v"
    monkeypatch.chdir(tmp_path)  # not from a checkout: the installed package's files
    out = tmp_path / "run"
    assert main(["train", "--model", "SASRec", "--dataset", "synthetic", "--out", str(out),
                 "--config", "variant:Text-SASRec", "--set", "epochs=0", *Q[1:]]) == 0
    assert "item_content: text" in (out / "config.yaml").read_text()
    capsys.readouterr()
    assert main(["train", "--model", "BPR", "--dataset", "synthetic", "--out",
                 str(tmp_path / "x"), "--config", "variant:No-Such"]) == 2
    err = capsys.readouterr().err
    assert "No-Such" in err and "MultiKG4Rec-t2v" in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()
    own = tmp_path / "mine.yaml"  # file paths keep working
    own.write_text("learning_rate: 0.02\n")
    assert main(["train", "--model", "Pop", "--dataset", "synthetic", "--out", str(tmp_path / "p"),
                 "--config", str(own)]) == 0


def test_no_progress_bar_when_stderr_is_not_a_terminal(tmp_path, monkeypatch, capsys):
    import tqdm

    made = []

    class Bar(tqdm.tqdm):
        def __init__(self, *a, **k):
            made.append(1)
            super().__init__(*a, **k)

    monkeypatch.setattr(tqdm, "tqdm", Bar)
    # show_progress defaults to true; stderr here is captured, not a terminal
    assert main(["train", "--model", "BPR", "--dataset", "synthetic", "--out",
                 str(tmp_path / "run"), "--set", "epochs=1"]) == 0
    assert made == []
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert main(["train", "--model", "BPR", "--dataset", "synthetic", "--out",
                 str(tmp_path / "run2"), "--set", "epochs=1"]) == 0
    assert made  # and on a terminal it is there
