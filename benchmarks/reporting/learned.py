"""The image-side rows measured again with the learned image encoder (issue 18, stage 3): the
``LEARNED`` rows of ``benchmarks/multimodal.py`` beside the descriptor rows they repeat, and the
``LEARNED_LADDER`` rung of ``benchmarks/sequential.py`` beside the descriptor's ladder."""

from __future__ import annotations

import statistics
from collections import defaultdict

from .stats import TESTS, claim, comparisons, holds, significance_rows, verdict
from .tables import ACC_KEYS, SEQ_KEYS, cells, command, fmt, header, load, seed_row, suite_runs

KEY = "ndcg@10"


def encoder_title(spec: str) -> str:
    """``efficientnet-lite1`` -> ``EfficientNet-Lite1``."""
    return spec.replace("efficientnet-lite", "EfficientNet-Lite")


def _by_variant(runs: list[dict], field: str = "variant") -> tuple[dict, dict]:
    """The final rows' runs and the tuning runs' validation NDCG@10 per learning rate."""
    final, tune = defaultdict(list), defaultdict(dict)
    for r in runs:
        if r.get("tuning") or "trial" in r:
            if "reg" not in r and "chosen_lr" in r:
                tune[r[field]][r["chosen_lr"]] = r["valid"][KEY]
        else:
            final[r[field]].append(r)
    return final, tune


def _image(rs: list[dict]) -> str:
    """The image features a row's runs read (one value, or the runs' distinct values)."""
    seen = []
    for r in rs:
        cfg = r["config"]
        reads = _reads_images(r)
        word = cfg.get("image_encoder", "?") if reads else "none"
        if reads and cfg.get("shuffle_features"):
            word += ", shuffled"
        if reads and cfg.get("feature_norm", "none") != "none":
            word += f", {cfg['feature_norm']}ised"
        if word not in seen:
            seen.append(word)
    return " / ".join(seen) if seen else "-"


def _reads_images(r: dict) -> bool:
    """Whether a run of our library read image features: its model needs them
    (``requirements``), or its protocol kept only items with an image."""
    from mmkgrec.models import get_model_class

    cfg = r.get("config") or {}
    if r.get("library", "mmkgrec") != "mmkgrec" or "model" not in r:
        return False
    return ("image" in get_model_class(r["model"]).requirements(cfg)
            or "image" in (cfg.get("require_item_content") or []))


def _claims(mm, final: dict, cs: list, pairs: list) -> list[str]:
    """One sentence per claim, its words chosen by the adjusted test over users."""
    by_pair = dict(zip(pairs, cs))
    tag = mm.LEARNED_TAG
    said = [("Learned > descriptor (VBPR, image only)", f"VBPR-image-{tag}", "VBPR-image"),
            ("Learned > shuffled learned (VBPR, image only: what the vectors' assignment to items "
             "carries)", f"VBPR-image-{tag}", f"VBPR-image-{tag}-shuffled"),
            ("VBPR > BPR with learned features (the VBPR paper's claim; image only, as in the paper)",
             f"VBPR-image-{tag}", "BPR"),
            ("VBPR > BPR with learned features, text and image", f"VBPR-both-{tag}", "BPR"),
            ("Learned > descriptor (VBPR, text and image)", f"VBPR-both-{tag}", "VBPR-both"),
            ("Learned > descriptor (MMGCN, image only)", f"MMGCN-image-{tag}", "MMGCN-image"),
            ("Learned > descriptor (MMGCN, text and image)", f"MMGCN-both-{tag}", "MMGCN-both"),
            ("MMGCN > LightGCN with learned features, image only", f"MMGCN-image-{tag}", "LightGCN"),
            ("MMGCN > LightGCN with learned features, text and image", f"MMGCN-both-{tag}", "LightGCN"),
            ("Standardised > as stored (learned, VBPR, image only)", f"VBPR-image-std-{tag}",
             f"VBPR-image-{tag}"),
            ("VBPR > BPR with learned features standardised (image only)", f"VBPR-image-std-{tag}",
             "BPR")]
    L = []
    for name, a, b in said:
        c = by_pair.get((a, b))
        if c is None:
            L.append(f"- {name}: not run ({a if not final.get(a) else b} has no runs).")
            continue
        L.append(f"- {name}: {holds(c)}. {claim(a, b, c, KEY)}.")
    return L


