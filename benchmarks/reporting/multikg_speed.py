"""Multi-KG4Rec's speed against KGAT's (``benchmarks/multikg_speed.py``): the epoch-time ratios
measured in one process, and one CF step's profile by operator before and after the speed work;
shown after the knowledge-graph section."""

from __future__ import annotations

from .tables import command, load, load_cell

TOP = 15


TARGET = 3.0  # the target: the exact epoch at most this many KGAT epochs
NO_FUSION = '{"fusion": "none"}'


def _floor_lines(ratios: list[dict]) -> list[str]:
    """What the rows without any fusion say about the target: the exact model does their work
    (two propagations, one per modality, and the KG loss) and the fusion on top of it."""
    out = []
    for r in ratios:
        name = f"MultiKG4Rec {NO_FUSION}"
        if name not in r["ratio_cpu"]:
            continue
        floor, exact = r["ratio_cpu"][name], r["ratio_cpu"].get("MultiKG4Rec")
        head = (f"- Floor (`{r['tag']}`): Multi-KG4Rec with its fusion switched off (`fusion: "
                f"none`: the two propagations, one per modality graph, and the KG loss, no fusion "
                f"work at all) takes {floor:.2f}x KGAT's CPU time per epoch in the same run")
        if floor >= TARGET:
            out.append(head + f"; the exact model does that work and the fusion on top, so no "
                       f"exact epoch can reach the target of {TARGET:g}x here"
                       + (f" (the exact model: {exact:.2f}x)." if exact else "."))
        else:
            out.append(head + f", which leaves {TARGET - floor:.2f}x of KGAT's epoch for the "
                       f"fusion under the target of {TARGET:g}x"
                       + (f" (the exact model's fusion takes {exact - floor:.2f}x)." if exact
                          else "."))
    return out


def section() -> list[str]:
    runs = load("multikg_speed")
    ratios = [r for r in runs if r["kind"] == "ratio"]
    profiles = {r["tag"]: r for r in runs if r["kind"] == "profile"}
    if not runs:
        return []
    L = ["", "### Multi-KG4Rec's training speed against KGAT (ML-100K)", "",
         "Epoch time of Multi-KG4Rec (packaged defaults: two modality graphs, three propagation "
         "layers 64-32-16, exact fusion over every item in every CF step) over KGAT's, measured in "
         "one process, the models alternating; KGAT at its own default depth (one layer) and at "
         "Multi-KG4Rec's (`KGAT-depth`). Only the ratios of one run mean anything; on a shared "
         "machine the process CPU time (all threads) is far steadier than the wall time; both "
         "are shown, with the 1-minute load average before and after each run where it was "
         "recorded (2 cores: above 2, other work shared them). Where `max_steps` is set, "
         "an epoch is `on_epoch_start` plus that many CF and KG steps, scaled to the epoch's step "
         "counts. The approximation `fusion_items_per_batch: 256` (off by default) is timed "
         "beside the exact model; its accuracy cost over 3 seeds is in the knowledge-graph "
         "section above (\"Approximate fusion\").", "",
         "| run | code | threads | max_steps | model | CPU / KGAT | CPU / KGAT-depth | wall / KGAT "
         "| wall / KGAT-depth | load before / after |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in ratios:
        code = r.get("code") or r.get("git_sha", "?")[:12]
        for name in r["ratio_cpu"]:
            L.append(f"| {r['tag']} | {code} | {r['threads']} | {r.get('max_steps', 0)} | "
                     f"{name} | {r['ratio_cpu'][name]:.2f} | {r['ratio_same_depth_cpu'][name]:.2f} "
                     f"| {r['ratio_wall'][name]:.2f} | {r['ratio_same_depth_wall'][name]:.2f} | "
                     f"{load_cell(r)} |")
    L += [""] + [f"- `{r['tag']}`: `{command(r)}`" + (f" ({r['note']})" if r.get("note") else "")
                 for r in ratios]
    L += _floor_lines(ratios)
    if profiles:
        tags = [t for t in ("before", "after") if t in profiles] + sorted(
            t for t in profiles if t not in ("before", "after"))
        L += ["", f"One CF step (forward, backward, Adam step) under `torch.profiler`, one thread: "
              f"the {TOP} operators with the most self CPU time, as shares of the step's self time "
              "(the milliseconds are inflated by the profiler and the load).", ""]
        L += ["| operator | " + " | ".join(f"{t} %" for t in tags) + " |",
              "|---|" + "---|" * len(tags)]
        share = {t: {row["op"]: row["self_share"] for row in profiles[t]["table"]} for t in tags}
        ops = list(dict.fromkeys(row["op"] for t in tags for row in profiles[t]["table"][:TOP]))
        for op in ops:
            cells = [f"{100 * share[t][op]:.1f}" if op in share[t] else "-" for t in tags]
            L.append(f"| `{op}` | " + " | ".join(cells) + " |")
        L += [""] + [f"- profile `{t}`: `{command(profiles[t])}`; profiled step "
                     f"{profiles[t]['step_wall_s_profiled']:.2f} s (wall, under load)" for t in tags]
    return L + [""]
