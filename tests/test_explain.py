"""Knowledge-anchored explanations: evidence from the run's KG and item table, the template
backend, the verifier (false facts caught, true ones passed), Run.explain and mmkgrec explain,
and bad input (unknown ids, no history, no KG link)."""

import json

import pytest

import mmkgrec
from explain_data import write
from mmkgrec.cli import main
from mmkgrec.runs import UnknownIdError

SETTINGS = {"show_progress": False, "threads": 1, "split": "leave_one_out", "user_min_inter": 1,
            "item_min_inter": 1}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain")
    data = write(root / "films")
    mmkgrec.train("Pop", str(data), root / "run", overrides=SETTINGS)
    return root / "run"


@pytest.fixture(scope="module")
def run(run_dir):
    return mmkgrec.load(run_dir)


def _check(run, user, item, draft):
    ex = run.explainer()
    ev = ex.evidence(run.user_index(user), run.item_index(item))
    return ex.check(draft, ev)


def test_shared_director_is_explained_with_its_triples(run):
    e = run.explain("1", "8")
    assert e.backend == "template" and e.verified and not e.corrected
    texts = [s.text for s in e.sentences]
    assert texts[0] == "Collateral (2004) is listed under Crime, Drama and Thriller."
    assert "Collateral was directed by the same person as Heat, which you rated 5." in texts
    director = next(s for s in e.sentences if "directed" in s.text)
    got = {(t.head, t.relation, t.tail, t.source) for t in director.triples}
    assert ("item:8", "film.film.directed_by", "m.mann", "kg") in got
    assert ("item:1", "film.film.directed_by", "m.mann", "kg") in got
    assert ("item:1", "user_rating", "5", "history") in got
    assert e.text == " ".join(texts)
    d = e.to_dict()
    assert d["backend"] == "template" and d["sentences"][0]["triples"]
    json.dumps(d)  # serialisable as it is


def test_interest_sentence_ties_the_user_to_the_genre(run):
    e = run.explain("1", "10")  # Aladdin: Comedy; user 1 watched Toy Story and Big (Comedy)
    s = next(s for s in e.sentences if s.text.startswith("You often watch"))
    assert s.text == "You often watch Comedy films, and Aladdin is a Comedy film too."
    got = {(t.head, t.relation, t.tail) for t in s.triples}
    assert ("user:1", "watches_genre", "Comedy") in got and ("item:10", "genre", "Comedy") in got


def test_every_shown_sentence_is_verified(run):
    for e in run.explain_top("1", 5):
        checks = _check(run, "1", e.item, e.text)
        assert checks and all(c.verified for c in checks)
        assert all(s.triples for s in e.sentences)


@pytest.mark.parametrize("draft,kind", [
    ("Collateral came out in 1999.", "year"),
    ("Collateral is a Comedy film.", "genre"),
    ("Collateral was directed by the same person as Big, which you rated 3.", "relation"),
    ("Collateral shares its director with Ronin.", "seen"),
    ("You rated Heat 2.", "rating"),
    ("Collateral stars Tom Cruise.", "name"),
    ("Collateral won 5 awards.", "number"),
    ("Collateral was not directed by the same person as Heat.", "negation"),
    ("Thriller is among the genres you watch most.", "genre"),  # not in user 1's top 5
    # a decade dates nothing of the evidence, even around the right year (a base LM's habit)
    ("Collateral is a Crime film, a genre that is popular in the 2000s.", "year"),
])
def test_false_facts_are_caught(run, draft, kind):
    checks = _check(run, "1", "8", draft)
    assert not any(c.verified for c in checks)
    assert kind in {c.kind for s in checks for c in s.claims if not c.ok}


@pytest.mark.parametrize("draft", [
    "Collateral came out in 2004.",
    "Collateral is a Crime film.",
    "It was released in 2004.",
    "Collateral shares its director with Heat.",
    "The director of Heat, a film you rated 5, also made Collateral.",
    "Collateral was produced by the same producer as nothing you know.",  # not verifiable
])
def test_true_facts_pass(run, draft):
    checks = _check(run, "1", "8", draft)
    if "nothing" in draft:
        assert not any(c.verified for c in checks)
    else:
        assert checks and all(c.verified for c in checks), [c.failures for c in checks]


