"""Self-contained runs: a run directory answers without the dataset (recommend, evaluate,
similar items), strings are stored compactly, loading never unpickles, and a missing, truncated
or foreign file is refused with one line naming it."""

import json
import pickle
import shutil

import numpy as np
import pytest
import torch

import mmkgrec
from mmkgrec import api, runs
from mmkgrec.cli import main
from mmkgrec.errors import MMKGRecError

QUIET = {"show_progress": False, "threads": 1}


@pytest.fixture(scope="module")
def bpr_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "bpr"
    api.train("BPR", "synthetic", out, overrides={**QUIET, "epochs": 3})
    return out


@pytest.fixture(scope="module")
def pop_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "pop"
    api.train("Pop", "synthetic", out, overrides=QUIET)
    return out


@pytest.fixture
def no_data(monkeypatch):
    """Reading or splitting a dataset, or reading the feature store, fails (a machine without
    ``MMKGREC_DATA``)."""
    monkeypatch.delenv("MMKGREC_DATA", raising=False)

    def refuse(*a, **k):
        raise AssertionError("a loaded run must not read or split the dataset")

    import mmkgrec.data.split as split_mod
    import mmkgrec.features as features
    import mmkgrec.graph.kg as kg_mod

    monkeypatch.setattr(api, "load_dataset", refuse)
    monkeypatch.setattr(api, "split_from_config", refuse)
    monkeypatch.setattr(split_mod, "split_dataset", refuse)
    monkeypatch.setattr(features, "item_feature_matrix", refuse)
    monkeypatch.setattr(kg_mod.KnowledgeGraph, "from_dataset", classmethod(refuse))


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def _seen(run, user):
    ptr, idx = runs.RunData(run.path).exclusion()
    u = run.user_index(user)
    return {str(run.dataset.item_ids[i]) for i in idx[ptr[u]:ptr[u + 1]]}


def test_loaded_run_answers_without_the_dataset(bpr_run, tmp_path, no_data, monkeypatch):
    moved = _copy(bpr_run, tmp_path / "elsewhere")
    # loading never unpickles
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("unpickled"))
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("unpickled"))
    run = mmkgrec.load(moved)
    metrics = json.loads((moved / "metrics.json").read_text())
    assert run.evaluate("test") == metrics["test"]
    assert run.evaluate("valid") == metrics["valid"]
    recs = run.recommend("0", k=10)
    assert len(recs) == 10 and not {i for i, _ in recs} & _seen(run, "0")
    assert [s for _, s in recs] == sorted((s for _, s in recs), reverse=True)
    # after evaluate (which resets the model's caches) recommend answers the same
    assert run.recommend("0", k=10) == recs
    batch = run.recommend_batch(["0", "5"], k=10)
    assert [i for i, _ in batch[0]] == [i for i, _ in recs]
    assert [i for i, _ in batch[1]] == [i for i, _ in run.recommend("5", k=10)]


def test_recommend_matches_the_trained_run_and_full_scoring(tmp_path):
    trained = api.train("LightGCN", "synthetic", tmp_path / "lgcn",
                        overrides={**QUIET, "epochs": 2})
    loaded = api.load(tmp_path / "lgcn")
    assert loaded.recommend("7", 15) == trained.recommend("7", 15)
    # the answer is the full-scoring one: every item scored, the user's items left out
    u = loaded.user_index("7")
    loaded.model.eval()
    with torch.no_grad():
        loaded.model.prepare_eval()
        scores = loaded.model.score_all(torch.tensor([u]))[0]
    seen = [loaded.item_index(i) for i in _seen(loaded, "7")]
    scores[seen] = -torch.inf
    want = torch.sort(scores, descending=True, stable=True).indices[:15]
    assert [i for i, _ in loaded.recommend("7", 15)] == [str(loaded.dataset.item_ids[i])
                                                          for i in want.tolist()]


