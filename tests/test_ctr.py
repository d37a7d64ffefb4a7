"""KGCN's CTR protocol: labelled pairs and their 6:2:2 split, the CTR evaluator against hand-computed
AUC / F1 / accuracy, pointwise (bce) training, and KGCN on Last.FM under the protocol."""

import json

import numpy as np
import pytest
import torch

from mmkgrec.config import load_config
from mmkgrec.data import build_dataset, load_dataset
from mmkgrec.data.batches import AlternatingBatches, LabelledBatches
from mmkgrec.data.ctr import CTRSplit, _distinct_outside, ctr_split, labelled_pairs
from mmkgrec.data.dataset import Interactions
from mmkgrec.data.split import split_dataset
from mmkgrec.data.split_factory import split_from_config
from mmkgrec.errors import ConfigError, MMKGRecError
from mmkgrec.evaluation.ctr import CTREvaluator, binary_f1, per_user_auc
from mmkgrec.evaluation.evaluator import make_evaluator
from mmkgrec.models import build_inputs, get_model_class
from mmkgrec.models.base import Recommender
from mmkgrec.training.trainer import Trainer, training_batches

CTR = {"eval_protocol": "ctr", "split_ratio": [0.6, 0.2, 0.2], "valid_metric": "auc",
       "train_loss": "bce", "show_progress": False}


@pytest.fixture(scope="module")
def synthetic():
    return load_dataset("synthetic", {"data_format": "synthetic"})


@pytest.fixture(scope="module")
def split(synthetic):
    return ctr_split(synthetic, [0.6, 0.2, 0.2], seed=7)


def _keys(inter, n_items):
    return inter.user * n_items + inter.item


# ---- labelled pairs and the split ------------------------------------------------------------
def test_sampled_labels_and_622_split(synthetic, split):
    ds, n_items = synthetic, synthetic.n_items
    assert split.stats["ctr_labels"] == "sample"  # synthetic ratings are 1..5: no file labels
    allp = Interactions(*(np.concatenate([getattr(split.labelled[p], c) for p in ("train", "valid", "test")])
                          for c in ("user", "item", "rating")))
    n = len(allp)
    assert n == 2 * len(ds.inter)  # one negative per positive (plenty of unseen items here)
    sizes = {p: len(split.labelled[p]) for p in ("train", "valid", "test")}
    assert sizes["valid"] == sizes["test"] == int(np.floor(0.2 * n))
    assert sizes["train"] == n - 2 * int(np.floor(0.2 * n))
    # every pair once: the parts are disjoint
    assert len(np.unique(_keys(allp, n_items))) == n
    # each user: as many negatives as positives, none of them a positive of the user
    pos = allp.rating == 1
    assert np.array_equal(np.bincount(allp.user[pos], minlength=ds.n_users),
                          np.bincount(allp.user[~pos], minlength=ds.n_users))
    assert not np.isin(_keys(allp, n_items)[~pos], _keys(ds.inter, n_items)).any()
    assert np.array_equal(np.sort(_keys(allp, n_items)[pos]), np.unique(_keys(ds.inter, n_items)))
    # the model-facing parts are the label-1 pairs of each labelled part
    for p in ("train", "valid", "test"):
        lab = split.labelled[p]
        assert np.array_equal(_keys(split.part(p), n_items), _keys(lab, n_items)[lab.rating == 1])
    d = split.describe()
    assert d["method"] == "ctr" and d["train_labelled"] == sizes["train"]


def test_split_is_seeded(synthetic, split):
    again = ctr_split(synthetic, [0.6, 0.2, 0.2], seed=7)
    other = ctr_split(synthetic, [0.6, 0.2, 0.2], seed=8)
    n = synthetic.n_items
    assert np.array_equal(_keys(again.labelled["test"], n), _keys(split.labelled["test"], n))
    assert not np.array_equal(_keys(other.labelled["test"], n), _keys(split.labelled["test"], n))


def test_distinct_outside_known():
    rng = np.random.default_rng(0)
    known = np.array([0, 2, 5])
    seen = set()
    for _ in range(200):
        out = _distinct_outside(known, 7, 3, rng)
        assert len(set(out)) == 3 and set(out) <= {1, 3, 4, 6}
        seen |= set(out.tolist())
    assert seen == {1, 3, 4, 6}
    assert sorted(_distinct_outside(known, 7, 4, rng)) == [1, 3, 4, 6]


