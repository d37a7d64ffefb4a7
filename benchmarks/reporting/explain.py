"""Knowledge-anchored explanations (``benchmarks/explain.py``, issue 21)."""

from __future__ import annotations

from .tables import command, load


def _f(x, fmt="{:.3f}") -> str:
    return "-" if x is None else fmt.format(x)


def _labels() -> list[str]:
    """The hand labels (``benchmarks/explain_labels.json``), counted."""
    import json
    from collections import Counter

    from .tables import ROOT

    path = ROOT / "benchmarks" / "explain_labels.json"
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    n = Counter(s["label"] for e in data["explanations"] for s in e["sentences"])
    kg = n["T"] + n["F"] + n["U"]
    return ["### 100 explanations labelled by hand", "",
            f"`benchmarks/explain_labels.json`: the first {len(data['explanations'])} explanations "
            f"of `template-BPR`, {sum(n.values())} sentences, read by hand against the labeller's "
            f"own film knowledge (no look-up). Attribute sentences: {n['A']}, years right as far as "
            f"known; interest sentences: {n['I']}. KG sentences: {kg}, of which {n['T']} known true, "
            f"**{n['F']} known false** and {n['U']} that the labeller cannot judge. Every one of "
            "them is in the dataset's KG (the audit finds no unsupported fact), so the false ones "
            "come from the data: `ml-100k.link` maps MovieLens-**1M** item ids to Freebase "
            "entities (ML-1M's 260 -> 1196 -> 1210 is Star Wars -> The Empire Strikes Back -> "
            "Return of the Jedi in its `film.film.sequel` triples; read with ML-100K's ids, the "
            "same triples say North by Northwest -> It Takes Two), so on ML-100K an item's KG facts "
            "are mostly another film's. The verifier shows only what the graph holds; it cannot "
            "make a wrong graph right.", ""]


def _gemma_all(g: dict | None) -> list[str]:
    """The transformers backend with the bundled Gemma on every pair (``gemma-BPR-rekeyed``)."""
    if not g:
        return ["**Gemma-3-270M on every pair** (`gemma-BPR-rekeyed`, the transformers backend on "
                "the 500 pairs of `template-BPR-rekeyed`): not run yet; the job resumes user by "
                "user (`python benchmarks/explain.py --only =gemma-BPR-rekeyed`).", ""]
    o, lat = g.get("explain_options"), g["latency_ms"]
    shown_lm = g["explanations"] - g["template_fallback"]
    users = (f"{g['users_run']} of {g['users_planned']} users"
             + (f" ({g['stopped'].split(': ', 1)[-1]})" if g["stopped"] else ""))
    return [f"**Gemma-3-270M on every pair** (`gemma-BPR-rekeyed`): the transformers backend with "
            f"the bundled GGUF (dequantised to float32, one thread) on the pairs of "
            f"`template-BPR-rekeyed`, {users}, {g['explanations']} explanations"
            + (f"; up to {o['explain_max_attempts']} drafts of at most "
               f"{o['explain_max_new_tokens']} tokens (temperature "
               f"{o['explain_temperature']:g}), then the template" if o else "")
            + f". The audit found "
            f"**{g['unsupported_shown']}** shown facts missing from the dataset files, over "
            f"{g['shown_claim_triples']} shown triples. Raw drafts: {g['raw_claims_verified']} of "
            f"{g['raw_claims']} claims verified ({_f(g['raw_verified_share'], '{:.1%}')}); "
            f"{shown_lm} explanations show a Gemma draft that passed the verifier, "
            f"{g['template_fallback']} fell back to the template. CPU per explanation p50 "
            f"{lat['cpu_p50'] / 1000:.1f} s, p99 {lat['cpu_p99'] / 1000:.1f} s (drafting is most "
            f"of it); loading {g['load_s']:.0f} s."
            + (f" What the audit found in {g['explanations_with_unsupported']} explanations: "
               + "; ".join(f"\"{p}\"" for p in dict.fromkeys(g["audit_examples"])) + "."
               if g["unsupported_shown"] else ""), ""]


