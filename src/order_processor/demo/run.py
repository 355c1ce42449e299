"""Running the demo: environment, processes, load, feed, events, summary, audit."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
from collections import Counter
from dataclasses import dataclass

from order_processor.analytics.rebuild import conversion_events, rebuild
from order_processor.analytics.store import AnalyticsStore
from order_processor.analytics.summary import summary
from order_processor.analytics.valuation import Rates
from order_processor.aws import provision_deployment
from order_processor.bootstrap import AwsClients, get_order_dao, get_rate_store, open_clients
from order_processor.config import Settings
from order_processor.dashboard.app import DEFAULT_PORT, running_dashboard
from order_processor.demo.currencies import QUOTED
from order_processor.demo.load import Demo, DemoPlan
from order_processor.demo.per_currency import currency_lines, holdings, quoted_lines
from order_processor.demo.tally import Kind, percentile
from order_processor.domain.commands import CommandType
from order_processor.messaging.follower import StatusFollower, follow
from order_processor.ops.ledger_audit import LedgerAuditor
from order_processor.store.dynamo import all_items

EXIT_INTERRUPTED = 130


def worker_environment(settings: Settings) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ORDER_PROCESSOR_")}
    return environment | settings.to_env()


def with_demo_secret(settings: Settings) -> Settings:
    """The embedded default: a fresh secret for this run unless one is configured."""
    if settings.jwt_secret is not None:
        return settings
    return Settings.model_validate({**settings.model_dump(), "jwt_secret": secrets.token_hex(32)})


async def run_demo(
    settings: Settings,
    plan: DemoPlan,
    *,
    dashboard_port: int = DEFAULT_PORT,
    keep_dashboard: bool = False,
) -> int:
    """`keep_dashboard`: after the demo (not after Ctrl-C during it), the dashboard stays
    up until Ctrl-C or SIGTERM, showing the final state."""
    settings = with_demo_secret(settings)
    provision_deployment(settings)
    async with (
        open_clients(settings) as clients,
        running_dashboard(
            settings, "127.0.0.1", dashboard_port, any_port_if_taken=True
        ) as dashboard,
    ):
        after = "; it stays up after the demo, until Ctrl-C" if keep_dashboard else ""
        print(f"dashboard: {dashboard} (live while the demo runs{after})", flush=True)
        demo = Demo(settings, plan, clients)
        interrupted = asyncio.Event()
        code = await _run(demo, clients, interrupted)
        if keep_dashboard and not interrupted.is_set():
            print(f"dashboard: {dashboard} stays up; Ctrl-C stops it", flush=True)
            await _until_stopped()
        return code


async def _run(demo: Demo, clients: AwsClients, interrupted: asyncio.Event) -> int:
    """The demo; a signal at any moment of it (the load, the report, the workers'
    shutdown) sets `interrupted`, so that it is not taken as the end of a kept dashboard."""

    def stop() -> None:
        interrupted.set()
        demo.stopping.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)
    started = time.monotonic()
    try:
        return await _drive(demo, clients, started)
    finally:
        demo.stopping.set()
        await asyncio.to_thread(demo.programs.stop)
        print("workers stopped", flush=True)


async def _until_stopped() -> None:
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    await stopped.wait()


@dataclass(frozen=True)
class Day:
    """One trading day of the mixed load: how long it took from the start, whether every
    order ended, and whether a signal cut it short."""

    elapsed: float
    final: bool
    interrupted: bool
    heard: bool = False  # every stream listener heard every final event of its orders


async def trading_day(demo: Demo, clients: AwsClients, started: float) -> Day:
    """The programs started and ready, the seed settled, the load sent at its pace while
    the feed moves prices, the book closed, every order final. The demo and the
    benchmark's mixed scenario both run this; the caller stops the programs."""
    status_url = await clients.queue_url(demo.settings.resources().order_status_queue.name)
    follower = asyncio.create_task(
        follow(
            clients.sqs,
            status_url,
            StatusFollower(),
            demo.tally.on_event,
            until=demo.stopping.is_set,
        )
    )
    background: list[asyncio.Task[None]] = []
    try:
        demo.programs.start(worker_environment(demo.settings))
        await demo.programs.wait_until_ready()
        # The seed (first deposits, a little of every asset) is setup: done before the
        # load and its clock, so that the latencies are the load's, not the start-up's.
        await demo.seed()
        if not await demo.wait_until_final(60):
            print(f"the seed did not settle: {demo.tally.open_orders} order(s) open", flush=True)
        background = [asyncio.create_task(demo.run_feed()), asyncio.create_task(demo.progress())]
        print(f"sending {demo.plan.orders} commands over {demo.plan.seconds:.0f} s ...", flush=True)
        await demo.run_load()
        if demo.stopping.is_set():
            return Day(time.monotonic() - started, final=False, interrupted=True)
        await demo.wait_until_final(5)
        await demo.close_book()
        final = await demo.wait_until_final(120)
        elapsed = time.monotonic() - started
        heard = await demo.traders.wait_heard(demo.tally.rejected_orders)
        return Day(elapsed, final=final, interrupted=demo.stopping.is_set(), heard=heard)
    finally:
        demo.stopping.set()
        await asyncio.gather(*background, follower, return_exceptions=True)
        await demo.traders.close()