def _labelled_ds(dedup="first"):
    # u1 has i1 both as 0 and 1 (kept as a positive with dedup none)
    users = ["u0", "u0", "u0", "u1", "u1", "u1", "u1"]
    items = ["i0", "i1", "i2", "i0", "i1", "i1", "i3"]
    labels = np.array([1, 0, 0, 1, 0, 1, 1], dtype=np.float32)
    return build_dataset("tiny", users, items, labels, dedup=dedup)


def test_file_labels_are_kept():
    ds = _labelled_ds(dedup="none")
    pairs, stats = labelled_pairs(ds, "auto")
    assert stats["ctr_labels"] == "file" and stats["ctr_label_conflicts"] == 1
    got = {(ds.user_ids[u], ds.item_ids[i]): int(y) for u, i, y in zip(pairs.user, pairs.item, pairs.rating)}
    assert got == {("u0", "i0"): 1, ("u0", "i1"): 0, ("u0", "i2"): 0, ("u1", "i0"): 1,
                   ("u1", "i1"): 1, ("u1", "i3"): 1}
    assert labelled_pairs(ds, "sample")[1]["ctr_labels"] == "sample"


def test_file_labels_need_zeros(synthetic):
    with pytest.raises(MMKGRecError, match="ctr_labels 'file'"):
        labelled_pairs(synthetic, "file")


def test_split_from_config(synthetic):
    cfg = load_config("KGCN", "synthetic", overrides=CTR)
    assert isinstance(split_from_config(synthetic, cfg), CTRSplit)
    with pytest.raises(MMKGRecError, match="random_ratio"):
        split_from_config(synthetic, cfg.updated(split="leave_one_out"))
    plain = split_from_config(synthetic, cfg.updated(eval_protocol="full"))
    assert not isinstance(plain, CTRSplit) and plain.method == "random_ratio"


# ---- the evaluator ---------------------------------------------------------------------------
class _Fixed(Recommender):
    name = "fixed"

    def __init__(self, table):
        nn_inputs = type("I", (), {"n_users": table.shape[0], "n_items": table.shape[1],
                                   "graph": None, "kg": None, "features": {}})
        super().__init__({}, nn_inputs)
        self.table = table

    def score(self, users, items):
        return self.table[users, items]


def _hand_split():
    ds = _labelled_ds()
    #            (user, item, label, score)
    rows = [(0, 0, 1, 2.0), (0, 1, 0, 0.5), (1, 2, 1, 0.5), (1, 3, 1, -1.0), (1, 4, 0, 0.5),
            (2, 5, 1, 1.0)]
    u, i, y, s = (np.array(c) for c in zip(*rows))
    table = torch.zeros(3, 6)
    table[u, i] = torch.tensor(s, dtype=torch.float32)
    test = Interactions(u, i, y.astype(np.float32))
    empty = Interactions(np.zeros(0), np.zeros(0), np.zeros(0, np.float32))
    split = CTRSplit(ds, empty, empty, test.take(np.flatnonzero(y == 1)), "ctr",
                     labelled={"train": empty, "valid": empty, "test": test})
    return split, _Fixed(table)


def test_evaluator_matches_hand_computed_metrics():
    split, model = _hand_split()
    metrics, acc, _ = CTREvaluator(split, "test", ["auc", "f1_macro"]).evaluate(model)
    # positives 2.0, 0.5, -1.0, 1.0 against negatives 0.5, 0.5: (2 + 1 + 0 + 2) / 8
    assert metrics["auc"] == pytest.approx(5 / 8)
    # sigmoid >= 0.5 <=> score >= 0: tp 3, fp 2, fn 1, tn 0
    assert metrics["f1"] == pytest.approx(6 / 9)
    assert metrics["accuracy"] == pytest.approx(3 / 6)
    assert metrics["f1_macro"] == pytest.approx((6 / 9 + 0.0) / 2)
    pu = acc.per_user()
    assert list(acc.user_ids) == [0, 1, 2]
    assert pu["auc"][:2] == pytest.approx([1.0, 0.25]) and np.isnan(pu["auc"][2])
    assert pu["accuracy"] == pytest.approx([0.5, 1 / 3, 1.0])
    assert acc.n_excluded == 1


def test_per_user_auc_and_f1_helpers():
    ids, auc = per_user_auc(np.array([5, 5, 5, 5]), np.array([1, 0, 1, 0]),
                            np.array([0.3, 0.3, 0.9, 0.1]))
    assert list(ids) == [5] and auc[0] == pytest.approx((0.5 + 1 + 1 + 1) / 4)
    assert binary_f1(np.array([0, 0]), np.array([0, 0])) == 0.0