def _faithfulness(rows: dict) -> list[str]:
    """The faithfulness table (``faithful-*`` jobs), and which models it does not apply to, read
    from the models' declarations (``history_reasons``)."""
    from mmkgrec.explain.reasons import declared_reasons

    fa = sorted((r for k, r in rows.items() if k.startswith("faithful-")),
                key=lambda r: (r["model"] != "SASRec", r["model"], not r["model_reasons"]))
    if not fa:
        return []
    declared = declared_reasons()
    measured = {r["model"] for r in fa}
    none = sorted(m for m, why in declared.items() if why is None)
    unmeasured = sorted(m for m, why in declared.items() if why and m not in measured)
    L = ["### Faithfulness", "",
         "Removing the history items an explanation cites vs removing as many random items of "
         "the user's training history (mean of 5 draws), per (user, item) pair that cites at "
         "least one; a larger drop of the candidate's score means the explanation names what "
         "the model used. What removing means is each model's own hook "
         "(`mmkgrec.explain.reasons`), as its class declares it (`history_reasons`). Runs capped "
         "(epochs in `benchmarks/explain.py`); one seed.", "",
         "| job | model | cited history ordered by | pairs citing | mean drop, cited | "
         "mean drop, random | cited > random | paired t (p) | Wilcoxon p |",
         "|---|---|---|---|---|---|---|---|---|"]
    removed = {}
    for r in fa:
        order = "the model's reasons, then the KG" if r["model_reasons"] else "the KG alone"
        removed.setdefault(r["model"], r.get("removed") or declared.get(r["model"]))
        L.append(f"| {r['job']} | {r['model']} | {order} | "
                 f"{r['pairs_citing']}/{r['pairs']} | "
                 f"{_f(r['mean_drop_cited'])} | {_f(r['mean_drop_random'])} | "
                 f"{_f(r['share_cited_larger'], '{:.1%}')} | {_f(r['t'], '{:.2f}')} "
                 f"({_f(r['p_t'], '{:.2g}')}) | {_f(r['p_wilcoxon'], '{:.2g}')} |")
    L += ["", "- How to read the two orders: with *the model's reasons* the cited items are, among "
          "the history items the KG links to the candidate, those whose removal lowers the score "
          "most, so those rows check that the explanation cites what moved the score (a large "
          "share is expected by construction); *the KG alone* cites in the KG's order, so its "
          "rows test whether the KG's links name what the model used. "
          + _kg_alone(fa)]
    L += ["- Removing an item means, per model: " + "; ".join(
        f"{m}: {why}" for m, why in removed.items()) + "."]
    runs = []
    for m in sorted(measured, key=lambda m: (m != "SASRec", m)):
        t = rows.get(f"train-{m}")
        if t:
            c = t["config"]
            seq = f", inputs of {c['max_seq_length']} items" if c.get("max_seq_length") else ""
            runs.append(f"{m} {c['epochs']} epochs{seq} (test NDCG@10 "
                        f"{_f(t['test'].get('ndcg@10'))})")
    if runs:
        L.append("- The runs (`train-*` jobs, capped): " + "; ".join(runs) + ".")
    L += ["- Not applicable (the model declares no history reasons: its score cannot be read "
          "back to the user's history, e.g. a user vector that is a free parameter): "
          + ", ".join(none) + "."]
    if unmeasured:
        L.append("- Declaring reasons but not measured here: " + ", ".join(unmeasured) + ".")
    return L + [""]


def _kg_alone(fa) -> str:
    """One sentence per model on the KG-alone rows, read off their paired t-test (p < 0.05)."""
    out = []
    for r in fa:
        if r["model_reasons"] or r.get("t") is None:
            continue
        if r["p_t"] < 0.05:
            way = "more" if r["t"] > 0 else "less"
            out.append(f"{r['model']}: the KG's citations lower the score {way} than random "
                       f"items (t = {r['t']:.2f}, p = {r['p_t']:.2g})")
        else:
            out.append(f"{r['model']}: no difference from random items (p = {r['p_t']:.2g})")
    return ("KG alone, " + "; ".join(out) + ".") if out else ""