@pytest.mark.parametrize("model,overrides", [
    ("SASRec", {"split": "time_ratio", "epochs": 1, "max_seq_length": 20, "n_layers": 1,
                "train_batch_size": 512}),
    ("KGAT", {"epochs": 1}),
    ("VBPR", {"epochs": 1, "modalities": ["text"], "text_encoder": "file:{features}"}),
])
def test_each_kind_of_model_evaluates_from_its_run_directory(model, overrides, tmp_path,
                                                             monkeypatch):
    ov = {**QUIET, **overrides}
    if "text_encoder" in ov:  # content features from a file, as a GPU machine reads them
        from mmkgrec.data import load_dataset

        ds = load_dataset("synthetic", {"data_format": "synthetic"})
        rng = np.random.default_rng(0)
        path = tmp_path / "text.npz"
        np.savez(path, item_ids=np.asarray(ds.item_ids, dtype=str),
                 features=rng.normal(size=(ds.n_items, 12)).astype(np.float32))
        ov["text_encoder"] = f"file:{path}"
        ov["shuffle_features"] = True
    run = api.train(model, "synthetic", tmp_path / "run", overrides=ov)
    if "text_encoder" in ov:
        (tmp_path / "text.npz").unlink()  # the run keeps the features it was built from
    with monkeypatch.context() as m:
        m.setattr(api, "load_dataset", lambda *a, **k: pytest.fail("read the dataset"))
        loaded = api.load(tmp_path / "run")
    assert loaded.evaluate("test") == run.metrics["test"]
    assert loaded.recommend("3", 5) == run.recommend("3", 5)
    for name, p in run.model.state_dict().items():
        assert torch.equal(p, loaded.model.state_dict()[name]), name
    if model == "KGAT":
        kg = loaded.kg
        assert kg.n_items == loaded.split.n_items and len(kg.triples)
        np.testing.assert_array_equal(kg.triples, run.model.kg.triples)
    if model == "SASRec":  # the split's timestamps and order are kept for next-item evaluation
        for part in ("train", "valid", "test"):
            a, b = run.split.part(part), loaded.split.part(part)
            np.testing.assert_array_equal(a.user, b.user)
            np.testing.assert_array_equal(a.item, b.item)
            np.testing.assert_array_equal(a.timestamp, b.timestamp)


def test_ctr_run_evaluates_from_its_run_directory(tmp_path):
    ov = {**QUIET, "epochs": 1, "eval_protocol": "ctr", "valid_metric": "auc",
          "split_ratio": [0.6, 0.2, 0.2], "train_loss": "bce"}
    run = api.train("BPR", "synthetic", tmp_path / "ctr", overrides=ov)
    loaded = api.load(tmp_path / "ctr")
    assert loaded.evaluate("test") == run.metrics["test"]
    assert set(loaded.split.labelled) == {"train", "valid", "test"}


def test_item_metadata_and_ids_survive(tmp_path, atomic_dir):
    long_user = "u" * 4000
    d = atomic_dir({
        "inter": "user_id:token\titem_id:token\ttimestamp:float\n" + "".join(
            f"{u}\t{i}\t{t}\n" for t, (u, i) in enumerate(
                [(u, i) for u in [long_user, "b", "c", "d", "é"] for i in "pqrstuvw"])),
        "item": "item_id:token\ttitle:token_seq\tyear:float\tgenre:token\n"
                "p\tThe Film\t1999\tdrama\nq\tÜber\t\t\nr\tA\t2001\tcomedy\n",
    })
    api.train("BPR", str(d), tmp_path / "run", overrides={**QUIET, "epochs": 1})
    loaded = api.load(tmp_path / "run")
    assert long_user in set(loaded.dataset.user_ids) and "é" in set(loaded.dataset.user_ids)
    # strings are a blob plus offsets, not fixed-width arrays as wide as the longest id
    ids = runs.RunData(tmp_path / "run").read("ids")
    assert ids["user_ids.blob"].nbytes < 4000 + 100
    assert (tmp_path / "run" / "ids.safetensors").stat().st_size < 6000
    from mmkgrec.data import load_dataset

    ds = load_dataset(str(d), {"data_format": "atomic"})
    f = loaded.dataset.item_features
    assert loaded.dataset.item_feature_types == ds.item_feature_types
    for name, col in ds.item_features.items():
        for a, b in zip(col, f[name]):
            assert (a == b) or (a != a and b != b) or (list(a) == list(b)), (name, a, b)
    p, q = loaded.item_index("p"), loaded.item_index("q")
    assert f["title"][p] == ["The", "Film"] and f["title"][q] == ["Über"]
    assert f["year"][p] == 1999 and np.isnan(f["year"][q])
    assert f["genre"][p] == "drama" and f["genre"][loaded.item_index("s")] is None  # no row
    assert len(loaded.recommend(long_user, 3, exclude_seen=False)) == 3
    assert loaded.recommend(long_user, 3) == []  # every item is one of the user's