def _pairs(mm) -> list[tuple[str, str]]:
    tag = mm.LEARNED_TAG
    return [(f"VBPR-image-{tag}", "VBPR-image"), (f"VBPR-image-{tag}", f"VBPR-image-{tag}-shuffled"),
            (f"VBPR-image-{tag}", "BPR"), (f"VBPR-both-{tag}", "BPR"),
            (f"VBPR-both-{tag}", "VBPR-both"), (f"MMGCN-image-{tag}", "MMGCN-image"),
            (f"MMGCN-both-{tag}", "MMGCN-both"), (f"MMGCN-image-{tag}", "LightGCN"),
            (f"MMGCN-both-{tag}", "LightGCN"), (f"VBPR-image-std-{tag}", f"VBPR-image-{tag}"),
            (f"VBPR-image-std-{tag}", "BPR")]


def section() -> list[str]:
    mm, runs = suite_runs("multimodal")
    final, tune = _by_variant(runs)
    if not any(final.get(v) for v in mm.LEARNED) and not any(tune.get(v) for v in mm.LEARNED):
        return []
    enc = mm.LEARNED_ENCODER
    title = encoder_title(enc)
    try:
        chosen = mm.chosen_image_encoder()
    except mm.common.NotReady:
        chosen = None
    choice = (f"the size chosen on validation among the EfficientNet-Lite encoders (above), "
              f"{encoder_title(chosen)}" if chosen == enc else
              f"named by the queue; the validation choice among the sizes is "
              f"{encoder_title(chosen) if chosen else 'not made yet'}")
    L = [f"## Learned image features ({title})", "",
         f"The image-side rows of the multimodal section measured again with {title} poster "
         f"features ({enc}: 1280-d pooled ImageNet features; {choice}), named in each job so that "
         "the descriptor pin leaves them alone, beside the descriptor rows they repeat. Same budget "
         "as those rows: the learning rate in "
         "{" + ", ".join(str(x) for x in mm.LRS) + "} chosen on validation NDCG@10 (seed 2020, "
         f"at most {mm.EPOCHS} epochs, patience {mm.PATIENCE}; the image-only VBPR row reuses the "
         "encoder choice's tuning runs), then the same seeds and splits, so the tests pair by "
         f"seed. VBPR rows: {len(mm.LEARNED_SEEDS[f'VBPR-image-{mm.LEARNED_TAG}'])} seeds; MMGCN "
         f"rows: {len(mm.LEARNED_SEEDS[f'MMGCN-image-{mm.LEARNED_TAG}'])} seed (compared on the "
         "seeds both rows ran). The shuffled control permutes the learned vectors across items "
         "(`shuffle_features`) and keeps the row's hyper-parameters. Test metrics, mean ± std over "
         "seeds; one torch thread beside other work, so s/epoch are not speed figures.", ""]
    order = ["BPR", "LightGCN"] + [x for v, lv in mm.LEARNED_OF.items()
                                   for x in (v, lv, *[c for c, b in mm.LEARNED_CONTROLS.items()
                                                      if b == lv and c not in mm.FURTHER_CONTROLS])]
    order += [v for v in mm.LEARNED if v not in order  # rows without a descriptor twin
              and v not in mm.FURTHER_OF.values()]       # (the further rows: their own table)
    L += header("| row | image features | lr | seeds | " + " | ".join(ACC_KEYS) + " | s/epoch |")
    for v in order:
        rs = final.get(v, [])
        L.append(seed_row(v, [_image(rs), rs[0]["chosen_lr"] if rs else "-"], rs))
    reused = [f"{r['variant']} seed {r['seed']} (`{r['reused_from']}`)" for v in order
              for r in final.get(v, []) if r.get("reused_from")]
    if reused:
        same, both = _seed_runs_repeat_tuning(runs)
        L += ["", "Runs that are their row's tuning run at the chosen rate (the same command but "
              f"the output folder; of this suite's rows that trained both, {same} of {both} have "
              "the same test NDCG@10 to the last digit), not trained again: " + ", ".join(reused)
              + "."]
    pairs = _pairs(mm)
    cs = comparisons(final, pairs, KEY)
    L += ["", f"Paired t-tests on test NDCG@10 {TESTS}:", ""]
    L += significance_rows(final, pairs, KEY, cs)
    L += _reproduction_note(pairs)
    L += ["", "The claims, with learned image features (Holm-adjusted over the table above):", ""]
    L += _claims(mm, final, cs, pairs)
    tuned = [v for v in mm.LEARNED if v in tune]
    if tuned:
        L += ["", "Tuning (validation NDCG@10 per learning rate, seed 2020):", "",
              "| row | " + " | ".join(f"lr {lr}" for lr in mm.LRS) + " |",
              "|---" * (1 + len(mm.LRS)) + "|"]
        rows = [x for v in mm.LEARNED_OF for x in (v, mm.LEARNED_OF[v])]
        for v in rows + [v for v in mm.LEARNED if v not in rows]:
            if v in tune:
                L.append(f"| {v} | " + " | ".join(fmt(tune[v].get(lr, float("nan"))) for lr in mm.LRS)
                         + " |")
    L += _further_lines(mm, final)
    L += _ladder_lines()
    missing = _not_run(mm, final)
    L += ["", ("Not run with learned features: " + "; ".join(missing) + ".") if missing else
          "Every row this section plans with learned features has run."]
    L += ["", "Commands: `python benchmarks/multimodal.py --only " + mm.LEARNED_TAG + "` and `python "
          "benchmarks/sequential.py --only =" + ",".join(_ladder_ids()) + "`; each JSON holds its "
          "exact `mmkgrec train` command"]
    first = next((final[v][0] for v in mm.LEARNED if final.get(v)), None)
    L[-1] += f", e.g. `{command(first)}`." if first is not None else "."
    return L + [""]


