"""Tests for the generated benchmark report (benchmarks/report.py and benchmarks/reporting/)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import report  # noqa: E402

# an absolute path of a machine: "/work/...", "/root/...", "/opt/...", not "benchmarks/work/..."
MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:[\w.-]+/)+")


@pytest.fixture(scope="module")
def document():
    """docs/BENCHMARKS.md as the stored results generate it now (building it draws nothing)."""
    return report.document()


@pytest.mark.parametrize("source", ["generated", "committed"])
def test_document_names_no_machine_paths(document, source):
    text = document if source == "generated" else (ROOT / "docs" / "BENCHMARKS.md").read_text()
    found = sorted({m.group(0) for m in MACHINE_PATH.finditer(text)})
    assert not found, f"absolute paths in the {source} docs/BENCHMARKS.md: {found[:5]}"
    assert "`.venv/bin/python -m mmkgrec.cli train" in text  # the commands are still shown


def test_conclusions_follow_the_numbers(monkeypatch):
    """Sentences that state a direction are chosen by the results, not typed: the same sentence
    turns when the numbers do."""
    from reporting import kg, popularity

    runs = [{"seed": 2021, "best_epoch": 2, "test": {"ndcg@20": 0.14}},
            {"seed": 2020, "best_epoch": 47, "test": {"ndcg@20": 0.30}}]
    assert kg.early_stops({"KGAT": runs}, 10) == "KGAT seed 2021 (best epoch 2; test NDCG@20 0.1400)"
    assert kg.early_stops({"KGAT": runs}, 2) == ""

    def results(a, b):
        return [{"variant": "A", "test": {"recall@20": a}}, {"variant": "B", "test": {"recall@20": b}}]

    monkeypatch.setattr(popularity, "load", lambda suite: results(0.30, 0.20))
    assert popularity._as_here("A", "B", +1) == " (as here: A 0.3000 vs B 0.2000 Recall@20)"
    assert popularity._as_here("A", "B", -1).startswith(" (unlike here:")
    monkeypatch.setattr(popularity, "load", lambda suite: results(0.20, 0.30))
    assert popularity._as_here("A", "B", -1).startswith(" (as here:")


def _runs(values: dict) -> list[dict]:
    """Runs of one row: seed -> per-user values of ndcg@10 (users u0, u1, ...)."""
    return [{"seed": s, "test": {"ndcg@10": float(np.mean(v))},
             "per_user": {"user_ids": [f"u{k}" for k in range(len(v))], "ndcg@10": list(v)}}
            for s, v in values.items()]


def test_comparisons_use_user_means_over_seeds_holm_and_generated_verdicts():
    from scipy import stats as sps

    from reporting import stats

    rng = np.random.default_rng(7)
    base = {s: rng.random(50) for s in (1, 2, 3)}
    a = {s: v + 0.03 + 0.02 * rng.standard_normal(50) for s, v in base.items()}  # clearly better
    b = {s: v + 0.01 * rng.standard_normal(50) for s, v in base.items()}  # about the same
    c_ab, c_bb, missing = stats.adjust([stats.compare(_runs(a), _runs(base), "ndcg@10"),
                                        stats.compare(_runs(b), _runs(base), "ndcg@10"),
                                        stats.compare([], _runs(base), "ndcg@10")])
    mean = lambda d: np.mean([d[s] for s in (1, 2, 3)], axis=0)  # noqa: E731
    assert c_ab["p_users"] == pytest.approx(sps.ttest_rel(mean(a), mean(base)).pvalue)
    assert c_ab["n_users"] == 50 and c_ab["n_seeds"] == 3
    assert c_ab["p_seeds"] == pytest.approx(sps.ttest_rel([a[s].mean() for s in a],
                                                          [base[s].mean() for s in base]).pvalue)
    lo, hi = sorted([c_ab["p_users"], c_bb["p_users"]])  # Holm over the two that ran, by hand
    assert sorted([c_ab["holm_users"], c_bb["holm_users"]]) == pytest.approx([2 * lo, max(2 * lo, hi)])
    assert missing is None and stats.p_cells(missing) == "not run | - | - | -"
    assert stats.verdict(c_ab).startswith("higher") and stats.verdict(c_bb) == "not significant"
    assert stats.claim("A", "B", c_ab, "ndcg@10").startswith(f"A beats B on test NDCG@10 ({c_ab['diff']:+.4f}; p = ")
    worse = stats.adjust([stats.compare(_runs(base), _runs(a), "ndcg@10")])[0]
    assert stats.claim("B", "A", worse, "ndcg@10").startswith("B trails A")
    assert stats.verdict(worse).startswith("lower")
    if c_bb["diff"] > 0:
        assert stats.claim("X", "Y", c_bb, "ndcg@10").startswith("X does not beat Y")
    else:
        assert stats.claim("X", "Y", c_bb, "ndcg@10").startswith("X is not significantly below Y")
    one = stats.adjust([stats.compare(_runs({1: a[1]}), _runs({1: base[1]}), "ndcg@10")])[0]
    assert np.isnan(one["p_seeds"]) and stats.verdict(one) == "higher (one seed)"
    # runs on both sides but no seed in common: no pair, so no comparison (not a NaN verdict)
    assert stats.compare(_runs({1: a[1]}), _runs({2: base[2]}), "ndcg@10") is None


def test_the_ctr_table_shows_global_and_batch_mean_figures_and_says_which_need_a_rerun(monkeypatch):
    from reporting import ctr

    class Suite:
        ROWS = {"KGCN": None, "KGAT": None}
        PUBLISHED = {"KGCN": {"auc": 0.796, "f1": 0.721}}

    def run(row, auc, batch=None):
        test = {"auc": auc, "f1": 0.7, "accuracy": 0.7}
        if batch is not None:
            test.update(auc_batch=batch, f1_batch=0.71)
        return {"row": row, "test": test, "config": {"train_batch_size": 128,
                                                     "ctr_batch_size": None}}

    runs = [run("KGCN", 0.78, 0.79), run("KGCN", 0.80, 0.81), run("KGAT", 0.77)]
    monkeypatch.setattr(ctr, "suite_runs", lambda name: (Suite, runs))
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in ctr.section()
            if line.startswith("| KG")}
    assert rows["KGCN"][5] == "0.8000 ± 0.0141 (128)" and rows["KGCN"][6] == "0.7100 ± 0.0000"
    assert rows["KGCN"][8] == "+0.0040 |"  # the batch mean 0.80 against the published 0.796
    assert rows["KGAT"][5] == rows["KGAT"][6] == "needs a rerun"
    runs[1]["test"] = {k: v for k, v in runs[1]["test"].items() if k not in ctr.BATCH}
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in ctr.section()
            if line.startswith("| KG")}
    assert rows["KGCN"][5] == "needs a rerun" and rows["KGCN"][8] == "-0.0060 (global) |"


def test_serving_load_section_follows_the_numbers(monkeypatch):
    """The load test's verdicts (errors, p99 at a fixed rate, cold start, feedback after kill -9)
    are read off the results."""
    from reporting import load as section

    def results(p99, cold, missing):
        common = {"run": "ml-100k-BPR", "dataset": "ml-100k", "n_items": 1682,
                  "loadavg_before": [1.0, 1.0, 1.0]}
        return [
            {**common, "job": "ml-100k-BPR-rate-r200x10s", "rate_rps": 200, "seconds": 10,
             "target_p99_ms": 50.0, "full_requests": 10000,
             "result": {"requests": 2000, "errors": 0,
                        "latency": {"p50_ms": 3.0, "p95_ms": 9.0, "p99_ms": p99}}},
            {**common, "job": "ml-100k-BPR-cold", "repeats": [{}] * 3, "median_s": cold,
             "min_s": cold, "max_s": cold, "target_s": 5.0},
            {**common, "job": "ml-100k-BPR-feedback-kill9", "clients": 8, "events_planned": 1000,
             "kill_after_acks": 500, "killed_by_sigkill": True, "acknowledged": 500,
             "on_disk": 500 - missing, "acknowledged_missing": missing,
             "unacknowledged_on_disk": 0, "acked_per_s": 100.0}]

    monkeypatch.setattr(section, "load", lambda suite: results(30.0, 2.0, 0))
    text = "\n".join(section.section())
    assert "| 30.0 | met |" in text and "| 2.00 | 2.00 | 2.00 | met | - |" in text
    assert "0 acknowledged but missing (target: none, met)" in text
    assert "Capped: 1 of these 1 rows ran 10 s" in text
    monkeypatch.setattr(section, "load", lambda suite: results(80.0, 7.0, 2))
    text = "\n".join(section.section())
    assert "| 80.0 | **missed** |" in text and "| 7.00 | 7.00 | 7.00 | **missed** | - |" in text
    assert "2 acknowledged but missing (target: none, **missed**)" in text


def test_reproduction_notes_follow_the_control(monkeypatch):
    """Whether a differing row's own commit repeats it, and which item features the two runs
    encoded alike, are read off the reproduce JSONs."""
    from reporting import reproduce

    stored, moved = {"ndcg@10": 0.26}, {"ndcg@10": 0.27}
    feats = {"d/image/desc": {"version": "1", "sha256": "a"},
             "d/text/minilm": {"version": "st-x-unpadded", "sha256": "b"}}

    def row(control_test, own_feats, dirty=True):
        return {"suite": "multimodal", "job": "MMGCN-both-s2020", "source_git_sha": "abc" +
                ("-dirty" if dirty else ""), "git_sha": "def", "stored": stored, "rerun": moved,
                "identical": False, "max_abs_diff": 0.01, "compared": ["ndcg@10"],
                "features": feats,
                "control": {"git_sha": "abc", "test": control_test, "features": own_feats,
                            "identical_to_stored": control_test == stored,
                            "max_abs_diff_to_stored": abs(control_test["ndcg@10"] - 0.26),
                            "identical_to_rerun": control_test == moved,
                            "max_abs_diff_to_rerun": abs(control_test["ndcg@10"] - 0.27)}}

    old_text = {**feats, "d/text/minilm": {"version": "st-x", "sha256": "c"}}
    monkeypatch.setattr(reproduce, "load", lambda suite: [row({"ndcg@10": 0.25}, old_text)])
    text = "\n".join(reproduce.section())
    assert "does not repeat the stored row either (max abs diff 0.01)" in text
    assert "its SHA ends in `-dirty`" in text and "| differs, max abs diff 0.01 |" in text
    assert ("the same image/desc features; different text/minilm features (encoder version st-x "
            "there, st-x-unpadded here)") in text
    monkeypatch.setattr(reproduce, "load", lambda suite: [row(stored, feats, dirty=False)])
    text = "\n".join(reproduce.section())
    assert "repeats the stored row exactly, so a change since that commit moved it" in text
    assert "-dirty" not in text and "| identical |" in text  # the control's column


def test_cold_start_claim_and_protocols_follow_the_numbers():
    """The cold-start section's verdict on the article's claim is drawn from the comparisons, and
    a row stored before ``negative_items`` reads as the protocol it trained with (``all``)."""
    from reporting import coldstart

    def c(diff, p):
        return {"diff": diff, "holm_users": p}

    content = ["VBPR-text", "ContentKNN"]
    said = coldstart.claim_verdict("cold_item", {"VBPR-text": c(0.01, 0.001),
                                                 "ContentKNN": c(0.02, 0.01)}, content)
    assert " holds here" in said and "above VBPR-text, ContentKNN" in said
    said = coldstart.claim_verdict("cold_item", {"VBPR-text": c(-0.01, 0.001),
                                                 "ContentKNN": c(0.02, 0.01)}, content)
    assert "does not hold" in said and "below VBPR-text" in said and "above ContentKNN" in said
    said = coldstart.claim_verdict("cold_item", {"VBPR-text": c(0.01, 0.3),
                                                 "ContentKNN": c(-0.02, float("nan"))}, content)
    assert "is not shown" in said and "not significantly different from VBPR-text, ContentKNN" in said
    assert coldstart.claim_verdict("cold_item", {}, content) == ""
    assert coldstart.protocol({"config": {"split": "cold_item"}}) == "all"
    assert coldstart.protocol({"config": {"negative_items": "seen"}}) == "seen"
    # the default KG training as validation chooses it, and the runs stopped after epoch 1-2
    joint = [{"valid": {"ndcg@10": v}} for v in (0.22, 0.21)]
    pre = [{"valid": {"ndcg@10": v}} for v in (0.19, 0.20)]
    assert "keeps joint training the packaged default" in coldstart._default_choice(joint, pre)[0]
    assert "favours pre-training" in coldstart._default_choice(pre, joint)[0]
    by = {("random", "KGAT"): [{"seed": 1, "best_epoch": 2, "epochs_run": 13},
                               {"seed": 2, "best_epoch": 40, "epochs_run": 51}],
          ("random", "CKE"): [{"seed": 1, "best_epoch": 3, "epochs_run": 14}]}
    said = coldstart._early_stops("random", ["KGAT", "CKE"], by, 10)[0]
    assert "KGAT seed 1 (best epoch 2 of 13 run)" in said and "seed 2" not in said
    assert "CKE" not in said
    assert coldstart._early_stops("random", ["CKE"], by, 10) == []
    # the variants against the default: their own family, the verdicts following the numbers
    rng = np.random.default_rng(0)

    def runs(shift):
        return _runs({s: np.clip(0.3 + shift + 0.05 * rng.normal(size=60), 0, 1)
                      for s in (1, 2, 3)})

    base = runs(0.0)
    by = {("random", "LLMKGRec-no-kg"): runs(-0.1), ("random", "LLMKGRec-gemma"): runs(0.0)}
    text = "\n".join(coldstart._variant_table("random", by, base))
    assert "| LLMKGRec-no-kg | no KG | -0.1" in text and "lower (seeds too)" in text
    assert "| LLMKGRec-gemma |" in text and "not significant" in text
    assert "LLMKGRec-one-pass" not in text and coldstart._variant_table("cold_user", by, base) == []


def test_learned_image_section_pairs_rows_and_its_verdicts_follow_the_numbers(monkeypatch):
    """The learned-image-features section shows each learned row beside its descriptor row, tests
    them paired by seed, and its claim sentences turn with the numbers; rows without runs read
    `not run`, and so does what no stored result covers."""
    import multimodal as mm

    from reporting import learned

    rng = np.random.default_rng(3)
    users = rng.random(200)
    tag = mm.LEARNED_TAG

    def row(variant, model, shift, image=None, shuffled=False):
        cfg = {"modalities": ["image"] if image else [], "image_encoder": image or "descriptor",
               "shuffle_features": shuffled}
        runs = _runs({s: users + shift + 0.01 * rng.standard_normal(200) for s in mm.SEEDS})
        for r in runs:
            r["test"] = {k: r["test"]["ndcg@10"] for k in learned.ACC_KEYS}
            r.update(model=model, config=cfg, variant=variant, chosen_lr=0.001,
                     timing={"train_epoch_s": 1.0}, command=f"python -m mmkgrec.cli train --model {model}")
        return runs

    def results(learned_shift):
        return (row("BPR", "BPR", 0.0) + row("VBPR-image", "VBPR", -0.02, "descriptor")
                + row(f"VBPR-image-{tag}", "VBPR", learned_shift, mm.LEARNED_ENCODER)
                + row(f"VBPR-image-{tag}-shuffled", "VBPR", -0.05, mm.LEARNED_ENCODER, True))

    monkeypatch.setattr(learned, "load", lambda suite: [])
    monkeypatch.setattr(learned, "suite_runs", lambda name: (mm, results(+0.03)))
    text = "\n".join(learned.section())
    assert f"| VBPR-image-{tag} | {mm.LEARNED_ENCODER} | 0.001 | 3 |" in text
    assert f"| VBPR-image-{tag}-shuffled | {mm.LEARNED_ENCODER}, shuffled |" in text
    assert f"| MMGCN-both-{tag} | - | - | 0 | not run" in text
    claim = "VBPR > BPR with learned features (the VBPR paper's claim; image only, as in the paper): "
    assert claim + f"holds. VBPR-image-{tag} beats BPR" in text
    assert f"| VBPR-image-{tag} vs VBPR-image | +0.0" in text
    assert "MMGCN > LightGCN with learned features, text and image: not run" in text
    assert "Not run: ladder-+M-" in text and "the popularity thirds" in text
    assert "MultiKG4Rec (0 of 3 seeds), " in text and "MultiKG4Rec-w/o t&v (0 of 3 seeds)" in text
    monkeypatch.setattr(learned, "suite_runs", lambda name: (mm, results(-0.03)))
    text = "\n".join(learned.section())
    assert claim + f"does not hold. VBPR-image-{tag} trails BPR" in text


def test_llamacpp_paragraph_says_what_the_records_say():
    """The llama.cpp lines come from the build and run records: a failed build names its error
    and the run says it was not run; a capped run says how many users and why."""
    from reporting import explain

    failed = {"requirement": "llama-cpp-python[server]==9.9", "status": "failed", "build_s": 600,
              "built_from_source": True, "error": "CMake Error: no compiler"}
    text = "\n".join(explain._llamacpp(failed, {"status": "not run", "why": "it did not build"}))
    assert "failed after 10.0 min: `CMake Error: no compiler`" in text
    assert "Not run: it did not build." in text
    built = {**failed, "status": "built", "version": "9.9", "torch_before": "2.13.0",
             "torch_after": "2.13.0",
             "env": {"CMAKE_BUILD_PARALLEL_LEVEL": "2"}, "tools": {"cmake": "c", "g++": "g"},
             "command": "pip install x"}
    ms = {"server_cpu_p50": 4000.0, "server_cpu_p99": 9000.0, "wall_p50": 5000.0,
          "wall_p99": 12000.0}
    run = {"server_settings": {"n_threads": 1}, "latency_ms": ms, "llama_cpp_python": "9.9",
           "server_speeds": {"prompt": {"median_tokens_per_s": 300.0},
                             "generation": {"median_tokens_per_s": 40.0, "requests": 70}},
           "model_file": "m.gguf", "model_note": "base", "server_command": "python -m x",
           "server_start_s": 2.0, "llama_cpp_system_info": "AVX2 = 1", "k": 5, "users_run": 7,
           "users_planned": 100, "stopped": "7 of 100 users: out of time",
           "explain_options": {"explain_max_attempts": 2, "explain_max_new_tokens": 96,
                               "explain_temperature": 0.0},
           "unsupported_shown": 0, "shown_claim_triples": 120, "template_fallback": 30,
           "explanations": 35}
    text = "\n".join(explain._llamacpp(built, run))
    assert "built from source (no wheel for this platform) in 10.0 min" in text
    assert "torch 2.13.0 before and 2.13.0 after" in text
    assert "7 of 100 users (out of time)" in text
    assert "server CPU p50 4.0 s, p99 9.0 s (1 thread)" in text
    assert "30 of 35 explanations fell back to the template, 5 show a llama.cpp draft" in text


def test_kg_alone_sentence_follows_each_rows_test():
    """The faithfulness note on the KG-alone rows reads each row's paired t-test: a significant
    negative t says the KG's citations matter less than random items, a large p no difference;
    rows ordered by the model's reasons are left to the table."""
    from reporting import explain

    fa = [{"model": "A", "model_reasons": False, "t": -3.0, "p_t": 0.002},
          {"model": "B", "model_reasons": False, "t": 4.0, "p_t": 0.0001},
          {"model": "C", "model_reasons": False, "t": 0.5, "p_t": 0.6},
          {"model": "D", "model_reasons": True, "t": 9.0, "p_t": 1e-9}]
    text = explain._kg_alone(fa)
    assert "A: the KG's citations lower the score less than random items" in text
    assert "B: the KG's citations lower the score more than random items" in text
    assert "C: no difference from random items (p = 0.6)" in text and "D:" not in text
    assert explain._kg_alone(fa[3:]) == ""


