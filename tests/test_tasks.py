"""Tasks: the task key and its aliases, rating and classification metrics worked by hand, the
k-fold split, targets that never reach an input, and the bad input of each."""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

from mmkgrec.cli import main
from mmkgrec.config import load_config, task_of
from mmkgrec.data import build_dataset, load_dataset, split_dataset
from mmkgrec.data.split_factory import split_from_config
from mmkgrec.data.targets import item_labels, training_labels
from mmkgrec.errors import ConfigError, MMKGRecError
from mmkgrec.evaluation.classification import ClassificationEvaluator
from mmkgrec.evaluation.evaluator import evaluation_protocol, make_evaluator
from mmkgrec.evaluation.metric_names import is_better, lower_is_better, worst_value
from mmkgrec.evaluation.metrics import label_metrics, per_class_table
from mmkgrec.evaluation.rating import RatingEvaluator
from mmkgrec.features.content import item_texts
from mmkgrec.graph.kg import KnowledgeGraph
from mmkgrec.models import build_inputs, get_model_class
from mmkgrec.training.trainer import Trainer

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"

INTER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + "".join(
    f"u{u}\ti{i}\t{1 + (u * 3 + i) % 5}\t{u * 100 + i}\n" for u in range(6) for i in range(8)
    if (u + i) % 4 != 3)
ITEM = ("item_id:token\tmovie_title:token_seq\tclass:token_seq\n"
        "i0\tAlpha\tDrama\ni1\tBeta\tComedy\ni2\tGamma\tDrama Comedy\ni3\tDelta\tHorror\n"
        "i4\tEpsilon\t\ni5\tZeta\tDrama\ni6\tEta\tComedy\ni7\tTheta\tDrama\n")
KG = ("head_id:token\trelation_id:token\ttail_id:token\n"
      "m0\tfilm.film.genre\tg_drama\ng_drama\tfilm.film_genre.films_in_this_genre\tm0\n"
      "m0\tfilm.film.actor\ta1\nm1\tfilm.film.actor\ta1\nm1\tfilm.film.genre\tg_comedy\n")
LINK = "item_id:token\tentity_id:token\ni0\tm0\ni1\tm1\n"
LEAKS = ["film.film.genre", "film.film_genre.films_in_this_genre"]


class Fixed(torch.nn.Module):
    """A stand-in model: fixed predictions per (user, item) or per item."""

    name = "Fixed"
    tasks = ("rating", "classification")

    def __init__(self, table):
        super().__init__()
        self.table = torch.as_tensor(table, dtype=torch.float32)

    def prepare_eval(self):
        pass

    def check_task(self, config):
        pass

    def score(self, users, items):
        return self.table[users, items]

    def classify(self, items):
        return self.table[items]


def _dataset(atomic_dir, **files):
    return load_dataset(str(atomic_dir({"inter": INTER, "item": ITEM, **files})))


def _cfg(model="Pop", dataset=None, **ov):
    return load_config(model, dataset, overrides=ov)


# ---------------------------------------------------------------- the task and its aliases
def test_task_aliases_resolve_in_the_config_layer():
    assert _cfg()["task"] == "ranking"
    assert _cfg("SASRec")["task"] == "next_item"  # sequential models' own default
    nxt = _cfg("BPR", eval_next_item=True)
    assert nxt["task"] == "next_item" and "eval_next_item" in nxt.source("task")
    ctr = _cfg("KGCN", eval_protocol="ctr", valid_metric="auc")
    assert ctr["task"] == "ctr" and ctr.updated(eval_protocol="full")["task"] == "ranking"
    assert _cfg("BPR").updated(eval_next_item=True)["task"] == "next_item"
    # an explicit task in a later layer wins, and the alias it overrides is reset
    file_then_set = load_config("KGCN", "lastfm-kg", "src/mmkgrec/configs/variant/"
                                "KGCN-lastfm-ctr.yaml", ["task=ranking", "valid_metric=mrr@10"])
    assert file_then_set["task"] == "ranking" and file_then_set["eval_protocol"] == "full"
    with pytest.raises(ConfigError, match="'task' .*contradicts eval_protocol: ctr"):
        _cfg("BPR", eval_protocol="ctr", task="ranking", valid_metric="auc")
    assert task_of({"eval_protocol": "ctr"}) == "ctr" and task_of({}) == "ranking"


