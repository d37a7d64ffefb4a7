"""Tests for mmkgrec.evaluation.significance."""

from __future__ import annotations

import math
import warnings

import numpy as np

from mmkgrec.evaluation.significance import align_per_user, paired_ttest, wilcoxon


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