def test_similar_items_for_models_with_item_vectors(bpr_run, pop_run, capsys):
    run = api.load(bpr_run)
    sims = run.similar_items("3", k=5)
    assert len(sims) == 5 and "3" not in {i for i, _ in sims}
    v = runs.RunData(bpr_run).item_vectors()
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    cos = v @ v[run.item_index("3")]
    cos[run.item_index("3")] = -np.inf
    want = [str(run.dataset.item_ids[i]) for i in np.argsort(-cos, kind="stable")[:5]]
    assert [i for i, _ in sims] == want
    np.testing.assert_allclose([s for _, s in sims], np.sort(cos)[::-1][:5], rtol=1e-5)
    # the stored vectors are the model's
    run.model.eval()
    with torch.no_grad():
        run.model.prepare_eval()
        np.testing.assert_array_equal(run.model.item_vectors().numpy(), runs.RunData(bpr_run).item_vectors())
    assert main(["similar", str(bpr_run), "--item", "3", "-k", "4"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [l.split("\t")[1] for l in lines] == want[:4]
    with pytest.raises(MMKGRecError, match="Pop exposes no item vectors"):
        api.load(pop_run).similar_items("3")
    assert main(["similar", str(pop_run), "--item", "3"]) == 2
    assert "no item vectors" in capsys.readouterr().err


def test_unknown_ids_are_named(bpr_run, capsys):
    run = api.load(bpr_run)
    with pytest.raises(runs.UnknownIdError, match="unknown user id 'nobody'"):
        run.recommend("nobody")
    with pytest.raises(KeyError):  # still a KeyError for callers that catch one
        run.recommend_batch(["0", "nobody"])
    with pytest.raises(runs.UnknownIdError, match="unknown item id 'zz'"):
        run.similar_items("zz")
    for argv in (["recommend", str(bpr_run), "--user", "nobody"],
                 ["similar", str(bpr_run), "--item", "zz"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and ("'nobody'" in err or "'zz'" in err)
        assert "Traceback" not in err


def test_recommend_all_csv_and_parquet(bpr_run, tmp_path, capsys, monkeypatch):
    run = api.load(bpr_run)
    out = tmp_path / "all.csv"
    assert main(["recommend", str(bpr_run), "--all", "--out", str(out), "-k", "7"]) == 0
    assert "written to" in capsys.readouterr().out
    import csv

    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 7 * run.split.n_users
    by_user = {}
    for r in rows:
        by_user.setdefault(r["user"], []).append(r)
    for user in ("0", "17", "299"):
        got = by_user[user]
        assert [int(r["rank"]) for r in got] == list(range(1, 8))
        want = run.recommend(user, 7)
        assert [r["item"] for r in got] == [i for i, _ in want]
        np.testing.assert_allclose([float(r["score"]) for r in got], [s for _, s in want],
                                   rtol=1e-5, atol=1e-6)
    # small chunks give the same rows (bounded memory)
    small = tmp_path / "small.csv"
    run.recommend_all(small, k=7, chunk=13)
    with open(small, newline="") as f:
        again = list(csv.DictReader(f))
    assert [(r["user"], r["item"]) for r in again] == [(r["user"], r["item"]) for r in rows]
    assert not list(tmp_path.glob(".*tmp*"))
    try:
        import pyarrow.parquet as pq
    except ImportError:
        pq = None
    if pq is not None:
        pout = tmp_path / "all.parquet"
        assert run.recommend_all(pout, k=7) == len(rows)
        t = pq.read_table(pout).to_pydict()
        assert t["item"] == [r["item"] for r in rows] and t["user"] == [r["user"] for r in rows]
    import builtins

    real_import = builtins.__import__

    def no_pyarrow(name, *a, **k):
        if name.startswith("pyarrow"):
            raise ImportError("No module named 'pyarrow'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    target = tmp_path / "x.parquet"
    assert main(["recommend", str(bpr_run), "--all", "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert "pyarrow" in err and "mmkgrec[parquet]" in err and err.count("\n") == 1
    assert not target.exists()
    assert main(["recommend", str(bpr_run), "--all"]) == 2
    assert "--out" in capsys.readouterr().err


# ---- bad run directories ------------------------------------------------------------------

def _cli_fails_naming(run_dir, name, capsys, argv=None):
    argv = argv or ["recommend", str(run_dir), "--user", "0"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert name in err, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    with pytest.raises(MMKGRecError, match=name.replace(".", r"\.")):
        api.load(run_dir)
    return err


@pytest.mark.parametrize("name", ["run.json", "config.yaml", "model.safetensors", "metrics.json",
                                  "ids.safetensors", "split.safetensors", "exclude.safetensors",
                                  "items.safetensors"])
def test_missing_file_is_named(bpr_run, tmp_path, capsys, name):
    run = _copy(bpr_run, tmp_path / "run")
    (run / name).unlink()
    _cli_fails_naming(run, name, capsys)


@pytest.mark.parametrize("name", ["run.json", "config.yaml", "model.safetensors", "metrics.json",
                                  "ids.safetensors", "split.safetensors", "exclude.safetensors",
                                  "items.safetensors"])
def test_truncated_file_is_named(bpr_run, tmp_path, capsys, name):
    run = _copy(bpr_run, tmp_path / "run")
    data = (run / name).read_bytes()
    (run / name).write_bytes(data[:len(data) // 2])
    _cli_fails_naming(run, name, capsys)


def test_corrupt_files_are_named(bpr_run, tmp_path, capsys):
    run = _copy(bpr_run, tmp_path / "run")
    (run / "model.safetensors").write_bytes(b"\x00" * 64)
    _cli_fails_naming(run, "model.safetensors", capsys)
    run = _copy(bpr_run, tmp_path / "run2")
    (run / "config.yaml").write_text("model: BPR\ndataset: [unclosed\n")
    _cli_fails_naming(run, "config.yaml", capsys)
    run = _copy(bpr_run, tmp_path / "run3")
    (run / "config.yaml").write_text((run / "config.yaml").read_text() + "no_such_key: 1\n")
    _cli_fails_naming(run, "config.yaml", capsys)
    run = _copy(bpr_run, tmp_path / "run4")
    (run / "metrics.json").write_text("[1, 2")
    _cli_fails_naming(run, "metrics.json", capsys, ["evaluate", str(run)])
    assert main(["recommend", str(tmp_path / "nowhere"), "--user", "0"]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_foreign_files_are_named(bpr_run, pop_run, tmp_path, capsys):
    # weights of another model
    other = api.train("LightGCN", "synthetic", tmp_path / "lgcn", overrides={**QUIET, "epochs": 1})
    run = _copy(bpr_run, tmp_path / "run")
    shutil.copy(other.path / "model.safetensors", run / "model.safetensors")
    err = _cli_fails_naming(run, "model.safetensors", capsys)
    assert "another run" in err and "LightGCN" in err
    # weights of the same model that do not fit (another run, hand-edited to this run's id)
    from safetensors.torch import load_file, save_file

    run = _copy(bpr_run, tmp_path / "run2")
    meta = api._weights_meta(runs.RunData(run).run_id, {"model": "BPR"},
                             type("D", (), {"name": "synthetic"})())
    w = {k: v[:-1].contiguous() for k, v in load_file(str(run / "model.safetensors")).items()}
    save_file(w, str(run / "model.safetensors"), metadata=meta)
    err = _cli_fails_naming(run, "model.safetensors", capsys)
    assert "bytes differ" in err  # caught by the weights' checksum in run.json
    m = json.loads((run / "run.json").read_text())
    del m["checksums"]  # a run without checksums: the shapes are still checked
    (run / "run.json").write_text(json.dumps(m))
    err = _cli_fails_naming(run, "model.safetensors", capsys)
    assert "do not fit BPR" in err
    # id maps of another dataset
    d = tmp_path / "tiny"
    d.mkdir()
    (d / "tiny.inter").write_text("user_id:token\titem_id:token\n" + "".join(
        f"{u}\t{i}\n" for u in "abcdef" for i in "pqrstuvwxyz"))
    tiny = api.train("BPR", str(d), tmp_path / "tinyrun", overrides={**QUIET, "epochs": 1})
    for name in ("ids.safetensors", "exclude.safetensors", "split.safetensors"):
        run = _copy(bpr_run, tmp_path / f"run-{name}")
        shutil.copy(tiny.path / name, run / name)
        err = _cli_fails_naming(run, name, capsys)
        assert "tiny" in err
    # the config of another run
    run = _copy(bpr_run, tmp_path / "run3")
    shutil.copy(pop_run / "config.yaml", run / "config.yaml")
    _cli_fails_naming(run, "config.yaml", capsys)


def test_fast_top_k_keeps_the_tie_rule():
    """recommend's top-k equals topk_with_ties (ties by lower item id), masked rows included."""
    from mmkgrec.api import _topk
    from mmkgrec.evaluation.metrics import topk_with_ties

    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        n = int(torch.randint(2, 60, (1,), generator=g))
        b = int(torch.randint(1, 20, (1,), generator=g))
        k = int(torch.randint(1, n + 3, (1,), generator=g))
        ties = torch.randint(0, 5, (b, n), generator=g).float()
        ties[torch.rand(b, n, generator=g) < 0.3] = -torch.inf
        for s in (ties, torch.randn(b, n, generator=g)):
            assert torch.equal(_topk(s, k), topk_with_ties(s, k)), (n, b, k)


def test_the_fingerprint_names_the_item_features_a_run_was_built_from(tmp_path):
    """Two runs alike but for one value of their item features record different feature
    digests beside the same data and split digests; a model without features records none."""
    from mmkgrec.data import load_dataset

    ds = load_dataset("synthetic", {"data_format": "synthetic"})
    mat = np.random.default_rng(0).normal(size=(ds.n_items, 12)).astype(np.float32)
    fps = []
    for k, value in enumerate([mat[3, 4], mat[3, 4] + 1e-3]):
        mat[3, 4] = value
        path = tmp_path / f"text{k}.npz"
        np.savez(path, item_ids=np.asarray(ds.item_ids, dtype=str), features=mat)
        run = api.train("VBPR", "synthetic", None, overrides={
            **QUIET, "epochs": 0, "modalities": ["text"], "text_encoder": f"file:{path}"})
        fps.append(run.metrics["fingerprint"])
    assert set(fps[0]["features"]) == {"text"} and len(fps[0]["features"]["text"]) == 32
    assert fps[0]["features"] != fps[1]["features"]
    assert (fps[0]["data"], fps[0]["split"]) == (fps[1]["data"], fps[1]["split"])
    bpr = api.train("BPR", "synthetic", None, overrides={**QUIET, "epochs": 0})
    assert "features" not in bpr.metrics["fingerprint"]