def _further_pairs(mm) -> list[tuple[str, str]]:
    """The further learned rows' comparisons: each against its descriptor twin, the sparse rows
    against their ID-only baselines, the text-and-image rows against their shuffled controls."""
    tag = mm.LEARNED_TAG
    return ([(lv, v) for v, lv in mm.FURTHER_OF.items()]
            + [(f"sparse-VBPR-both-{tag}", "sparse-BPR"),
               (f"sparse-MMGCN-both-{tag}", "sparse-LightGCN")]
            + [(b, c) for c, b in mm.FURTHER_CONTROLS.items()]
            + [(v, f"{v.removesuffix(f'-{tag}')}") for v in mm.LEARNED_REG])


def _further_lines(mm, final: dict) -> list[str]:
    """The rest of the suite's image rows with the learned encoder (one seed), beside their
    descriptor twins, tested as a family of their own on the seed both rows ran."""
    pairs = _further_pairs(mm)
    rows = list(dict.fromkeys(x for p in pairs for x in p))
    L = ["", "### Further image rows with learned features (one seed)", "",
         "The suite's other image rows with the learned encoder, seed 2020, each under its "
         "descriptor twin's budget (the `+reg` and `+L2` rows: the regulariser over "
         f"{mm.REGS} at the learned text-and-image row's rate); the shuffled controls keep "
         "their row's settings.", ""]
    L += header("| row | image features | lr | seeds | " + " | ".join(ACC_KEYS) + " | s/epoch |")
    by_seed = {v: [r for r in final.get(v, []) if r["seed"] == 2020] for v in rows}
    for v, rs in by_seed.items():
        L.append(seed_row(v, [_image(rs), rs[0]["chosen_lr"] if rs else "-"], rs))
    L += ["", "Paired t-tests on test NDCG@10 over users (seed 2020), Holm-adjusted over these "
          f"{len(pairs)}:", ""]
    cs = comparisons(by_seed, pairs, KEY)
    L += significance_rows(by_seed, pairs, KEY, cs)
    # learned against descriptor features, row by row: how the verdicts fall
    twins = [verdict(c) for (a, b), c in zip(pairs, cs)
             if c is not None and a == f"{b}-{mm.LEARNED_TAG}"]
    if twins:
        up, down = (sum(v.startswith(w) for v in twins) for w in ("higher", "lower"))
        L += ["", f"Learned against descriptor features in these rows: {up} higher, {down} "
              f"lower, {len(twins) - up - down} not significantly different, of {len(twins)}."]
    return L