def test_speed_floor_sentences_follow_the_numbers():
    """The floor lines of the KGBM4Rec and Multi-KG4Rec speed sections say the target is out of
    reach only when the measured floor is above it, and name the figures they rest on."""
    from reporting import kgbm4rec, multikg_speed

    f = {"steps_per_epoch": 40, "text_branch_cpu_s": 0.6, "lightgcn_epoch_cpu_s": 0.5,
         "text_branch_gflop": 17.0, "matmul_gflops": 60.0, "floor_ratio": 48.0, "tokens": 100,
         "text_items": 10, "lstm_input": 384, "lstm_hidden": 64, "load_before": [1.0],
         "load_after": [1.2], "command": "python benchmarks/kgbm4rec.py --only =speed-floor"}
    text = kgbm4rec._floor_lines(f)[0]
    assert "453 GFLOP/s" in text and "No exact implementation reaches the target" in text
    assert "a faster LSTM kernel could" in kgbm4rec._floor_lines({**f, "text_branch_gflop": 1.0})[0]
    key = f"MultiKG4Rec {multikg_speed.NO_FUSION}"
    run = {"tag": "t", "ratio_cpu": {"MultiKG4Rec": 14.0, key: 5.5}}
    assert "no exact epoch can reach the target of 3x" in multikg_speed._floor_lines([run])[0]
    low = {"tag": "t", "ratio_cpu": {"MultiKG4Rec": 14.0, key: 2.5}}
    assert "leaves 0.50x of KGAT's epoch for the fusion" in multikg_speed._floor_lines([low])[0]
    assert multikg_speed._floor_lines([{"tag": "t", "ratio_cpu": {"MultiKG4Rec": 9.0}}]) == []


