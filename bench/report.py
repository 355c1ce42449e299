"""The summary table (Markdown) and the chart of a benchmark record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.gateway import gateway_lines
from bench.stops import CALLS_PER_UPDATE_TARGET, EMPTY_BOOK


def summary(record: dict[str, Any]) -> str:
    machine, results = record["machine"], record["results"]
    lines = [
        f"# Benchmark {record['started_at']}",
        "",
        f"Machine: {machine['cores']} cores, {machine['memory_gib']} GiB, {machine['cpu']}; "
        f"Python {machine['python']}; {machine['emulator']}; "
        + ", ".join(f"{k} {v}" for k, v in machine["packages"].items()),
        f"Command: `{machine['command']}` ({record['seconds']} s)",
        "",
    ]
    if "mixed" in results:
        lines += mixed_lines(results["mixed"])
    if "throughput" in results:
        lines += [
            "| users | workers | in flight | orders/s | p50 ms | p95 ms | p99 ms (at 60% load) |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in results["throughput"]:
            latency = row["latency_ms"]
            lines.append(
                f"| {row['distribution']} | {row['workers']} | {row['in_flight']} | {row['orders_per_second']} "
                f"| {latency['p50']} | {latency['p95']} | {latency['p99']} |"
            )
        lines.append("")
    best = max((r["orders_per_second"] for r in results.get("throughput", [])), default=None)
    if "ceiling" in results and best:
        lines.append(
            f"Ceiling (our own requests replayed by plain aioboto3): {results['ceiling']['orders_per_second']} orders/s; achieved / ceiling = {best / results['ceiling']['orders_per_second']:.2f}"
        )
    if "baseline" in results and best:
        lines.append(
            f"Hand-written baseline (sync boto3, one at a time): {results['baseline']['orders_per_second']} orders/s; ours / baseline = {best / results['baseline']['orders_per_second']:.1f}x"
        )
    if "throughput" in results:
        spread = max(
            r["orders_per_second"] for r in results["throughput"] if r["distribution"] == "spread"
        )
        hot = max(
            r["orders_per_second"] for r in results["throughput"] if r["distribution"] == "hot"
        )
        lines.append(
            f"Hot user / spread users: {hot} / {spread} = {hot / spread:.2f} (target: at least 1.0)"
        )
        for row in results["throughput"]:
            if (row["distribution"], row["workers"], row["in_flight"]) != ("hot", 1, 32):
                continue
            calls = sum(row["calls_per_order"].values())
            lines.append(
                f"AWS calls per market order of the hot user (1 worker, 32 in flight as "
                f"deployed, paced): {calls:.2f} (target: at most 1.0); "
                + ", ".join(f"{k} {v}" for k, v in row["calls_per_order"].items())
            )
    if "cpu_and_memory" in results:
        cpu = results["cpu_and_memory"]
        lines.append(
            f"Worker CPU: {cpu['cpu_ms_per_order']} ms/order over {cpu['orders']} orders; RSS KiB start {cpu['rss_kib_at_start']}, "
            f"peak {cpu['rss_kib_peak']}, by progress {cpu['rss_kib_by_progress']}"
        )
    if "growth" in results:
        growth = results["growth"]
        lines.append(
            f"Growth (orders/s): stored orders {growth['stored']}; waiting messages {growth['waiting']}"
        )
    if "latency" in results:
        lines += ["", *_at_latency(results["latency"])]
    if "stop_triggers" in results:
        lines += ["", *_stop_triggers(results["stop_triggers"])]
    if "analytics" in results:
        a = results["analytics"]
        lines += [
            "",
            f"Analytics worker: {a['final_events']} final events and as many earlier states "
            f"drained in {a['seconds']} s ({a['final_events_per_second']} final events/s, "
            f"{a['in_flight']} in flight); {a['dynamodb_calls_per_final_event']} DynamoDB "
            f"calls per final event, {a['sqs_calls_per_event']} SQS calls per event, "
            f"{a['cpu_ms_per_event']} ms CPU per event",
        ]
    if "faults" in results:
        lines += ["", *_under_faults(results["faults"])]
    if "conversions" in results:
        lines += ["", *conversion_lines(results["conversions"])]
    if "gateway" in results:
        lines += ["", *gateway_lines(results["gateway"])]
    if "calls_per_command" in results:
        lines += ["", "AWS calls per command, by operation:", ""]
        for kind, calls in results["calls_per_command"].items():
            total = sum(calls.values())
            lines.append(
                f"- {kind} ({total:.2f}): " + ", ".join(f"{k} {v}" for k, v in calls.items())
            )
    return "\n".join(lines) + "\n"


def _at_latency(latency: dict[str, Any]) -> list[str]:
    lines = [
        f"At {latency['delay_ms']} ms ± {latency['jitter_ms']} ms per request (latency proxy), "
        f"{latency['orders']} market buys; ours and the same-mix ceiling are medians of "
        f"rounds {latency.get('rounds', {})}:",
        "",
        f"- same-mix ceiling (our requests replayed): {latency['same_mix_ceiling']} orders/s "
        f"({latency.get('same_mix_ceiling_client_cpu_ms_per_order')} ms of client CPU per order); "
        f"v1-mix ceiling: {latency['v1_mix_ceiling']}; hand-written baseline: {latency['baseline']}",
    ]
    for run, rate in latency["ours_orders_per_second"].items():
        ratios = latency["ratios"][run]
        lines.append(
            f"- ours, {run} in flight: {rate} orders/s = "
            f"{ratios['ours_vs_baseline']}x baseline, {ratios['ours_vs_same_mix_ceiling']} "
            f"of the same-mix ceiling, {ratios['ours_vs_v1_mix_ceiling']}x the v1-mix ceiling"
        )
    return lines


def _stop_triggers(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "The matcher on one price move (`PriceMatcher.apply`, in process), N waiting orders "
        "of one asset:",
        "",
        "| case | N | move | latency ms | seconds | ExecuteOrders | trails moved | AWS calls "
        "| calls per update | orders/s | matcher CPU s | seconds by phase |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        phases = ", ".join(f"{k} {v}" for k, v in row["phase_seconds"].items())
        lines.append(
            f"| {row['case']} | {row['orders']} | {row['price_move']} "
            f"| {row.get('latency_ms', 0)} | {row['seconds']} | {row['execute_orders_sent']} "
            f"| {row['trails_moved']} | {row['aws_calls']} | {row.get('calls_per_update', '')} "
            f"| {row['orders_per_second']} | {row['matcher_cpu_seconds']} | {phases} |"
        )
    return [*lines, "", _idle_cost(rows)]


def _idle_cost(rows: list[dict[str, Any]]) -> str:
    """The matcher's calls per price update (the price write and the book's queries)
    against issue 23's target for an empty book, and what a full book costs."""
    empty = [r["calls_per_update"] for r in rows if r["case"] == EMPTY_BOOK]
    full = sorted({r["calls_per_update"] for r in rows if r["orders"] and "calls_per_update" in r})
    if not empty:
        return "Calls per price update: not measured (no empty_book row)"
    met = "met" if max(empty) <= CALLS_PER_UPDATE_TARGET else "NOT met"
    return (
        f"Matcher's calls per price update (the price write and the book's queries): empty "
        f"book {max(empty)}, target <= {CALLS_PER_UPDATE_TARGET}: {met}; full book "
        f"(every case above with waiting orders): {', '.join(map(str, full)) or '-'}"
    )