def test_make_evaluator_ctr(split):
    cfg = load_config("KGCN", "synthetic", overrides=CTR)
    assert isinstance(make_evaluator(split, "valid", cfg), CTREvaluator)
    with pytest.raises(ConfigError, match="valid_metric"):
        make_evaluator(split, "valid", cfg.updated(valid_metric="mrr@10"))
    with pytest.raises(ConfigError, match="CTR split"):
        make_evaluator(split_dataset(split.dataset), "valid", cfg)


# ---- pointwise training ----------------------------------------------------------------------
def _model(name, split, **ov):
    cfg = load_config(name, "synthetic", overrides={**CTR, **ov})
    torch.manual_seed(0)
    cls = get_model_class(name)
    return cls(cfg, build_inputs(split, cls.requirements(cfg), "cpu", cfg)), cfg


def test_bce_trains_kgcn_on_labelled_pairs(split):
    model, cfg = _model("KGCN", split, epochs=6, learning_rate=0.01, stopping_step=0)
    batches = training_batches(model, split, cfg)
    assert isinstance(batches, LabelledBatches)
    b = next(batches.epoch(np.random.default_rng(0)))
    assert set(b) == {"users", "items", "labels"} and b["labels"].dtype == torch.float32
    # an epoch is exactly the labelled training pairs
    seen = np.concatenate([(x["users"] * split.n_items + x["items"]).numpy()
                           for x in batches.epoch(np.random.default_rng(1))])
    assert np.array_equal(np.sort(seen), np.sort(_keys(split.labelled["train"], split.n_items)))
    ev = make_evaluator(split, "valid", cfg)
    before = ev.evaluate(model)[0]["auc"]
    result = Trainer(model, split, cfg).fit()
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < losses[0] - 0.05
    assert result.best_valid["auc"] > max(0.7, before + 0.1), (before, result.best_valid)


def test_bce_replaces_kgat_cf_phase(split):
    model, cfg = _model("KGAT", split, learning_rate=0.01)
    batches = training_batches(model, split, cfg)
    assert isinstance(batches, AlternatingBatches) and isinstance(batches.cf, LabelledBatches)
    phases = {}
    for b in batches.epoch(np.random.default_rng(0)):
        phases.setdefault(b["phase"], b)
    assert set(phases) == {"cf", "kg"} and "labels" in phases["cf"]
    model.train()
    model.on_epoch_start(0)
    loss = model.pointwise_loss(phases["cf"])
    loss.backward()
    assert torch.isfinite(loss)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    result = Trainer(model, split, cfg.updated(epochs=2, stopping_step=0)).fit()
    assert result.best_valid["auc"] > 0.6


def test_bce_without_ctr_draws_fresh_negatives(synthetic):
    plain = split_dataset(synthetic)
    cfg = load_config("KGCN", "synthetic", overrides={"train_loss": "bce", "num_neg": 2})
    lb = LabelledBatches.from_split(plain, cfg)
    batches = list(lb.epoch(np.random.default_rng(0)))
    out = {k: np.concatenate([b[k].numpy() for b in batches]) for k in ("users", "items", "labels")}
    assert len(out["labels"]) == 3 * len(plain.train) and out["labels"].sum() == len(plain.train)
    neg = out["labels"] == 0
    keys = out["users"][neg] * plain.n_items + out["items"][neg]
    assert not np.isin(keys, _keys(plain.train, plain.n_items)).any()


def test_bce_rejects_joint_batches(split):
    model, cfg = _model("CKE", split)
    with pytest.raises(ConfigError, match="train_loss"):
        training_batches(model, split, cfg)


def test_bpr_under_ctr_trains_on_training_positives(split):
    model, cfg = _model("KGCN", split, train_loss="bpr")
    b = next(training_batches(model, split, cfg).epoch(np.random.default_rng(0)))
    assert "neg_items" in b and "labels" not in b