def test_reproduction_coverage_counts_rerunnable_rows_per_suite(monkeypatch):
    """The coverage table counts a suite's rows that can be rerun (our library's, with a command
    and test metrics, no tuning trial, no speed row), those rerun, and those repeated exactly."""
    from reporting import reproduce

    row = {"library": "mmkgrec", "command": "x", "test": {"ndcg@10": 0.1}}
    stored = {"s": [{**row, "job": "a"}, {**row, "job": "b"}, {**row, "job": "tune-a"},
                    {**row, "job": "a-speed"}, {**row, "job": "r", "library": "recbole"}]}
    monkeypatch.setattr(reproduce, "load", lambda suite: stored[suite])
    runs = [{"suite": "s", "job": "a", "identical": True}]
    assert "| s | 2 | 1 | 1 | 1 |" in reproduce._coverage(runs)


def test_kgbm4rec_model_selection_says_whether_the_rows_use_the_grids_choice():
    """The nested grid's section marks the chosen point, and the intro says the rows use it only
    when every KGBM4Rec accuracy row does; without the grid's result it says it has not run."""
    import kgbm4rec as suite
    from reporting import kgbm4rec

    words, lines = kgbm4rec._selection(suite, [])
    assert "has not run" in words and lines == []
    trials = [{"params": {"learning_rate": lr}, "value": v, "per_fold": [v, v], "best_epoch": [3, 4],
               "epochs_run": [8, 9], "seconds": 10.0} for lr, v in ((0.001, 0.95), (0.003, 0.93))]
    r = {"kind": "select", "folds": 2, "metric": "rmse", "grid": {"learning_rate": [0.001, 0.003]},
         "budget": {"name": "grid over learning_rate=0.001|0.003"}, "trials": trials,
         "best": {"learning_rate": 0.003},
         "command": "python -m mmkgrec.cli tune KGBM4Rec ml-100k --folds 2"}
    rows = [{"job": f"{kind}-x", "model": "KGBM4Rec", "kind": kind,
             "config": {"learning_rate": 0.003}} for kind in ("cls", "rating", "topn")]
    speed = {"job": "speed-x", "model": "KGBM4Rec", "kind": "speed",
             "config": {"learning_rate": 0.001}}  # not a row the selection is for
    words, lines = kgbm4rec._selection(suite, [r, *rows, speed])
    text = "\n".join(lines)
    assert "chosen by the grid below" in words and "| 0.003 | 0.9300 **chosen** |" in text
    assert "| 0.001 | 0.9500 |" in text and "(every one of them)" in text
    words, lines = kgbm4rec._selection(suite, [{**r, "best": {"learning_rate": 0.001}}, *rows])
    assert "the grid below chose learning_rate 0.001; 3 of the 3" in words
    assert "3 of 3 do not: cls-x, rating-x, topn-x" in "\n".join(lines)