def _seed_runs_repeat_tuning(runs: list[dict]) -> tuple[int, int]:
    """How many seed-2020 runs trained again (not reused) have exactly the test NDCG@10 of their
    row's tuning run at the chosen rate, out of those with both."""
    tuning = {(r["variant"], r["chosen_lr"]): r["test"][KEY] for r in runs
              if r.get("tuning") and "reg" not in r}
    pairs = [(r["test"][KEY], tuning[(r["variant"], r["chosen_lr"])]) for r in runs
             if not r.get("tuning") and r.get("seed") == 2020 and not r.get("reused_from")
             and "reg" not in r and (r["variant"], r.get("chosen_lr")) in tuning]
    return sum(a == b for a, b in pairs), len(pairs)


def _reproduction_note(pairs) -> list[str]:
    """How the stored rows the learned ones are tested against rerun today (the reproduce
    suite's reruns of them): a stored row that does not repeat adds that much to a difference."""
    rows = {b for _, b in pairs} | {a for a, _ in pairs}
    reruns = [r for r in load("reproduce") if r.get("suite") == "multimodal"
              and r.get("job", "").rsplit("-s", 1)[0] in rows]
    if not reruns:
        return []
    said = [f"{r['job']} {'repeats exactly' if r['identical'] else 'does not repeat'} (test "
            f"NDCG@10 {r['stored'][KEY]:.4f} stored, {r['rerun'][KEY]:.4f} rerun)"
            for r in sorted(reruns, key=lambda r: r["job"])]
    return ["", "The stored rows compared here, rerun from their commands by `benchmarks/reproduce.py`: "
            + "; ".join(said) + ". A difference against a row that does not repeat is to be read "
            "against that margin."]


def _ladder_ids() -> list[str]:
    import sequential as seq

    return ([f"{seq.slug(r)}-s{s}" for s in seq.SEEDS for r in seq.LADDER_SEED_ROWS]
            + [f"{seq.slug(r)}-s2020" for r in seq.LEARNED_RUNGS])


def _ladder_lines() -> list[str]:
    """MM-RACL-KAL's image rung (+M) with learned features beside the descriptor's ladder."""
    import sequential as seq

    by_row = defaultdict(list)
    for r in load("sequential"):
        if "row" in r and "trial" not in r and not r.get("tuned") and "lib" not in r:
            by_row[r["row"]].append(r)
    learned = list(seq.LEARNED_LADDER)
    rungs = [x for row in seq.LEARNED_RUNGS
             for x in (row.removesuffix(f"-{seq.LEARNED_TAG}"), row)]  # descriptor, learned
    seeds = sorted({r["seed"] for row in learned for r in by_row.get(row, [])})
    L = ["", "### MM-RACL-KAL's image rung with learned features", "",
         "The ladder's +M rung (Base plus the image, alpha fusion) again with the learned encoder, "
         f"under the ladder's budget (at most {seq.EPOCHS} epochs, patience {seq.PATIENCE}, lr "
         f"{seq.LR}, seed(s) {seeds or [2020]}, each seed its own split), beside the descriptor's "
         "Base and +M rows of the same seeds. The protocol keeps "
         "only items with text and an image, so the rows pair only if both encoders leave the "
         "same items."]
    runs = [r for row in [*learned, *seq.LEARNED_RUNGS] for r in by_row.get(row, [])]
    if not runs:
        return L + ["", f"Not run: {', '.join(learned)}."]
    checks = [r.get("split_check", {}) for r in runs]
    same = all(c.get("same_as_descriptor") for c in checks)
    L[-1] += (" They do: " if same else " **They do not**: ") + "; ".join(dict.fromkeys(
        f"{c.get('items', '?')} items and {c.get('interactions', '?')} interactions with the "
        f"learned encoder, {c.get('descriptor_items', '?')} and "
        f"{c.get('descriptor_interactions', '?')} with the descriptor" for c in checks)) + "."
    rows = ["ladder-Base", "ladder-+M", *learned, *rungs]
    L += [""] + header("| row | image features | seeds | " + " | ".join(SEQ_KEYS) + " | s/epoch |")
    by_seed = {row: sorted(by_row.get(row, []), key=lambda r: r["seed"]) for row in rows}
    for row in rows:
        rs = by_seed[row]
        if not rs:
            L.append(f"| {row} | - | 0 | " + " | ".join("not run" for _ in SEQ_KEYS) + " | - |")
            continue
        L.append(f"| {row} | {_image(rs)} | {len(rs)} | " + " | ".join(cells(rs, SEQ_KEYS))
                 + f" | {statistics.median(r['timing']['train_epoch_s'] for r in rs):.1f} |")
    if not same:
        return L + ["", "No tests: the splits differ, so the rows are not paired."]
    pairs = [(learned[0], "ladder-Base"), (learned[0], "ladder-+M")]
    cs = comparisons(by_seed, pairs, KEY)
    L += ["", f"Paired t-tests on test NDCG@10 {TESTS}:", ""]
    L += significance_rows(by_seed, pairs, KEY, cs)
    c = cs[0]
    if c is not None:
        L += ["", f"- The image rung with learned features (+M > Base, MM-RACL-KAL's Table 5): "
              f"{holds(c)}. {claim(learned[0], 'ladder-Base', c, KEY)}."]
    # the further rungs (one seed): each learned rung against its descriptor rung, a family of
    # its own
    pairs = [(row, row.removesuffix(f"-{seq.LEARNED_TAG}")) for row in seq.LEARNED_RUNGS]
    L += ["", "The ladder's further image rungs (+RA, +S; one seed), learned against descriptor "
          f"features, paired t-tests on test NDCG@10 over users, Holm-adjusted over these "
          f"{len(pairs)}:", ""]
    L += significance_rows(by_seed, pairs, KEY)
    return L