# ---- Last.FM ---------------------------------------------------------------------------------
def test_kgcn_lastfm_ctr(data_dir, tmp_path):
    from importlib import resources

    from mmkgrec.api import train

    variant = resources.files("mmkgrec") / "configs" / "variant" / "KGCN-lastfm-ctr.yaml"
    run = train("KGCN", "lastfm-kg", out=tmp_path / "run", config_file=str(variant),
                            overrides={"epochs": 6, "threads": 1, "show_progress": False,
                                       "data_path": str(data_dir / "lastfm-kg")})
    split = run.metrics["split"]
    assert split["ctr_labels"] == "file" and split["ctr_positives"] == split["ctr_negatives"]
    n = split["train_labelled"] + split["valid_labelled"] + split["test_labelled"]
    assert split["test_labelled"] == split["valid_labelled"] == int(0.2 * n)
    test = run.metrics["test"]
    assert set(test) == {"auc", "f1", "accuracy", "auc_batch", "f1_batch"}
    assert test["auc"] > 0.7, test
    assert test["auc_batch"] > 0.7 and test["auc_batch"] != test["auc"]  # batches of 128 pairs
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["test"]["auc"] == pytest.approx(test["auc"])
    per_user = np.load(tmp_path / "run" / "per_user_test.npz")
    assert set(per_user.files) == {"user_ids", "auc", "accuracy"}


# ---- KGCN's batch-mean figures -----------------------------------------------------------------
def test_batch_mean_metrics_match_a_hand_worked_example():
    from mmkgrec.evaluation.ctr import batch_mean_metrics

    y = np.array([1, 0, 1, 0, 1, 1, 0, 0, 1, 0])
    s = np.array([2, 1, -1, 0.5, 3, -2, 1, -1, 0, 0])
    pred = (s >= 0).astype(int)
    got = batch_mean_metrics(y, s, pred, 4, seed=None)
    # batch 0 (pairs 0-3): positives 2, -1 vs negatives 1, 0.5: 2 of 4 pairs -> AUC 0.5;
    #   predicted 1, 1, 0, 1: tp 1, fp 2, fn 1 -> F1 2 / 5
    # batch 1 (pairs 4-7): positives 3, -2 vs negatives 1, -1: AUC 0.5; predicted 1, 0, 1, 0:
    #   tp 1, fp 1, fn 1 -> F1 0.5
    # pairs 8-9 make an incomplete batch, dropped as the reference loop drops it
    assert got == {"auc_batch": pytest.approx(0.5), "f1_batch": pytest.approx(0.45), "batches": 2}
    # the global AUC of the same pairs: (5 + 0.5 + 5 + 0 + 1.5) / 25
    assert per_user_auc(np.zeros(10, int), y, s)[1][0] == pytest.approx(12 / 25)
    # one batch of the whole part equals the global figures; a part below one batch is one batch
    one = batch_mean_metrics(y, s, pred, 10, seed=None)
    assert one["auc_batch"] == pytest.approx(12 / 25) and one["batches"] == 1
    assert batch_mean_metrics(y, s, pred, 50, seed=None)["auc_batch"] == pytest.approx(12 / 25)
    assert one["f1_batch"] == pytest.approx(binary_f1(y, pred))
    # a batch of one class has no AUC and is left out of the AUC mean (not of the F1 mean)
    # (batch 0: labels 1, 1 predicted 1, 0 -> F1 2 / 3; batch 1: labels 1, 0 predicted 1, 0 -> 1)
    two = batch_mean_metrics(np.array([1, 1, 1, 0]), np.array([1.0, 2, 0.5, -1]),
                             np.array([1, 0, 1, 0]), 2, seed=None)
    assert two == {"auc_batch": 1.0, "f1_batch": pytest.approx((1 + 2 / 3) / 2), "batches": 2}
    # the default order is a fixed shuffle (seed 0): the same pairs, the same batches every time
    a, b = batch_mean_metrics(y, s, pred, 4), batch_mean_metrics(y, s, pred, 4)
    assert a == b and a["batches"] == 2
    with pytest.raises(ValueError, match="batch_size"):
        batch_mean_metrics(y, s, pred, 0)


def test_the_evaluator_reports_both_at_the_configured_batch_size():
    split, model = _hand_split()
    cfg = load_config("KGCN", "synthetic", overrides={"eval_protocol": "ctr", "valid_metric": "auc",
                                                       "train_batch_size": 3})
    ev = make_evaluator(split, "test", cfg, model)
    assert ev.batch_size == 3  # ctr_batch_size null: the training batch, as KGCN evaluates
    metrics, _, _ = ev.evaluate(model)
    assert metrics["auc"] == pytest.approx(5 / 8)
    assert set(metrics) >= {"auc", "f1", "accuracy", "auc_batch", "f1_batch"}
    assert make_evaluator(split, "test", cfg.updated(ctr_batch_size=6), model).batch_size == 6
    whole, _, _ = make_evaluator(split, "test", cfg.updated(ctr_batch_size=6), model).evaluate(model)
    assert whole["auc_batch"] == pytest.approx(whole["auc"])  # one batch of the 6 pairs
    assert whole["f1_batch"] == pytest.approx(whole["f1"])