def _llamacpp(build: dict | None, h: dict | None) -> list[str]:
    """The HTTP backend through a local llama.cpp server: the build, the server, the run."""
    if build is None and h is None:
        return []
    L = ["**HTTP backend through a local llama.cpp server** (`build-llamacpp`, "
         "`http-llamacpp-BPR`).", ""]
    if build:
        how = ("built from source (no wheel for this platform)" if build["built_from_source"]
               else "installed")
        if build["status"] == "built":
            L.append(f"- Build: `{build['requirement']}` {how} in {build['build_s'] / 60:.1f} "
                     f"min ({build['env']['CMAKE_BUILD_PARALLEL_LEVEL']} compile jobs on the "
                     f"shared 2-core machine; {build['tools']['cmake']}, "
                     f"{build['tools']['g++']}): llama-cpp-python {build['version']}"
                     + (f", torch {build['torch_before']} before and {build['torch_after']} "
                        "after" if "torch_after" in build else "")
                     + f". `{command(build)}`.")
        else:
            L.append(f"- Build of `{build['requirement']}` failed after "
                     f"{build['build_s'] / 60:.1f} min: `{build['error']}`.")
    if h and h.get("status") == "not run":
        L += [f"- Not run: {h['why']}.", ""]
        return L
    if h:
        s, lat, sp = h["server_settings"], h["latency_ms"], h["server_speeds"]
        L.append(f"- Server: llama-cpp-python {h['llama_cpp_python']} serving "
                 f"`{h['model_file']}` ({h['model_note']}), `{h['server_command']}`; ready in "
                 f"{h['server_start_s']:.1f} s. CPU features: `{h['llama_cpp_system_info']}`.")
        L.append(f"- Pairs: those of `template-BPR-rekeyed` (the same users in the same order, "
                 f"their top {h['k']}), {h['users_run']} of {h['users_planned']} users"
                 + (f" ({h['stopped'].split(': ', 1)[-1]})" if h["stopped"] else "") + "; up to "
                 f"{h['explain_options']['explain_max_attempts']} drafts of at most "
                 f"{h['explain_options']['explain_max_new_tokens']} tokens (temperature "
                 f"{h['explain_options']['explain_temperature']:g}), then the template.")
        L.append(f"- Cost per explanation: server CPU p50 {lat['server_cpu_p50'] / 1000:.1f} s, "
                 f"p99 {lat['server_cpu_p99'] / 1000:.1f} s ({s['n_threads']} thread); wall "
                 f"p50 {lat['wall_p50'] / 1000:.1f} s, p99 {lat['wall_p99'] / 1000:.1f} s "
                 f"(the table's CPU column is the client's: prompt, verifier and similarity "
                 f"check). llama.cpp's own timings: prompt "
                 f"{sp['prompt']['median_tokens_per_s']:.0f} tokens/s, generation "
                 f"{sp['generation']['median_tokens_per_s']:.1f} tokens/s (medians over "
                 f"{sp['generation']['requests']} requests"
                 + (f"; {h['note']}" if h.get("note") else "") + ").")
        L.append(f"- Shown: {h['unsupported_shown']} facts the audit could not find in the "
                 f"dataset files, over {h['shown_claim_triples']} shown triples; "
                 f"{h['template_fallback']} of {h['explanations']} explanations fell back to the "
                 f"template, {h['explanations'] - h['template_fallback']} show a llama.cpp draft "
                 f"that passed the verifier.")
    L.append("")
    return L