def test_coldstart_speed_ratio_names_the_pretraining_and_the_target():
    """The speed sentence says whether the 2x target is met and, for a row that pre-trains its
    KG embeddings, the one-off seconds spent before the first epoch."""
    from reporting import coldstart

    r = {"rows": ["LLMKGRec-kg-pre", "LightGCN"], "rounds": 5, "ratio_cpu": 1.7, "ratio_wall": 1.8,
         "median_epoch_s": {"LLMKGRec-kg-pre": {"cpu": 0.85}, "LightGCN": {"cpu": 0.5}},
         "pretrain_cpu_s": {"LLMKGRec-kg-pre": 12.25}, "load_before": [1.0], "load_after": [1.1],
         "command": "python benchmarks/coldstart.py --only =speed-ratio-kg-pre"}
    text = coldstart._speed_ratio(r)[0]
    assert "**1.70x**" in text and "target of at most 2x is met" in text
    assert "pre-trains its KG embeddings once before the first epoch, 12.2 s" in text
    slow = {**r, "ratio_cpu": 2.67, "pretrain_cpu_s": {}}
    text = coldstart._speed_ratio(slow)[0]
    assert "not met" in text and "pre-trains" not in text


def test_retune_ablations_reuse_the_ablated_rows_choice_and_their_claims_follow_the_numbers(
        monkeypatch, tmp_path):
    """Claim ``multikg``'s ablation rows train the ablated row's chosen configuration with one
    switch set, wait for its tuning, and their claim sentences turn with the numbers."""
    import common
    import retune

    from reporting import retune as section

    claim = retune.CLAIMS["multikg"]
    ids = {j["id"]: j for j in retune.jobs()}
    # a row's own settings reach its tuning: the learned rows of claim seq read the learned
    # encoder, the rows computed with the descriptor keep it
    learned = retune.fixed("seq", "MM-RACL-KAL+ID-lite1")
    assert learned["image_encoder"] == "efficientnet-lite1" and learned["item_id_embedding"]
    assert retune.fixed("seq", "MM-RACL-KAL")["image_encoder"] == "descriptor"
    assert "item_id_embedding" not in retune.fixed("seq", "MM-RACL-KAL")
    assert ids["MultiKG4Rec-wo-t-s2022"]["row"] == "MultiKG4Rec-w/o t"
    assert "MultiKG4Rec-wo-tv-s2022" in ids and "MultiKG4Rec-no-fusion-s2021" in ids
    assert "mkg-MKGAT-wo-v-s2022" in ids and "mkg-MKGAT-wo-v-s2023" not in ids
    monkeypatch.setattr(retune, "WORK", tmp_path)
    monkeypatch.setattr(retune, "TUNES", tmp_path / "retune")
    with pytest.raises(common.NotReady, match="tune-MultiKG4Rec"):
        retune.train(ids["MultiKG4Rec-t2v-s2020"])
    (tmp_path / "retune" / "MultiKG4Rec").mkdir(parents=True)
    (tmp_path / "retune" / "MultiKG4Rec" / "best.yaml").write_text("learning_rate: 0.005\n")
    seen = {}

    def fake_run(model, dataset, ov, run_dir, log):
        seen.update(model=model, ov=ov)
        return {"config": {"learning_rate": 0.005, "reg_weight": 1e-5}}

    monkeypatch.setattr(retune, "mmkgrec_run", fake_run)
    r = retune.train(ids["MultiKG4Rec-t2v-s2021"])
    assert seen["model"] == "MultiKG4Rec" and seen["ov"]["fusion"] == "t2v"
    assert seen["ov"]["config_file"].endswith("MultiKG4Rec/best.yaml") and seen["ov"]["seed"] == 2021
    assert r["ablates"] == "MultiKG4Rec" and r["row"] == "MultiKG4Rec-t2v"

    rng = np.random.default_rng(5)
    users = rng.random(300)

    def row(shift):
        return _runs({s: users + shift + 0.01 * rng.standard_normal(300) for s in retune.SEEDS})

    def lines(image_shift):
        final = {"MultiKG4Rec": row(0.0), "MultiKG4Rec-w/o t": row(image_shift),
                 "MultiKG4Rec-w/o v": row(0.0), "MultiKG4Rec-t2v": row(-0.03)}
        for rs in final.values():
            for r in rs:
                r["test"] = {k: r["test"]["ndcg@10"] for k in ("ndcg@20", "recall@20")}
                r["per_user"]["ndcg@20"] = r["per_user"].pop("ndcg@10")
        return "\n".join(section._ablation_lines(claim, final, ["ndcg@20", "recall@20"])
                         + section._claim_lines(claim, final))

    text = lines(+0.02)
    assert "| MultiKG4Rec-w/o t | MultiKG4Rec | `modalities: [\"image\"]` | 3 / 3 |" in text
    assert "| mkg-MKGAT-w/o t&v | mkg-MKGAT | `modalities: []` | 0 / 3 | not run" in text
    assert "- visual > text (Table 3: the image alone beats the text alone): holds." in text
    assert "- bi-directional > text-to-visual fusion (Table 4): holds." in text
    assert "- bi-directional > visual-to-text fusion (Table 4): not run." in text
    assert "- bi-directional fusion > fusion off (Table 4's w/o t&v): not run." in text
    # the full model against each single modality: w/o t above it here, w/o v level with it
    assert "- both modalities > the image alone (Table 3: w/o t below the full model): does not hold." in text
    assert "- both modalities > the text alone (Table 3: w/o v below the full model): does not hold." in text
    assert "- both modalities > the image alone (Table 3: w/o t below the full model): holds." in lines(-0.02)
    assert "visual > text (Table 3: the image alone beats the text alone): does not hold." in lines(-0.02)