def chart(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for distribution in ("spread", "hot"):
        for workers in (1, 2):
            series = sorted(
                (r for r in rows if r["distribution"] == distribution and r["workers"] == workers),
                key=lambda r: r["in_flight"],
            )
            if not series:
                continue
            label = f"{distribution} users, {workers} worker{'s' if workers > 1 else ''}"
            x = [r["in_flight"] for r in series]
            left.plot(x, [r["orders_per_second"] for r in series], marker="o", label=label)
            right.plot(x, [r["latency_ms"]["p99"] for r in series], marker="o", label=label)
    for axis, title in ((left, "throughput (orders/s)"), (right, "p99 latency at 60% load (ms)")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("in-flight limit per worker")
        axis.set_title(title)
        axis.grid(alpha=0.3)
    left.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def _under_faults(faults: dict[str, Any]) -> list[str]:
    """One worker x 32 in flight, market orders of 1,000 users, through the fault proxy
    at AWS's latency, without then with AWS's failures; latency at one offered rate."""
    runs = [name for name in faults if name != "ratios"]
    lines = [
        "Under AWS's failures, one worker x 32 in flight, market orders of 1,000 users, at "
        "AWS's latency; latency at the same offered rate in every run:",
        "",
        "| run | orders/s | offered/s | p50 ms | p95 ms | p99 ms | API calls/order "
        "| HTTP requests/order | throughput ratio | p99 ratio |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in runs:
        row, ratio = faults[name], faults["ratios"].get(name, {})
        latency = row["latency_ms"]
        lines.append(
            f"| {name.replace('_', ' ')} | {row['orders_per_second']} "
            f"| {latency['offered_rate']} | {latency['p50']} | {latency['p95']} "
            f"| {latency['p99']} | {sum(row['calls_per_order'].values()):.2f} "
            f"| {row['requests_per_order']} | {ratio.get('throughput', 1.0)} "
            f"| {ratio.get('p99', 1.0)} |"
        )
    lines.append("")
    lines += [
        f"- {name}: `{faults[name]['plan']}`, {faults[name]['faults_injected']}" for name in runs
    ]
    return lines


def conversion_lines(runs: dict[str, Any]) -> list[str]:
    """A conversion next to a market order: one worker, each kind paced alike, on the
    emulator and with the worker's requests at AWS's latency."""
    first = next(iter(runs.values()))
    lines = [
        f"A conversion next to a market order (one worker, {first['commands']} of each offered "
        f"at {first['offered_rate']:g}/s; latency from send to the answering event):",
        "",
        "| run | command | AWS calls | HTTP requests | p50 ms | p95 ms | p99 ms | rejected "
        "| calls by operation |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run, result in runs.items():
        for kind in ("market buy", "conversion"):
            row = result[kind]
            latency = row["latency_ms"]
            operations = ", ".join(f"{k} {v}" for k, v in row["calls_by_operation"].items())
            lines.append(
                f"| {run.replace('_', ' ')} | {kind} | {row['calls_per_command']} "
                f"| {row['requests_per_command']} | {latency['p50']} | {latency['p95']} "
                f"| {latency['p99']} | {row['rejected']} | {operations} |"
            )
    return lines


def mixed_lines(mixed: dict[str, Any]) -> list[str]:
    """The figures a trader feels first: the demo's mixed load, each kind's latency."""
    target = mixed["market_target"]
    lines = [
        f"Mixed load (the demo's: {mixed['users']} users, {mixed['commands']} commands over "
        f"{mixed['seconds']:g} s = {mixed['rate']}/s, prices moving, every program running), "
        "latency from send to the answering event:",
        "",
        "| command | answered | p50 ms | p95 ms | p99 ms |",
        "|---|---|---|---|---|",
    ]
    for kind, row in mixed["latency_ms"].items():
        lines.append(
            f"| {kind} | {row['answered']:.0f} | {row['p50']} | {row['p95']} | {row['p99']} |"
        )
    met = "met" if target["met"] else "NOT met"
    lines += [
        "",
        f"Market orders: target p95 <= {target['p95']:g} ms and p99 <= {target['p99']:g} ms: "
        f"{met}; every order final: {mixed['all_final']}",
        "",
    ]
    return lines