def section() -> list[str]:
    rows = {r["job"]: r for r in load("explain")}
    if not rows:
        return []
    L = ["", "## Knowledge-anchored explanations (MM-RACL-KAL section 3.5)", "",
         "`python benchmarks/explain.py`. ML-100K; BPR (40 epochs) and SASRec (3 epochs, inputs of 20 items) runs, "
         "each explained for its top 5 recommendations to 100 users drawn with seed 2020 (users "
         "with at least 5 training items); the verifier's fact set and the similarity threshold "
         "use 100 other users. Every shown explanation is audited by `benchmarks/explain_audit.py`, "
         "which shares no code with the verifier and looks each shown fact up in the dataset "
         "files. Latency: wall and thread CPU time per explanation on a shared 2-core machine "
         "(load average often above 5): the CPU times are what the work costs; the wall times "
         "include waiting for a core. Target: the template under 5 ms; `template-SASRec` "
         "includes the model's own reasons (one batch of occlusion passes through SASRec per "
         "explanation), which BPR has not. Jobs ending in `-rekeyed` read ML-100K's `.link` "
         "re-keyed through the title map (`link_item_map`); the others read it as given, keyed by "
         "MovieLens-1M ids, so their KG sentences are true of the KG but speak of other films' "
         "entities (the audit checks each job against the link its run read).", ""]
    shown = [r for k, r in sorted(rows.items()) if k.startswith(("template-", "gemma-", "http-"))
             and "explanations" in r]
    if shown:
        L += ["| job | backend | explanations | sentences shown | unsupported shown facts (audit) "
              "| raw claims verified | corrected | template fallback | USR (explanations) | USR "
              "(sentences) | with a KG sentence | p50 / p99 ms (CPU) | p50 / p99 ms (wall) |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in shown:
            lat = r["latency_ms"]
            job = r["job"]
            if r.get("users_run", r.get("users_planned")) != r.get("users_planned"):
                job += f" ({r['users_run']} of {r['users_planned']} users)"
            L.append(f"| {job} | {r['backend']} | {r['explanations']} | "
                     f"{r['sentences_shown']} | **{r['unsupported_shown']}** | "
                     f"{r['raw_claims_verified']}/{r['raw_claims']} "
                     f"({_f(r['raw_verified_share'], '{:.1%}')}) | {r['corrected']} | "
                     f"{r['template_fallback']} | {_f(r['usr_explanations'])} | "
                     f"{_f(r['usr_sentences'])} | {r['with_kg_sentence']} | "
                     f"{lat['cpu_p50']:.2f} / {lat['cpu_p99']:.2f} | "
                     f"{lat['wall_p50']:.2f} / {lat['wall_p99']:.2f} |")
        L.append("")
        for r in shown:
            if r.get("users_from_end"):
                L.append(f"`{r['job']}`: {r['users_from_end']} of its {r['users_run']} users ran "
                         "in a second process from the last user backwards (`--from-end`), beside "
                         "the first; both processes' times were taken with the two sharing the "
                         "machine.")
            if r.get("notes"):
                L.append(f"Notes of `{r['job']}` (why an explanation says less): "
                         + "; ".join(f"{k}: {v}" for k, v in sorted(r["notes"].items())) + ".")
        L.append("")
    runs = [rows[k] for k in ("facts-BPR-first", "facts-BPR") if k in rows]
    f = runs[-1] if runs else None
    if f:
        L += ["### Verifier on the frozen fact set", "",
              "`benchmarks/explain_facts.json`: false sentences (wrong year, wrong genre, an "
              "invented shared director / writer / actor / producer / studio, a title the user "
              "never saw, and paraphrases of each) and true ones, written before the verifier and "
              "split in halves; filled from the evidence of the tuning users' top-5 pairs. "
              "Targets on the held-out half: at least 95% of false sentences caught (recall), "
              "at least 95% of true ones passed.", "",
              "| run | half | false caught (recall) | true passed | precision of a rejection |",
              "|---|---|---|---|---|"]
        for r in runs:
            for half, h in r["halves"].items():
                L.append(f"| {r['job']} | {half} | {h['false_caught']}/{h['false_n']} "
                         f"({_f(h['recall'], '{:.2%}')}) | {h['true_passed']}/{h['true_n']} "
                         f"({_f(h['true_pass_rate'], '{:.2%}')}) | {_f(h['precision'], '{:.2%}')} |")
        if "facts-BPR-first" in rows:
            L += ["", "`facts-BPR-first`, kept as it was: " + rows["facts-BPR-first"]["about"]
                  + "."]
        h = f["halves"].get("heldout", {})
        cats = h.get("per_category", {})
        if cats:
            L += ["", "Held-out half by category (sentences passed / filled): "
                  + "; ".join(f"{c}: {v['passed']}/{v['n']}" for c, v in cats.items()) + "."]
        L.append("")
    t = rows.get("threshold-BPR")
    if t:
        L += [f"**Similarity threshold** (`explain_similarity_threshold`), on {t['pairs']} tuning "
              f"pairs: MiniLM cosine of a template explanation to its own user's interest vector, "
              f"median {t['own_median']:.3f}, 5th percentile {t['own_p5']:.3f}; to a random other "
              f"user's, median {t['other_median']:.3f} ({t['other_below_threshold']:.1%} of them "
              f"below the 5th percentile). Chosen: {t['chosen_threshold']:.2f}. Text about the "
              "candidate is close to any film lover's history, so this check separates little; "
              "the claim-level verifier does the work.", ""]
    L += _faithfulness(rows)
    g = rows.get("gemma-BPR")
    if g:
        L += [f"**Gemma-3-270M** (`gemma-BPR`, {g['pairs']} pairs only: one 96-token draft took "
              f"one to five minutes of wall time on this shared machine; loading {g['load_s']:.0f} "
              "s): its drafts repeat one sentence, echo the evidence (\"The evidence is that ...\") "
              "or invent (\"Air Force One is a 1997 film starring Jackie Brown, the first female "
              "pilot ...\"), which the verifier caught; what was shown held. This job ran with "
              "`explain_similarity_threshold` 0.2, the default before `threshold-BPR` chose 0.31.",
              ""]
    L += _gemma_all(rows.get("gemma-BPR-rekeyed"))
    L += _labels()
    L += _llamacpp(rows.get("build-llamacpp"), rows.get("http-llamacpp-BPR"))
    if "gemma-BPR" not in rows:
        L += ["**Gemma-3-270M** (`gemma-BPR`): not run. On this shared 2-core machine one draft "
              "of 96 tokens took one to five minutes of wall time; the job's 3 pairs (up to 2 "
              "drafts each) did not finish in the session's time. Its code path is tested end to "
              "end with a small randomly initialised local model "
              "(tests/test_explain_backends.py).", ""]
    return L