def test_learned_not_run_line_names_only_the_retune_rows_with_seeds_missing(monkeypatch):
    """The learned section's `not run` line names each retune row still short of seeds, with its
    count, and drops a claim's rows once every seed of them is stored."""
    import multimodal as mm
    import retune

    from reporting import learned

    mkg = retune.CLAIMS["multikg"]
    rows = {**mkg["rows"], **mkg["ablations"]}
    seeds = [j for j in retune.jobs() if "seed" in j and j["row"] in rows]
    stored = [{"job": j["id"]} for j in seeds if j["row"] != "MultiKG4Rec-t2v"]
    stored += [{"job": j["id"]} for j in seeds if j["row"] == "MultiKG4Rec-t2v"][:1]
    monkeypatch.setattr(learned, "load", lambda suite: stored if suite == "retune" else [])
    said = "; ".join(learned._not_run(mm, {}))
    assert "MultiKG4Rec-t2v (1 of 3 seeds)" in said
    assert "MultiKG4Rec (" not in said and "MultiKG4Rec-v2t" not in said
    # the claims named as waiting are those on the short row, and no other
    assert "the claims that wait on them: bi-directional > text-to-visual fusion; " in said
    assert "visual > text" not in said and "fusion off" not in said
    stored += [{"job": j["id"]} for j in seeds if j["row"] == "MultiKG4Rec-t2v"]
    assert "claim `multikg`" not in "; ".join(learned._not_run(mm, {}))