def test_titles_with_trailing_articles_and_dotted_relations(run):
    # "Usual Suspects, The" is read as "The Usual Suspects"; a relation token's dots end nothing
    checks = _check(run, "1", "8", "Collateral shares an entity with The Usual Suspects through "
                    "film.film.produced_by.")
    assert len(checks) == 1 and {c.kind for c in checks[0].claims} >= {"seen", "relation"}
    assert not checks[0].verified  # user 1 never saw The Usual Suspects


def test_no_kg_link_says_why(run):
    e = run.explain("1", "9")
    assert e.sentences and "no link to the knowledge graph" in " ".join(e.notes)
    assert all("kg" != t.source for s in e.sentences for t in s.triples)


def test_no_training_history_says_why(run):
    ex = run.explainer()
    ev = ex.catalog.evidence(run.user_index("1"), run.item_index("8"), run.config)
    assert ev.history  # and now a user without one:
    import numpy as np

    cat = ex.catalog
    saved = cat.h_ptr.copy()
    try:
        u = run.user_index("1")
        cat.h_ptr = np.where(np.arange(len(saved)) > u, saved, saved)  # same
        cat.h_ptr[u + 1:] = saved[u + 1:]
        cat.h_ptr[u + 1] = cat.h_ptr[u]  # user 1's slice empty
        e = ex.explain(u, run.item_index("8"))
    finally:
        cat.h_ptr = saved
    assert "no interactions in this run's training data" in " ".join(e.notes)
    assert e.sentences and all(t.source == "item" for s in e.sentences for t in s.triples)


def test_unknown_ids_are_named(run):
    with pytest.raises(UnknownIdError, match="unknown user id 'nobody'"):
        run.explain("nobody", "8")
    with pytest.raises(UnknownIdError, match="unknown item id '999'"):
        run.explain("1", "999")


def test_bad_backend_and_bad_option(run):
    from mmkgrec.errors import ConfigError

    with pytest.raises(ConfigError, match="explain_backend"):
        run.explain("1", "8", backend="oracle")
    with pytest.raises(ConfigError, match="epochs"):
        run.explain("1", "8", epochs=3)


def test_cli_explain(run_dir, capsys):
    assert main(["explain", str(run_dir), "--user", "1", "--item", "8"]) == 0
    out = capsys.readouterr().out
    assert "Collateral was directed by the same person as Heat" in out
    assert "(item:8, film.film.directed_by, m.mann)" in out
    assert main(["explain", str(run_dir), "--user", "1", "-k", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 2 and all(r["verified"] for r in rows)
    assert main(["explain", str(run_dir), "--user", "ghost"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown user id 'ghost'" in err[0]


def test_a_next_item_model_orders_the_cited_history_by_its_own_reasons(tmp_path):
    from mmkgrec.explain.reasons import influence, scores_without

    data = write(tmp_path / "films")
    run = mmkgrec.train("SASRec", str(data), tmp_path / "sas", overrides={
        **SETTINGS, "epochs": 2, "max_seq_length": 5, "embedding_size": 8, "n_layers": 1,
        "n_heads": 1, "inner_size": 8, "train_batch_size": 8})
    u, c = run.user_index("1"), run.item_index("8")
    run._prepare()
    drops = influence(run.model, u, c)
    hist = run.explainer().catalog.history(u)[0]
    assert set(drops) == set(hist.tolist())
    base = scores_without(run.model, u, c, [[]])[0]
    for i, d in drops.items():
        assert d == pytest.approx(base - scores_without(run.model, u, c, [[i]])[0], abs=1e-5)
    ev = run.explainer().evidence(u, c)
    assert ev.reasons == pytest.approx(drops)
    with_paths = {p.history for p in ev.all_paths}
    assert ev.paths[0].history == max(with_paths, key=lambda h: drops[h])
    off = run.explainer().evidence(u, c, run.config.updated(explain_model_reasons=False))
    assert off.reasons == {}


@pytest.mark.data
def test_ml100k_explanations_hold_and_name_kg_paths(data_dir, tmp_path):
    run = mmkgrec.train("Pop", "ml-100k", tmp_path / "pop",
                        overrides={"show_progress": False, "threads": 1})
    run = mmkgrec.load(tmp_path / "pop")
    kg_sentences = 0
    for user in ("196", "1", "500"):
        for e in run.explain_top(user, 3):
            checks = _check(run, user, e.item, e.text)
            assert e.sentences and all(c.verified for c in checks)
            kg_sentences += sum(any(t.source == "kg" for t in s.triples) for s in e.sentences)
    assert kg_sentences >= 3