def _not_run(mm, final: dict) -> list[str]:
    """What the issue asks to measure again with learned features and no stored row has yet,
    read off the stored results (a row counts when its config names the learned encoder)."""
    enc = mm.LEARNED_ENCODER

    def learned_rows(suite: str) -> list[str]:
        return sorted({r.get("job", "?") for r in load(suite)
                       if (r.get("config") or {}).get("image_encoder") == enc and _reads_images(r)})

    import retune
    import sequential as seq

    have = {r.get("job") for r in load("retune")}

    def short_rows(rows) -> dict[str, str]:
        """The rows among ``rows`` with seed runs still missing -> ``row (k of n seeds)``."""
        planned: dict[str, list[str]] = {}
        for j in retune.jobs():
            if "seed" in j and j["row"] in rows:
                planned.setdefault(j["row"], []).append(j["id"])
        return {row: f"{row} ({sum(i in have for i in ids)} of {len(ids)} seeds)"
                for row, ids in planned.items() if not all(i in have for i in ids)}

    def in_words(claim: str, short: dict[str, str]) -> str:
        """:func:`short_rows`' result in words, with the claim that holds them."""
        return ", ".join(short.values()) + f"; `benchmarks/retune.py`'s claim `{claim}` holds them"

    out = []
    mkg = retune.CLAIMS["multikg"]
    if short := short_rows({**mkg["rows"], **mkg["ablations"]}):
        waiting = [text.split(" (")[0] for a, b, text in mkg["claims"] if a in short or b in short]
        out.append(f"Multi-KG4Rec's claim and Table 3/4 ablation rows still short of seeds "
                   f"({in_words('multikg', short)})"
                   + (f", and the claims that wait on them: {'; '.join(waiting)}" if waiting
                      else ""))
    seq_learned = [r for r in retune.CLAIMS["seq"]["rows"] if r.endswith(f"-{mm.LEARNED_TAG}")]
    if short := short_rows(seq_learned):
        out.append(f"MM-RACL-KAL itself (content-only and +ID; {in_words('seq', short)})")
    seq_have = learned_rows("sequential")
    rungs = [r for r in seq.LEARNED_RUNGS if f"{seq.slug(r)}-s2020" not in seq_have]
    if rungs:
        out.append("MM-RACL-KAL's further image rungs (" + ", ".join(rungs) + ")")
    ladder = [j for j in seq_have
              if any(j.startswith(seq.slug(r) + "-s") for r in seq.LEARNED_LADDER)]
    if len(ladder) < len(seq.SEEDS):
        out.append(f"the image rung's further seeds ({len(ladder)} of 3 run)")
    if not learned_rows("popularity"):
        out.append("the popularity thirds")
    missing = [v for v in mm.LEARNED if not final.get(v) and v not in mm.FURTHER_OF.values()]
    if missing:
        out.append("in this section: " + ", ".join(missing))
    further = [*mm.FURTHER_OF.values(), *mm.FURTHER_CONTROLS, *mm.LEARNED_REG]
    missing = [v for v in further if not final.get(v)]
    if missing:
        out.append("the further image rows above (" + ", ".join(missing) + ")")
    return out