def test_retune_tables_give_each_seeds_best_epoch_and_name_the_runs_the_cap_ended():
    """Each seed's best epoch and epochs run stand in the retune tables; a run whose best epoch
    plus patience reaches the cap is named (patience never had the chance to stop it), one that
    patience stopped before the cap is not."""
    from reporting import retune as section

    def run(seed, best, ran, cap=50, patience=10):
        return {"seed": seed, "best_epoch": best, "epochs_run": ran,
                "config": {"epochs": cap, "stopping_step": patience}}

    final = {"A": [run(2021, 45, 50), run(2020, 24, 35)], "B": [run(2020, 39, 50)],
             "C": [run(2020, 6, 10, cap=10, patience=3)]}
    assert section._epochs(final["A"]) == "24 of 35, 45 of 50"
    assert section._epochs([]) == "-"
    said = "\n".join(section._capped_lines(["A", "B", "C"], final))
    assert "A (seed 2021)" in said and "B" not in said.split(":")[-1] and "C (" not in said
    final["B"] = [run(2020, 40, 50), run(2021, 49, 50)]
    said = "\n".join(section._capped_lines(["A", "B"], final))
    assert said.endswith("A (seed 2021); B (seeds 2020, 2021).")
    assert section._capped_lines(["C"], final) == []


