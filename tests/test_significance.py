"""Tests for mmkgrec.evaluation.significance."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from mmkgrec.evaluation.significance import (align_per_user, holm, paired_ttest, paired_ttest_user_means,
                                              user_means, wilcoxon)


def test_clearly_different_is_significant():
    rng = np.random.default_rng(0)
    b = rng.random(50)
    a = b + 0.3 + 0.05 * rng.standard_normal(50)
    t = paired_ttest(a, b)
    assert t["p"] < 0.05 and t["t"] > 0 and t["n"] == 50
    assert t["mean_diff"] == np.mean(a - b)
    assert wilcoxon(a, b)["p"] < 0.05


def test_identical_gives_p_one_without_warnings():
    a = np.array([0.1, 0.5, np.nan, 0.9])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t, w = paired_ttest(a, a.copy()), wilcoxon(a, a.copy())
    assert t["p"] == 1.0 and math.isnan(t["t"]) and t["n"] == 3
    assert w["p"] == 1.0 and w["n"] == 3


def test_degenerate_inputs():
    assert math.isnan(paired_ttest([1.0], [0.0])["p"])
    assert math.isnan(paired_ttest([], [])["p"])
    assert paired_ttest([1.0, 2.0], [0.0, 1.0])["p"] == 0.0  # constant non-zero diff
    # NaN pairs are dropped
    r = paired_ttest([1.0, np.nan, 3.0, 2.0], [0.0, 5.0, 1.5, 1.9])
    assert r["n"] == 3 and r["mean_diff"] == np.mean([1.0, 1.5, 0.1])


def test_align_per_user():
    va, vb = align_per_user([3, 1, 2, 9], [30.0, 10.0, 20.0, 90.0], [2, 5, 3], [0.2, 0.5, 0.3])
    assert va.tolist() == [20.0, 30.0] and vb.tolist() == [0.2, 0.3]


def test_user_means_average_each_user_over_the_seeds_they_count_in():
    seed1 = (["u1", "u2", "u3"], [0.2, 0.4, 0.6], ["u3", "u2", "u1"], [0.5, 0.1, 0.0])
    # seed 2: u3 is not evaluated by b, u2 has no value (NaN) for a, u4 only in b
    seed2 = (["u1", "u2", "u3"], [0.4, np.nan, 0.8], ["u1", "u2", "u4"], [0.2, 0.3, 0.9])
    ids, a, b = user_means([seed1, seed2])
    assert ids.tolist() == ["u1", "u2", "u3"]
    assert a.tolist() == pytest.approx([(0.2 + 0.4) / 2, 0.4, 0.6])  # by hand
    assert b.tolist() == pytest.approx([(0.0 + 0.2) / 2, 0.1, 0.5])
    empty = user_means([])
    assert all(x.size == 0 for x in empty)


def test_user_means_test_takes_users_not_user_seed_pairs_as_the_unit():
    rng = np.random.default_rng(1)
    users = [f"u{k}" for k in range(40)]
    effect = 0.01 + 0.05 * rng.standard_normal(40)  # each user's own difference, in every seed
    reps = []
    for _ in range(3):
        b = rng.random(40)
        a = b + effect + 0.01 * rng.standard_normal(40)
        reps.append((users, a, users, b))
    t = paired_ttest_user_means(reps)
    ids, ma, mb = user_means(reps)
    ref = stats.ttest_rel(ma, mb)  # scipy on the means, directly
    assert t["n"] == 40 and t["replicates"] == 3
    assert t["p"] == pytest.approx(ref.pvalue) and t["t"] == pytest.approx(ref.statistic)
    assert t["mean_diff"] == pytest.approx(np.mean(ma - mb))
    pooled = stats.ttest_rel(np.concatenate([r[1] for r in reps]), np.concatenate([r[3] for r in reps]))
    assert pooled.pvalue < t["p"] / 5  # pooling the same users three times overstates significance
    one = paired_ttest_user_means(reps[:1])  # one seed: the plain paired test over users
    assert one["p"] == pytest.approx(stats.ttest_rel(reps[0][1], reps[0][3]).pvalue)


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 of m = 3: 3 x 0.01 = 0.03; 2 x 0.03 = 0.06; 1 x 0.04 = 0.04 -> 0.06
    out = holm([0.01, 0.04, 0.03, np.nan])
    assert out[:3].tolist() == pytest.approx([0.03, 0.06, 0.06]) and math.isnan(out[3])
    assert holm([0.5, 0.6]).tolist() == [1.0, 1.0]  # 2 x 0.5 = 1.0, capped; 0.6 raised to it
    assert holm([0.02]).tolist() == [0.02]  # a family of one is unchanged
    assert holm([0.01, 0.01]).tolist() == [0.02, 0.02]  # ties
    assert np.isnan(holm([np.nan])).all() and holm([]).size == 0


def _write_run(d, model, seed, users, ndcg, lr):
    """A finished run directory as `mmkgrec train` writes it (the files compare reads)."""
    import json

    import yaml

    d.mkdir(parents=True)
    (d / "config.yaml").write_text(yaml.safe_dump({"model": model, "dataset": "x", "seed": seed,
                                                   "learning_rate": lr, "threads": 1}))
    (d / "metrics.json").write_text(json.dumps({"model": model, "dataset": "x", "seed": seed,
                                                "test": {"ndcg@10": float(np.mean(ndcg))}}))
    np.savez(d / "per_user_test.npz", user_ids=np.asarray(users, dtype=str), **{"ndcg@10": ndcg})
    return d


def test_compare_puts_seeds_of_one_config_on_one_row_and_tests_user_means(tmp_path):
    from mmkgrec.evaluation.report import compare_runs

    rng = np.random.default_rng(3)
    users = [f"u{k}" for k in range(30)]
    base = rng.random(30)
    dirs, vals = [], {}
    for name, lr, shift in (("good", 0.01, 0.05), ("bad", 0.001, 0.0), ("worse", 0.005, -0.03)):
        for seed in (1, 2, 3):
            v = np.clip(base + shift + 0.05 * rng.standard_normal(30), 0, 1)
            vals[name, seed] = v
            dirs.append(_write_run(tmp_path / f"{name}-s{seed}", "BPR", seed, users, v, lr))
    out = compare_runs(dirs, "ndcg@10").splitlines()
    rows = {line.split()[0]: line.split() for line in out[1:4]}
    assert set(rows) == {str(tmp_path / f"{n}-s1") for n in ("good", "bad", "worse")}
    good, bad, worse = (rows[str(tmp_path / f"{n}-s1")] for n in ("good", "bad", "worse"))
    assert good[1:3] == ["(+2)", "BPR"] and good[3] == "3" and good[-1] == "best"
    # by scipy, directly: each user's mean over the 3 seeds, and the seeds' means
    p = {}
    for n in ("bad", "worse"):
        ma = np.mean([vals[n, s] for s in (1, 2, 3)], axis=0)
        mb = np.mean([vals["good", s] for s in (1, 2, 3)], axis=0)
        p[n] = (stats.ttest_rel(ma, mb).pvalue,
                stats.ttest_rel([vals[n, s].mean() for s in (1, 2, 3)],
                                [vals["good", s].mean() for s in (1, 2, 3)]).pvalue)
    for n, row in (("bad", bad), ("worse", worse)):
        assert float(row[-4]) == pytest.approx(p[n][0], rel=1e-2)
        assert float(row[-2]) == pytest.approx(p[n][1], rel=1e-2)
    adj_users = holm([p["bad"][0], p["worse"][0]])
    assert float(bad[-3]) == pytest.approx(adj_users[0], rel=1e-2)
    assert float(worse[-3]) == pytest.approx(adj_users[1], rel=1e-2)
    assert out[-1].endswith("Holm: adjusted over the 2 comparisons.")


def test_compare_two_single_runs_is_the_paired_test_over_users(tmp_path):
    from mmkgrec.evaluation.report import compare_runs

    users = ["a", "b", "c", "d"]
    x, y = np.array([0.5, 0.6, 0.2, 0.9]), np.array([0.4, 0.3, 0.1, 0.85])
    d1 = _write_run(tmp_path / "r1", "BPR", 1, users, x, 0.01)
    d2 = _write_run(tmp_path / "r2", "LightGCN", 2, users, y, 0.01)  # another seed: still paired
    row = compare_runs([d1, d2]).splitlines()[2].split()
    assert row[0] == str(d2) and row[2] == "1"
    assert float(row[-4]) == pytest.approx(stats.ttest_rel(y, x).pvalue, rel=1e-2)
    assert row[-4] == row[-3] and row[-2] == row[-1] == "n/a"  # one comparison; no seeds to test