async def _drive(demo: Demo, clients: AwsClients, started: float) -> int:
    day = await trading_day(demo, clients, started)
    if day.interrupted:
        print(
            f"interrupted: sent {sum(demo.tally.commands.values())} commands "
            f"({demo.tally.commands['PlaceOrder']} orders); unfinished ones stay on the queue",
            flush=True,
        )
        return EXIT_INTERRUPTED
    if not day.final and demo.tally.open_orders:
        print(f"{demo.tally.open_orders} order(s) did not reach a final state in time")
    code = await _report(demo, clients, day.elapsed, day.final)
    for line in demo.traders.summary(len(demo.tally.sent_at), demo.tally.rejected_orders):
        print(line)
    missed = sum(demo.traders.missed(demo.tally.rejected_orders).values())
    print(
        "stream listeners: every final event heard"
        if day.heard
        else f"stream listeners: {missed} final event(s) never heard"
    )
    return code if day.heard else 1


async def _report(demo: Demo, clients: AwsClients, elapsed: float, final: bool) -> int:
    tally = demo.tally
    print()
    print(await order_table(clients))
    print()
    latencies = tally.latencies_ms(Kind.MARKET)
    print(f"commands sent: {counted(tally.commands)} ({tally.commands.total()} in all)")
    print(f"rejected: {counted(tally.rejected) or 'none'}")
    print(
        f"throughput: {len(tally.final_at) / elapsed:.1f} orders/s "
        f"({len(tally.final_at)} final in {elapsed:.1f} s)"
    )
    print(
        "market order latency, command sent to final event: "
        f"p50 {percentile(latencies, 0.50):.0f} ms, p95 {percentile(latencies, 0.95):.0f} ms, "
        f"p99 {percentile(latencies, 0.99):.0f} ms"
    )
    for kind, figures in tally.report().items():
        print(
            f"  {kind}: {figures['answered']:.0f} answered, p50 {figures['p50']:.0f} ms, "
            f"p95 {figures['p95']:.0f} ms, p99 {figures['p99']:.0f} ms"
        )
    for line in await currency_summary(demo, clients):
        print(line)
    print(f"dead letters: {await dead_letter_count(demo, clients)}")
    auditor = LedgerAuditor(clients.dynamodb, clients.resources.users_table, get_order_dao(clients))
    report = await auditor.run()
    for mismatch in report.mismatches[:20]:
        print(f"  {mismatch}")
    print(report.summary())
    analytics_agree = await print_analytics(clients, demo.settings, len(tally.final_at))
    return 0 if report.passed and final and analytics_agree else 1


