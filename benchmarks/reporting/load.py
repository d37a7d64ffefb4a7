"""The load test of ``mmkgrec serve`` (``benchmarks/load.py``): closed loop at 64 clients beside the
same calls in-process, a fixed arrival rate, cold start, feedback across kill -9."""

from __future__ import annotations

from .tables import load


def _ms(x) -> str:
    return "-" if x is None else f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def _load(r: dict) -> str:
    return f"{r['loadavg_before'][0]:.1f}"


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def section() -> list[str]:
    import load as queue  # benchmarks/load.py: its runs, sizes and targets

    results = load("load")
    if not results:
        return []
    by_kind: dict[str, list[dict]] = {}
    for r in results:
        kind = ("train" if r["job"].startswith("train-") else "feedback" if "feedback" in r["job"]
                else r["job"][len(r["run"]) + 1:].split("-")[0])
        by_kind.setdefault(kind, []).append(r)
    full = queue.FULL
    L = ["", "## Serving under load (`mmkgrec serve`)", "",
         "A server process (`mmkgrec serve RUN --workers 1 --threads 1`, loopback) driven by a "
         "client in another process on the same 2 cores: asyncio, one keep-alive HTTP/1.1 "
         "connection per simulated client, every loop bounded in requests and time. Runs: "
         f"{', '.join(queue.RUNS)}, each trained with a small budget "
         f"(`{', '.join(f'{k}={v}' for k, v in queue.TRAIN.items() if k != 'show_progress')}`; "
         "the weights do not change the timings). Wall times depend on what else the shared "
         "machine runs: each row gives the 1-minute load average it started under; the server's "
         "CPU time per request and the in-process figures of the same row compare. "
         "`python benchmarks/load.py`.", ""]
    missing = [name for name in queue.RUNS
               if not any(r["run"] == name for r in by_kind.get("closed", []))]
    if missing:
        L += [f"Not run here: {', '.join(missing)} (training or machine time); the queue holds "
              "their jobs.", ""]

    closed = by_kind.get("closed", [])
    if closed:
        L += ["### Closed loop: every request of a list, N clients at a time", "",
              "recommend k=20, similar k=10, explain with the template backend (a user and one of "
              "their top-10 items). In-process: the same calls on the loaded `Run`, one thread, "
              "one after another. At 64 clients the latency is mostly queueing (about clients / "
              "throughput); the latency target is read at a fixed rate below.", "",
              "| run | endpoint | requests | clients | errors | req/s | p50 ms | p95 ms | p99 ms "
              "| server CPU ms/request | in-process p50 ms | in-process p99 ms | in-process CPU "
              "ms/request | load avg |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in closed:
            for kind in ("recommend", "similar", "explain"):
                h, ip = r[kind]["http"], r[kind]["in_process"]
                lat = h["latency"]
                L.append(f"| {r['run']} | {kind} | {h['requests']} | {r['clients']} | "
                         f"{h['errors']} | {h['throughput_rps']:.0f} | {_ms(lat.get('p50_ms'))} | "
                         f"{_ms(lat.get('p95_ms'))} | {_ms(lat.get('p99_ms'))} | "
                         f"{h['server_cpu_ms_per_request']:.2f} | {_ms(ip['p50_ms'])} | "
                         f"{_ms(ip['p99_ms'])} | {ip['cpu_ms_per_request']:.2f} | {_load(r)} |")
        L.append("")
        capped = [r for r in closed if r["requests_per_endpoint"] < full["requests"]]
        if capped:
            L += [f"Capped: {len(capped)} of these {len(closed)} runs sent "
                  f"{min(r['requests_per_endpoint'] for r in capped):,} requests per endpoint, not "
                  f"the full {full['requests']:,}.", ""]
        errors = sum(r[k]["http"]["errors"] for r in closed for k in ("recommend", "similar",
                                                                       "explain"))
        total = sum(r[k]["http"]["requests"] for r in closed for k in ("recommend", "similar",
                                                                        "explain"))
        over = [r[k]["http"]["server_cpu_ms_per_request"] - r[k]["in_process"]["cpu_ms_per_request"]
                for r in closed for k in ("recommend", "similar")]
        L += [f"Errors: {errors} of {total:,} requests (target: 0, {_met(errors == 0)}). HTTP, "
              "JSON and the framework cost the server "
              f"{min(over):.2f} to {max(over):.2f} ms of CPU per recommend or similar request "
              "beyond the in-process call.", ""]
        shares = [f"{r['run']} {100 * r['explain']['in_process']['share_with_text']:.0f}%"
                  for r in closed if "share_with_text" in r["explain"]["in_process"]]
        if shares:
            L += ["Explanations with at least one verified sentence (the others hold only the "
                  "notes saying why nothing could be said, e.g. a run without a KG or item table): "
                  + ", ".join(shares) + ".", ""]
        ab = [r for r in closed if r["dataset"] == "amazon-book"]
        if ab:
            p99 = max(r["recommend"]["in_process"]["p99_ms"] for r in ab)
            L += [f"In-process recommend p99 on Amazon-Book: {p99:.2f} ms (target: under 5 ms, "
                  f"{_met(p99 < 5)}; wall time under the load average shown).", ""]

    rate = by_kind.get("rate", [])
    if rate:
        L += ["### Fixed arrival rate: recommend", "",
              "Each request sent at its scheduled time on a free connection (at most 64), its "
              "latency counted from that time, so a stalled server shows in every request that "
              "waited.", "",
              "| run | items | rate /s | seconds | requests | errors | p50 ms | p95 ms | p99 ms | "
              "p99 < 50 ms | server CPU ms/request | load avg |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in rate:
            x, lat = r["result"], r["result"]["latency"]
            L.append(f"| {r['run']} | {r['n_items']:,} | {r['rate_rps']:g} | {r['seconds']:g} | "
                     f"{x['requests']} | {x['errors']} | {_ms(lat.get('p50_ms'))} | "
                     f"{_ms(lat.get('p95_ms'))} | {_ms(lat.get('p99_ms'))} | "
                     f"{_met(lat.get('p99_ms', 1e9) < r['target_p99_ms'])} | "
                     f"{_ms(x.get('server_cpu_ms_per_request'))} | {_load(r)} |")
        L.append("")
        capped = [r for r in rate if r["result"]["requests"] < r["full_requests"]]
        if capped:
            L += [f"Capped: {len(capped)} of these {len(rate)} rows ran "
                  f"{min(r['seconds'] for r in capped):g} s, not the full "
                  f"{full['rate_seconds']:g} s ({int(full['rate'] * full['rate_seconds']):,} "
                  "requests).", ""]

    cold = by_kind.get("cold", [])
    if cold:
        L += ["### Cold start: process start to the first 200 of the recommend endpoint", "",
              "The server process's CPU seconds at that first 200 (interpreter, imports, loading "
              "and warming the run) stand beside the wall time: what the start costs when nothing "
              "else competes for the cores.", "",
              "| run | items | repeats | median s | min s | max s | under 5 s | median CPU s | "
              "load avg |", "|---|---|---|---|---|---|---|---|---|"]
        for r in cold:
            cpu = r.get("median_cpu_s")
            L.append(f"| {r['run']} | {r['n_items']:,} | {len(r['repeats'])} | "
                     f"{r['median_s']:.2f} | {r['min_s']:.2f} | {r['max_s']:.2f} | "
                     f"{_met(r['median_s'] < r['target_s'])} | "
                     f"{'-' if cpu is None else f'{cpu:.2f}'} | {_load(r)} |")
        L.append("")

    for r in by_kind.get("feedback", []):
        ok = r["acknowledged_missing"] == 0 and r["killed_by_sigkill"]
        L += ["### Feedback across kill -9", "",
              f"{r['clients']} clients posted feedback events (at most {r['events_planned']:,}); "
              f"the server was killed with SIGKILL after {r['kill_after_acks']} acknowledgements"
              + ("" if r["killed_by_sigkill"] else " (**the kill did not happen**)") + ": "
              f"{r['acknowledged']} events acknowledged, {r['on_disk']} on disk, "
              f"{r['acknowledged_missing']} acknowledged but missing (target: none, {_met(ok)}); "
              f"{r['unacknowledged_on_disk']} written but not acknowledged before the kill. "
              f"{r['acked_per_s']:.0f} fsync-ed events/s before the kill (load avg {_load(r)}).",
              ""]
    return L