@pytest.mark.parametrize("path,task", [
    ("ctr/KGCN-s2020.json", "ctr"),
    ("core/ml-100k-BPR-mmkgrec-s2020.json", "ranking"),
    ("sequential/SASRec-s2020.json", "next_item"),
    ("sequential/GRU4Rec-s2020.json", "next_item"),
])
def test_recorded_benchmark_commands_resolve_to_their_task(path, task):
    rec = json.loads((RESULTS / path).read_text())
    argv = shlex.split(rec["command"])
    argv = argv[argv.index("train") + 1:]
    opts = {a: argv[k + 1] for k, a in enumerate(argv) if a in ("--model", "--dataset", "--config")}
    sets = [argv[k + 1] for k, a in enumerate(argv) if a == "--set"]
    cfg = load_config(opts["--model"], opts["--dataset"], opts.get("--config"), sets)
    assert cfg["task"] == task
    recorded = rec["config"]
    # the packaged image encoder changed after these rows; none of these models reads images
    assert "image" not in get_model_class(cfg["model"]).requirements(cfg)
    same = [k for k in recorded if k in cfg and k != "image_encoder"]
    assert {k: cfg[k] for k in same} == {k: recorded[k] for k in same}


def test_a_model_is_refused_a_task_it_does_not_support(tmp_path, capsys):
    for model, ov in (("SASRec", "task=rating"), ("BPR", "task=rating")):
        out = tmp_path / model
        code = main(["train", "--model", model, "--dataset", "synthetic", "--out", str(out),
                     "--set", ov, "--set", "valid_metric=rmse"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and "\n" not in err
        assert f"model {model} does not support task 'rating'" in err and "'task'" in err
        assert not out.exists() and not out.with_name(out.name + ".partial").exists()
    assert get_model_class("BiasedMF").tasks == ("rating",)
    assert set(get_model_class("Pop").tasks) == {"ranking", "next_item", "ctr"}


# ---------------------------------------------------------------- metrics by hand
def test_metric_direction_is_declared_once():
    assert lower_is_better("rmse") and lower_is_better("hamming_loss") and not lower_is_better("f1_macro")
    assert is_better(0.9, 1.0, "rmse") and not is_better(1.1, 1.0, "rmse")
    assert is_better(0.5, 0.4, "ndcg@10") and worst_value("mae") == math.inf
    assert not is_better(float("nan"), 1.0, "rmse") and is_better(1.0, float("nan"), "rmse")


def test_rating_metrics_by_hand():
    ds = build_dataset("r", ["a", "a", "b", "b", "b", "a"], ["x", "y", "x", "y", "z", "z"],
                       rating=np.array([4, 2, 5, 1, 3, 3.0]))
    split = split_dataset(ds, "random_ratio", seed=0)
    split.test = ds.inter.take(np.arange(5))  # a:x=4, a:y=2, b:x=5, b:y=1, b:z=3
    split.train = ds.inter.take(np.array([1, 5]))  # training ratings 2 and 3: predictions clip to [2, 3]
    table = np.full((2, 3), 0.0)
    table[0] = [3.5, 2.5, 0]  # a: 3.5 -> 3 (clipped), 2.5
    table[1] = [9.0, 1.0, 2.5]  # b: 9 -> 3, 1 -> 2, 2.5
    metrics, acc, _ = RatingEvaluator(split, "test").evaluate(Fixed(table))
    err = np.array([3 - 4, 2.5 - 2, 3 - 5, 2 - 1, 2.5 - 3])  # -1, .5, -2, 1, -.5
    assert metrics["mse"] == pytest.approx(6.5 / 5) and metrics["mae"] == pytest.approx(5 / 5)
    assert metrics["rmse"] == pytest.approx(math.sqrt(1.3))
    pu = acc.per_user()
    order = np.argsort(acc.user_ids)
    assert pu["mse"][order] == pytest.approx([1.25 / 2, 5.25 / 3])  # a: 1 + .25; b: 4 + 1 + .25
    assert pu["mae"][order] == pytest.approx([1.5 / 2, 3.5 / 3])
    assert pu["rmse"][order] == pytest.approx(np.sqrt([1.25 / 2, 5.25 / 3]))
    assert err.shape == (5,)


def test_label_metrics_by_hand_single_and_multi():
    # single-label, classes A B C: true A A B C, predicted A B B A
    t = np.eye(3, dtype=bool)[[0, 0, 1, 2]]
    p = np.eye(3, dtype=bool)[[0, 1, 1, 0]]
    m = label_metrics(t, p)
    # A: tp1 fp1 fn1 -> F1 .5; B: tp1 fp1 fn0 -> 2/3; C: tp0 fp0 fn1 -> 0
    assert m == pytest.approx({"accuracy": 0.5, "f1_micro": 0.5, "f1_macro": (0.5 + 2 / 3) / 3})
    rows = per_class_table(t, p, ["A", "B", "C"])
    assert rows[1] == {"label": "B", "precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3),
                       "support": 1}
    assert rows[2]["precision"] == 0.0 and rows[2]["support"] == 1
    # multi-label: item 0 exact; item 1 one of two labels; item 2 one wrong extra label
    t = np.array([[1, 0, 1], [1, 1, 0], [0, 0, 1]], dtype=bool)
    p = np.array([[1, 0, 1], [1, 0, 0], [1, 0, 1]], dtype=bool)
    m = label_metrics(t, p, ["accuracy", "subset_accuracy", "f1_micro", "f1_macro", "hamming_loss"])
    # tp: A 2 (fp 1), B 0 (fn 1), C 2; micro = 2*4 / (2*4 + 1 + 1) = 0.8
    assert m["accuracy"] == m["subset_accuracy"] == pytest.approx(1 / 3)
    assert m["f1_micro"] == pytest.approx(0.8) and m["hamming_loss"] == pytest.approx(2 / 9)
    assert m["f1_macro"] == pytest.approx((0.8 + 0 + 1) / 3)


def test_classification_evaluator_modes_and_threshold(atomic_dir):
    ds = _dataset(atomic_dir)
    cfg = _cfg("Majority", str(atomic_dir({}, "tiny")), target_column="class",
               classification_mode="multi", split_ratio=[0.4, 0.2, 0.4])
    split = split_from_config(ds, cfg)
    assert list(split.classes) == ["Comedy", "Drama", "Horror"] and split.stats["items_without_label"] == 1
    items = split.items["test"]
    logits = np.full((ds.n_items, 3), -2.0)
    logits[:, 1] = 0.1  # sigmoid 0.52: Drama predicted for every item at 0.5, none at 0.6
    pred_all = ClassificationEvaluator(split, "test", 0.5).evaluate(Fixed(logits))[0]
    pred_none = ClassificationEvaluator(split, "test", 0.6).evaluate(Fixed(logits))[0]
    drama_only = (split.labels[items] == [False, True, False]).all(1).mean()
    assert pred_all["accuracy"] == pytest.approx(drama_only) and pred_none["f1_micro"] == 0.0
    ev = ClassificationEvaluator(split, "test", 0.5)
    _, acc, _ = ev.evaluate(Fixed(logits))
    assert acc.unit == "item" and sorted(acc.user_ids) == sorted(items)
    assert [r["label"] for r in ev.details()["per_class"]] == ["Comedy", "Drama", "Horror"]


# ---------------------------------------------------------------- k-fold
def test_kfold_per_user_tests_every_interaction_once():
    ds = load_dataset("synthetic", {"data_format": "synthetic"})
    tests = [split_dataset(ds, "kfold", seed=3, n_folds=4, fold=f) for f in range(4)]
    keys = np.concatenate([s.test.user * ds.n_items + s.test.item for s in tests])
    counts = np.bincount(ds.inter.user)
    assert len(keys) == len(np.unique(keys)) == int(counts[counts >= 2].sum())
    for s in tests:
        sizes = np.bincount(s.test.user, minlength=ds.n_users)[counts >= 2]
        assert np.all(np.abs(sizes - counts[counts >= 2] / 4) < 1)  # fold sizes within one
        train_valid = set(s.train.user * ds.n_items + s.train.item) | set(s.valid.user * ds.n_items + s.valid.item)
        assert not train_valid & set(s.test.user * ds.n_items + s.test.item)
        pool = np.bincount(s.train.user, minlength=ds.n_users) + np.bincount(s.valid.user, minlength=ds.n_users)
        valid = np.bincount(s.valid.user, minlength=ds.n_users)
        assert np.array_equal(valid, np.where(pool > 1, np.maximum(1, np.floor(pool * 0.1 + 1e-9)), 0))
    again = split_dataset(ds, "kfold", seed=3, n_folds=4, fold=2)
    assert np.array_equal(again.test.item, tests[2].test.item)


def test_nested_kfold_sets_the_outer_test_fold_aside_and_tests_the_rest_once():
    ds = load_dataset("synthetic", {"data_format": "synthetic"})
    plain = split_dataset(ds, "kfold", seed=3, n_folds=4, fold=2)
    outer_test = set(plain.test.user * ds.n_items + plain.test.item)
    inner = [split_dataset(ds, "kfold", seed=3, n_folds=4, fold=2, inner_folds=3, inner_fold=k)
             for k in range(3)]
    tested = np.concatenate([s.test.user * ds.n_items + s.test.item for s in inner])
    rest = (set(plain.train.user * ds.n_items + plain.train.item)
            | set(plain.valid.user * ds.n_items + plain.valid.item))
    assert len(tested) == len(set(tested)) and set(tested) == rest  # each tested once, inside
    for s in inner:
        seen = {p for part in (s.train, s.valid, s.test) for p in part.user * ds.n_items + part.item}
        assert not seen & outer_test and s.stats["outer_test_set_aside"] == len(outer_test)
        assert not (set(s.train.user * ds.n_items + s.train.item)
                    & set(s.test.user * ds.n_items + s.test.item))
    with pytest.raises(ConfigError, match="'inner_fold'"):
        split_dataset(ds, "kfold", n_folds=4, inner_folds=3, inner_fold=3)


def test_inner_folds_need_a_kfold_split(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--model", "Pop", "--dataset", "synthetic", "--out", str(out),
                 "--set", "inner_folds=2"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "config key 'inner_folds'" in err and "kfold" in err and not out.exists()


@pytest.mark.parametrize("sets,key", [(["n_folds=1"], "n_folds"), (["fold=5"], "fold"),
                                      (["fold=-1"], "fold"), (["inner_folds=1"], "inner_folds"),
                                      (["inner_folds=3", "inner_fold=3"], "inner_folds")])
def test_kfold_bad_values_name_the_key(sets, key, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--model", "Pop", "--dataset", "synthetic", "--out", str(out),
                 "--set", "split=kfold", *[a for s in sets for a in ("--set", s)]])
    err = capsys.readouterr().err.strip()
    assert code == 2 and f"config key '{key}'" in err and "\n" not in err and not out.exists()
    with pytest.raises(ConfigError, match="'n_folds'"):
        split_dataset(load_dataset("synthetic", {"data_format": "synthetic"}), "kfold", n_folds=1)


def test_kfold_over_items_for_classification(atomic_dir):
    ds = _dataset(atomic_dir)
    tiny = str(atomic_dir({}, "tiny"))
    folds = [split_from_config(ds, _cfg("Majority", tiny, split="kfold", n_folds=3, fold=f,
                                        target_column="class",
                                        valid_ratio=0.5)) for f in range(3)]
    tested = np.concatenate([s.items["test"] for s in folds])
    assert sorted(tested) == sorted(np.flatnonzero(folds[0].labels.any(1)))  # each once
    for s in folds:
        assert not set(s.items["test"]) & (set(s.items["train"]) | set(s.items["valid"]))
        assert len(s.items["valid"]) >= 1 and len(s.test) == 0 and len(s.train) == len(ds.inter)
        lab = training_labels(s)
        assert list(lab.items) == list(s.items["train"])  # a model sees the training labels only
    nested = [split_from_config(ds, _cfg("Majority", tiny, split="kfold", n_folds=3, fold=0,
                                         inner_folds=2, inner_fold=k, target_column="class",
                                         valid_ratio=0.5)) for k in range(2)]
    inner_tested = np.concatenate([s.items["test"] for s in nested])
    assert sorted(inner_tested) == sorted(set(folds[0].items["train"]) | set(folds[0].items["valid"]))
    for s in nested:
        assert not set(folds[0].items["test"]) & {i for p in s.items.values() for i in p}


# ---------------------------------------------------------------- targets
def test_labels_single_mode_and_min_class_items(atomic_dir):
    ds = _dataset(atomic_dir)
    multi = item_labels(ds, "class", "multi")
    assert multi.stats["items_without_label"] == 1 and multi.keep.sum() == 7
    single = item_labels(ds, "class", "single", min_class_items=2)
    # i2 has two labels, i4 none; Horror has one item (i3): dropped with it
    assert list(single.classes) == ["Comedy", "Drama"] and single.keep.sum() == 5
    assert single.stats["items_with_several_labels"] == 1
    assert single.stats["labels_below_min_class_items"] == ["Horror"]
    assert (single.matrix[single.keep].sum(1) == 1).all()


def test_bad_targets_name_the_column_or_dataset(atomic_dir, tmp_path, capsys):
    ds = _dataset(atomic_dir)
    with pytest.raises(ConfigError, match="'target_column'.*'genre' is not an item column of "
                                          "dataset 'tiny'"):
        item_labels(ds, "genre")
    with pytest.raises(MMKGRecError, match="target_column 'class' leaves .* classification needs "
                                           "at least two labels"):
        item_labels(ds, "class", "single", min_class_items=4)
    no_rating = atomic_dir({"inter": "user_id:token\titem_id:token\nu\ta\nu\tb\nv\ta\n"}, "bare")
    out = tmp_path / "r"
    code = main(["train", "--model", "BiasedMF", "--dataset", str(no_rating), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "dataset 'bare'" in err and "rating" in err and "\n" not in err
    assert not out.exists() and not out.with_name("r.partial").exists()
    code = main(["train", "--model", "Majority", "--dataset", str(atomic_dir({}, "tiny")),
                 "--out", str(out), "--set", "target_column=genre"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "'genre' is not an item column" in err and not out.exists()


def test_the_target_column_never_reaches_text_or_kg(atomic_dir):
    ds = _dataset(atomic_dir, kg=KG, link=LINK)
    tiny = str(atomic_dir({}, "tiny"))
    rank = _cfg("Pop", tiny, target_column="class", target_leak_relations=LEAKS)
    clf = _cfg("Majority", tiny, target_column="class", target_leak_relations=LEAKS)
    assert "Drama" in item_texts(ds)[0] and item_texts(ds, withheld=("class",))[0] == "Alpha"
    from mmkgrec.features.content import resolve_text_fields

    with pytest.raises(ConfigError, match="'text_fields'.*target_column"):
        resolve_text_fields(ds, ["movie_title", "class"], withheld=("class",))
    for merge in ("both", "domain"):
        kg_rank = KnowledgeGraph.from_dataset(ds, rank.updated(kg_merge=merge))
        kg_clf = KnowledgeGraph.from_dataset(ds, clf.updated(kg_merge=merge,
                                                             kg_domain_columns=["class", "movie_title"]))
        assert "class" in set(kg_rank.relation_tokens)
        assert not {"class", *LEAKS} & set(kg_clf.relation_tokens)
    kg_clf = KnowledgeGraph.from_dataset(ds, clf.updated(kg_merge="external"))
    assert kg_clf.stats["target_leak_triples"] == 3 and set(kg_clf.relation_tokens) == {"film.film.actor"}


def test_text_without_the_target_is_encoded_anew_by_the_store(atomic_dir, tmp_path, monkeypatch):
    from mmkgrec.features import item_feature_matrix
    from mmkgrec.features.encoders import Encoder

    class Recording(Encoder):
        name, modality, version, dim = "recording", "text", "1", 2

        def __init__(self):
            self.texts = []

        def _encode(self, texts):
            self.texts += texts
            return np.asarray([[len(t), t.count("a")] for t in texts], dtype=np.float32)

    monkeypatch.setenv("MMKGREC_CACHE", str(tmp_path / "cache"))
    ds = _dataset(atomic_dir)
    tiny = str(atomic_dir({}, "tiny"))
    enc = Recording()
    ranking = _cfg("Pop", tiny, target_column="class")
    plain, _ = item_feature_matrix(ds, "text", {**ranking, "text_encoder": enc})
    assert "Alpha. Drama" in enc.texts
    clf = _cfg("Majority", tiny, target_column="class")
    enc.texts.clear()
    guarded, mask = item_feature_matrix(ds, "text", {**clf, "text_encoder": enc})
    # the items whose text held a genre have a new input: encoded again, without it; the
    # one without a genre (i4) has the same text, reused
    before, after = item_texts(ds), item_texts(ds, withheld=("class",))
    assert sorted(enc.texts) == sorted(a for a, b in zip(after, before) if a != b)
    assert len(enc.texts) == 7
    assert not any("Drama" in t or "Comedy" in t for t in enc.texts)
    assert mask.all() and not np.array_equal(plain, guarded)


# ---------------------------------------------------------------- training on a rating task
def test_early_stopping_keeps_the_lowest_rmse(atomic_dir):
    cfg = _cfg("BiasedMF", None, epochs=6, stopping_step=0, learning_rate=0.05, embedding_size=4,
               show_progress=False, reg_weight=0.0)
    ds = build_dataset("r", np.repeat(np.arange(30), 10), (np.arange(300) * 7) % 40,
                       rating=1.0 + (np.arange(300) % 5))
    split = split_from_config(ds, cfg)
    cls = get_model_class("BiasedMF")
    torch.manual_seed(0)
    model = cls(cfg, build_inputs(split, cls.requirements(cfg), "cpu", cfg))
    assert evaluation_protocol(cfg, model) == "rating"
    result = Trainer(model, split, cfg).fit()
    rmses = [h["valid"]["rmse"] for h in result.history]
    assert result.best_epoch == int(np.argmin(rmses))
    final = make_evaluator(split, "valid", cfg, model).evaluate(model)[0]["rmse"]
    assert final == pytest.approx(min(rmses))


def test_run_directories_of_the_new_tasks(atomic_dir, tmp_path, capsys):
    tiny = str(atomic_dir({"inter": INTER, "item": ITEM}, "tiny"))
    out = tmp_path / "maj"
    assert main(["train", "--model", "Majority", "--dataset", tiny, "--out", str(out),
                 "--set", "target_column=class", "--set", "split_ratio=[0.4,0.2,0.4]"]) == 0
    with np.load(out / "per_user_test.npz") as z:
        assert "item_ids" in z.files and set(z["item_ids"]) <= {f"i{k}" for k in range(8)}
    metrics = json.loads((out / "metrics.json").read_text())
    assert [r["label"] for r in metrics["test_details"]["per_class"]] == ["Comedy", "Drama", "Horror"]
    # the run directory keeps the split over items: the loaded run evaluates alike without the data
    from mmkgrec import load

    again = load(out).evaluate()
    assert again == pytest.approx(metrics["test"])
    capsys.readouterr()
    assert main(["recommend", str(out), "--user", "u0"]) == 2  # a classifier ranks nothing
    assert "predicts item labels" in capsys.readouterr().err
    runs = []
    for reg in (0.0, 50.0):  # two RMSEs: the better is the lower
        runs.append(tmp_path / f"b{reg}")
        assert main(["train", "--model", "BiasOnly", "--dataset", tiny, "--out", str(runs[-1]),
                     "--set", f"reg_weight={reg}", "--set", "epochs=30", "--set",
                     "learning_rate=0.05", "--set", "show_progress=false"]) == 0
    rmse = [json.loads((r / "metrics.json").read_text())["test"]["rmse"] for r in runs]
    capsys.readouterr()
    assert main(["evaluate", str(runs[0])]) == 0  # the run's config.yaml resolves to its task
    assert json.loads(capsys.readouterr().out)["rmse"] == pytest.approx(rmse[0])
    assert main(["compare", *map(str, runs), "--metric", "rmse"]) == 0
    table = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in table[1:] if line.strip()}
    assert rows[str(runs[int(np.argmin(rmse))])].split()[-1] == "best"  # the lower RMSE
    assert rows[str(runs[int(np.argmax(rmse))])].split()[-1] != "best"