def counted(counts: Counter[str]) -> str:
    """'591 PlaceOrder, 113 CancelOrder': most first."""
    return ", ".join(f"{n} {name}" for name, n in counts.most_common())


async def print_analytics(
    clients: AwsClients, settings: Settings, finals: int, limit: float = 30
) -> bool:
    """The analytics worker's views once it has caught up with the final events seen
    (users' volume and P&L in the base currency at the stored rates), and whether they
    equal the rebuild from the orders table and the conversion records."""
    store = AnalyticsStore(clients.dynamodb, clients.resources.analytics_table)
    deadline = time.monotonic() + limit
    views = await store.report()
    while sum(views.statuses.values()) < finals and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        views = await store.report()
    rates = await Rates.read(get_rate_store(clients, settings), settings.fx_max_age)
    shown = summary(views, rates)
    orders, market = shown["orders"], shown["latency_ms"]["market"]
    print(
        f"analytics: {orders['final']} final orders, fill ratio {orders['fill_ratio']}, "
        f"market order latency (issued to final) p50 <= {market['p50']} ms, "
        f"p99 <= {market['p99']} ms"
    )
    base = shown["currencies"]["base"]
    for user in shown["users"][:3]:
        unconverted = f" (not converted: {', '.join(user['unconverted'])})"
        print(
            f"  {user['username']}: traded {user['volume_in_base']} {base}, "
            f"realised P&L {user['realised_pnl_in_base']} {base}"
            + (unconverted if user["unconverted"] else "")
        )
    conversions = conversion_events(clients.dynamodb, clients.resources.users_table)
    rebuilt, _ = await rebuild(get_order_dao(clients), conversions)
    differences = views.differences(rebuilt)
    for line in differences[:20]:
        print(f"  {line}")
    print(
        "analytics: the views equal their rebuild from the orders table"
        if not differences
        else f"analytics: {len(differences)} difference(s) from the rebuild"
    )
    return not differences


async def currency_summary(demo: Demo, clients: AwsClients) -> list[str]:
    """The rates the matcher stored from the feed's updates, and per currency what came
    in, went out, was converted and is held (demo.per_currency)."""
    stored = await get_rate_store(clients, demo.settings).rates()
    held = await holdings(clients.dynamodb, clients.resources.users_table)
    rates = {currency: rate.rate for currency, rate in stored.items()}
    lines = currency_lines(demo.tally.money, held, rates, demo.fx.updates_sent)
    sent = demo.tally.commands[CommandType.CONVERT.value]
    refused = demo.tally.refused[Kind.CONVERT]
    lines.append(f"conversions: {sent} sent, {refused} refused (reasons under 'rejected')")
    return lines + await quoted_lines(clients.dynamodb, clients.resources.orders_table, QUOTED)


async def order_table(clients: AwsClients) -> str:
    counts: Counter[tuple[str, str]] = Counter()
    arguments = {
        "TableName": clients.resources.orders_table,
        "ProjectionExpression": "order_type, #status",
        "ExpressionAttributeNames": {"#status": "status"},
    }
    async for item in all_items(clients.dynamodb, "scan", arguments):
        counts[(str(item["order_type"]), str(item["status"]))] += 1
    statuses = sorted({s for _, s in counts})
    lines = [f"{'orders':<19}" + "".join(f"{s:>11}" for s in statuses) + f"{'total':>8}"]
    for kind in sorted({k for k, _ in counts}):
        row = [counts[(kind, s)] for s in statuses]
        lines.append(f"{kind:<19}" + "".join(f"{n:>11}" for n in row) + f"{sum(row):>8}")
    return "\n".join(lines)


async def dead_letter_count(demo: Demo, clients: AwsClients) -> int:
    commands = demo.settings.resources().commands_queue
    assert commands.dead_letter is not None
    url = await clients.queue_url(commands.dead_letter.name)
    attributes = await clients.sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )
    return sum(int(v) for k, v in attributes["Attributes"].items() if k.startswith("Approximate"))