def test_load_sentence_gives_the_recorded_range_and_counts_runs_without_a_record():
    from reporting.tables import load_sentence

    runs = [{"load_before": [0.4, 0, 0], "load_after": [1.2, 0, 0]},
            {"load_before": [0.9, 0, 0], "load_after": [0.1, 0, 0]}, {}]
    assert load_sentence(runs) == ("The machine's 1-minute load average, recorded before and "
                                   "after each run: 0.1 to 1.2 (1 of 3 runs predate the record).")
    assert load_sentence(runs[:2]).endswith("0.1 to 1.2.")
    assert load_sentence([{}, {}]) == "The machine's load during these 2 runs was not recorded."


def test_retune_claims_name_their_stored_runs_that_a_rerun_did_not_repeat():
    from reporting import retune as section

    final = {"A": [{"job": "A-s1", "seed": 1}, {"job": "A-s2", "seed": 2}],
             "B": [{"job": "B-s1", "seed": 1}]}
    reruns = [{"suite": "retune", "job": "A-s2", "identical": False, "max_abs_diff": 0.0201},
              {"suite": "retune", "job": "B-s1", "identical": True, "max_abs_diff": 0.0},
              {"suite": "kg", "job": "A-s1", "identical": False, "max_abs_diff": 0.5}]
    text = " ".join(section._rerun_lines(["A", "B"], final, reruns))
    assert "1 of 2 repeat exactly; these do not" in text and "A seed 2 (max abs diff 0.0201)" in text
    assert "0.5" not in text  # another suite's job of the same name is not this claim's
    assert section._rerun_lines(["A", "B"], final, reruns[1:2])[-1].endswith("1 of 1 repeat exactly.")
    assert section._rerun_lines(["A"], final, []) == []
