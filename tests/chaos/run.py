"""One chaos run: provision a deployment of its own, seed it, start the processes, send
the load while killing processes and echoing events to the analytics worker, drain (the
analytics queue too), stop, recount, report; then delete everything."""

from __future__ import annotations

import asyncio
import math
import random
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from order_processor.analytics.items import FINAL_SK
from order_processor.analytics.rebuild import conversion_events, rebuild
from order_processor.analytics.store import AnalyticsStore
from order_processor.bootstrap import (
    get_asset_transaction_dao,
    get_balance_dao,
    get_order_dao,
    open_clients,
)
from order_processor.config import Settings
from order_processor.domain.assets import AssetTransactionCreate, AssetTransactionType
from order_processor.domain.balances import BalanceTransactionCreate, TransactionType
from order_processor.domain.base import utc_now
from order_processor.faultproxy import AWS_BAD_DAY, FaultPlan, FaultProxyHandle, fault_proxy
from tests.chaos import cash, checks, quoted
from tests.chaos.books import (
    ZERO,
    Books,
    effect_findings,
    implied_findings,
    ledger_findings,
    load_books,
    scan,
)
from tests.chaos.checks import OVERDUE_MARGIN, SEED_PREFIX
from tests.chaos.echoes import Echoes
from tests.chaos.findings import Finding, Report, finding
from tests.chaos.load import Journal, LoadSender, Plan, Trader, make_plan
from tests.chaos.observe import StatusEvents, dead_letters, depth
from tests.chaos.supervisor import RECOVERY_AGE_SECONDS, Supervisor
from tests.e2e.conftest import deployment_settings
from tests.e2e.harness import Harness
from tests.support import deployed

# With every queue empty for this long, nothing but the recovery job could still move an
# order: give it two of its ages, then stop waiting.
IDLE_GIVE_UP_SECONDS = 2 * RECOVERY_AGE_SECONDS + 5
POLL_SECONDS = 1.0
# The analytics queue is drained once it stayed empty (nothing visible, in flight or
# delayed) this long: SNS delivers the last events asynchronously.
ANALYTICS_QUIET_SECONDS = 1.5
ANALYTICS_DRAIN_SECONDS = 60.0


@dataclass(frozen=True)
class ChaosConfig:
    """The size of a run; the defaults are `make chaos`'s longer run."""

    seed: int = 1
    users: int = 20
    orders: int = 400  # orders, deposits, withdrawals, conversions; cancels, repeats on top
    kills: int = 20
    workers: int = 2
    seconds: float = 60.0  # the load, and the kills within it
    armed_ratio: float = 0.5  # restarts armed with crash-after=<step>
    drain_seconds: float = 120.0
    log_dir: Path | None = None
    # AWS's failures (a fault plan, order_processor.faultproxy): the programs talk to the
    # emulator through the fault proxy, with an assumed role (so that a session AWS ends
    # is renewed); the load and the recount talk to it directly.
    faults: str = ""
    outage_seconds: float = 0.0  # an outage of the endpoint in the middle of the load


# The plan of `make chaos CHAOS_ARGS=--aws-faults`: AWS's bad day, and one session ended
# early (the programs assume a role, so they can renew it).
AWS_FAULTS = AWS_BAD_DAY + ",expire-credentials-after=20"
ROLE = "arn:aws:iam::000000000000:role/op-chaos"


def fx_max_age_seconds(config: ChaosConfig) -> int:
    """The oldest rate a decision of the run may use: the default, unless the drain (no
    rate moves after the load) and an outage could last longer, with a minute to spare.
    While the load runs, every rate moves every RATE_TICK_SECONDS."""
    default = int(Settings.model_fields["fx_max_age_seconds"].default)
    return max(default, math.ceil(config.drain_seconds + config.outage_seconds) + 60)


async def run_chaos(
    endpoint: str, config: ChaosConfig, say: Callable[[str], None] = print
) -> Report:
    settings = deployment_settings(endpoint, fx_max_age_seconds=fx_max_age_seconds(config))
    with deployed(settings):
        async with open_clients(settings) as clients:
            harness = await Harness.start(settings, clients)
            if not (config.faults or config.outage_seconds):
                return await ChaosRun(harness, config, say).run()
            plan = FaultPlan.parse(config.faults)
            with fault_proxy(endpoint, plan, seed=config.seed) as proxy:
                say(f"AWS faults through {proxy.endpoint}: {plan.text() or 'none'}")
                harness.program_env = {
                    "AWS_ENDPOINT_URL": proxy.endpoint,
                    "ORDER_PROCESSOR_ROLE_ARN": ROLE,
                }
                return await ChaosRun(harness, config, say, proxy).run()


async def seed_books(harness: Harness, plan: Plan) -> None:
    """Listings (in their quote currencies), the currencies' starting rates, and traders
    with their starting cash
    (USD, and some EUR, GBP, JPY) and holdings, each through a recorded transaction whose
    id starts with `seed-` so the recount can tell them apart."""
    for listing in plan.listings:
        price = format(listing.price, "f")
        await harness.add_asset(
            listing.asset_id, price, precision=listing.precision, quote=listing.quote
        )
    await harness.set_rates(*((c, format(r, "f")) for c, r in plan.rates))
    for trader in plan.traders:
        await _seed_trader(harness, trader)


async def _seed_trader(harness: Harness, trader: Trader) -> None:
    await harness.create_user(trader.username)
    for currency, amount in (("USD", trader.usd), *trader.cash):
        await get_balance_dao(harness.clients).update_balance(
            BalanceTransactionCreate(
                transaction_id=f"{SEED_PREFIX}{currency.lower()}",
                username=trader.username,
                transaction_type=TransactionType.DEPOSIT,
                currency=currency,
                amount=amount,
            )
        )
    for asset_id, quantity in trader.holdings:
        await get_asset_transaction_dao(harness.clients).create_asset_transaction(
            AssetTransactionCreate(
                transaction_id=f"{SEED_PREFIX}{asset_id}",
                username=trader.username,
                asset_id=asset_id,
                transaction_type=AssetTransactionType.BUY,
                quantity=quantity,
                price="1",
                total_amount="0",
            )
        )


@dataclass
class ChaosRun:
    harness: Harness
    config: ChaosConfig
    say: Callable[[str], None]
    proxy: FaultProxyHandle | None = None
    journal: Journal = field(default_factory=Journal)
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        c = self.config
        self.plan = make_plan(c.seed, c.users, c.orders, c.seconds)
        self.log_dir = c.log_dir or Path(tempfile.mkdtemp(prefix=f"chaos-{c.seed}-"))
        self.events = StatusEvents(self.harness.clients.sqs, self.harness.status_url)
        self.stopped = utc_now()  # set again when the processes are told to stop
        self.drain_took = 0.0
        self.analytics_drain_took: float | None = None  # None: it did not drain
        self.counted: dict[str, str] = {}  # order id -> status, as the final markers say
        self.caught_up: str | None = None  # what a burst analytics worker found at the end

    async def run(self) -> Report:
        await seed_books(self.harness, self.plan)
        clients = self.harness.clients
        self.analytics_url = await clients.queue_url(clients.resources.analytics_queue.name)
        self.echoes = Echoes(
            clients.sqs,
            self.analytics_url,
            self.events,
            get_order_dao(clients),
            lambda: [intent.order_id for _, intent in self.journal.places()],
            random.Random(f"echoes-{self.config.seed}"),
        )
        stop_following = asyncio.Event()
        follower = asyncio.create_task(self.events.follow(stop_following))
        supervisor = Supervisor(
            self.harness,
            random.Random(f"kills-{self.config.seed}"),
            self.log_dir,
            workers=self.config.workers,
            armed_ratio=self.config.armed_ratio,
            on_death=lambda death: self.say(death.line()),
        )
        try:
            drained, codes = await self._load_and_drain(supervisor)
        finally:
            stop_following.set()
            await follower
        quiet = await self.events.drain(quiet=3, seconds=30)
        self.events.save(self.log_dir / "events.jsonl")
        return await self._report(supervisor, drained, quiet, codes)

    async def _load_and_drain(self, supervisor: Supervisor) -> tuple[bool, dict[str, int]]:
        sender = LoadSender(self.harness, self.journal)
        supervisor.started = sender.started
        supervisor.start()
        stop_watching, stop_echoing = asyncio.Event(), asyncio.Event()
        watcher = asyncio.create_task(supervisor.watch(stop_watching))
        echoing = asyncio.create_task(self.echoes.run(stop_echoing))
        try:
            moments = supervisor.kill_times(self.config.kills, self.config.seconds)
            await asyncio.gather(
                sender.run(self.plan), supervisor.run_kills(moments), self._outage(supervisor)
            )
            stop_echoing.set()
            await echoing
            self.say(f"[{supervisor.elapsed():6.1f}s] load sent; draining")
            await supervisor.disarm()
            drained = await self._drain()
            self.say(
                f"[{supervisor.elapsed():6.1f}s] "
                + ("drained: every command answered" if drained else "drain gave up")
            )
            await self.echoes.finale()
            self.analytics_drain_took = await self._drain_analytics()
            self.say(
                f"[{supervisor.elapsed():6.1f}s] analytics "
                + ("drained" if self.analytics_drain_took is not None else "drain gave up")
            )
        finally:
            echoing.cancel()
            stop_watching.set()
            await watcher
            # The sweeper stops expiring when it is told to stop, not when the last process
            # has exited (which can take seconds more).
            self.stopped = utc_now()
            codes = await supervisor.stop()
        return drained, codes

    async def _outage(self, supervisor: Supervisor) -> None:
        """The endpoint away for `outage_seconds` from the load's middle: the plan of the
        run is put back afterwards."""
        if self.proxy is None or not self.config.outage_seconds:
            return
        await asyncio.sleep(self.config.seconds / 2 - self.config.outage_seconds / 2)
        plan = FaultPlan.parse(self.config.faults)
        self.say(f"[{supervisor.elapsed():6.1f}s] outage: every request cut")
        self.proxy.set_plan(replace(plan, outage=True))
        await asyncio.sleep(self.config.outage_seconds)
        self.proxy.set_plan(plan)
        self.say(f"[{supervisor.elapsed():6.1f}s] outage over")

    async def _drain(self) -> bool:
        """Until every command is answered and the queues are empty; or until the queues
        stayed empty long enough that nothing else can happen; or the deadline."""
        began = time.monotonic()
        deadline = began + self.config.drain_seconds
        idle_since: float | None = None
        while True:
            self.drain_took = time.monotonic() - began
            books = await self._books()
            waiting = checks.waiting_findings(self.journal, books, self.events, utc_now())
            idle = await self._queues_idle()
            if idle and not waiting:
                return True
            now = time.monotonic()
            idle_since = (idle_since or now) if idle else None
            if now > deadline or (idle_since and now - idle_since > IDLE_GIVE_UP_SECONDS):
                return False
            await asyncio.sleep(POLL_SECONDS)

    async def _queues_idle(self) -> bool:
        clients = self.harness.clients
        prices = await clients.queue_url(clients.resources.price_updates_queue.name)
        return (
            await depth(clients.sqs, self.harness.queue_url) + await depth(clients.sqs, prices) == 0
        )

    async def _drain_analytics(self) -> float | None:
        """Until the analytics queue stayed empty (nothing visible, in flight or delayed)
        for ANALYTICS_QUIET_SECONDS: how long it took; None if it never did."""
        began = time.monotonic()
        quiet_since: float | None = None
        while time.monotonic() - began < ANALYTICS_DRAIN_SECONDS:
            now = time.monotonic()
            if await depth(self.harness.clients.sqs, self.analytics_url):
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= ANALYTICS_QUIET_SECONDS:
                return quiet_since - began
            await asyncio.sleep(0.25)
        return None

    async def _catch_up_analytics(self) -> list[Finding]:
        """Events published while the processes stopped (an order the sweeper expired
        after the drain) reach the analytics queue with its worker gone: a burst analytics
        worker applies them, as an operator's would."""
        left = await depth(self.harness.clients.sqs, self.analytics_url)
        if not left:
            return []
        code = await self.harness.run_worker(kind="analytics")
        self.caught_up = f"{left} message(s) after the stop; a burst worker exited {code}"
        if code == 0:
            return []
        return [finding("analytics", "catch_up_failed", "worker", self.caught_up)]

    async def _books(self) -> Books:
        return await load_books(self.harness.clients.dynamodb, self.harness.clients.resources)

    async def _dead_letters(self) -> list[dict[str, object]]:
        commands = self.harness.clients.resources.commands_queue
        assert commands.dead_letter is not None
        url = await self.harness.clients.queue_url(commands.dead_letter.name)
        return await dead_letters(self.harness.clients.sqs, url)

    async def _analytics_findings(self, books: Books) -> list[Finding]:
        """The stored views against their rebuild, the final markers, the analytics DLQ."""
        caught_up = await self._catch_up_analytics()
        clients = self.harness.clients
        resources = clients.resources
        table = resources.analytics_table
        stored = await AnalyticsStore(clients.dynamodb, table).report()
        conversions = conversion_events(clients.dynamodb, resources.users_table)
        rebuilt, _ = await rebuild(get_order_dao(clients), conversions)
        self.counted = {
            str(item["PK"]).removeprefix("ORDER#"): str(item["status"])
            for item in await scan(clients.dynamodb, table)
            if item["SK"] == FINAL_SK
        }
        assert resources.analytics_queue.dead_letter is not None
        dlq = await clients.queue_url(resources.analytics_queue.dead_letter.name)
        letters = await dead_letters(clients.sqs, dlq)
        left = await depth(clients.sqs, self.analytics_url)
        drained = self.analytics_drain_took is not None
        return caught_up + checks.analytics_findings(
            stored, rebuilt, self.counted, books, letters, left, drained=drained
        )

    async def _report(
        self, supervisor: Supervisor, drained: bool, quiet: bool, codes: dict[str, int]
    ) -> Report:
        books = await self._books()
        letters = await self._dead_letters()
        report = Report(self.config.seed)
        report.findings = self._findings(books, letters) + _process_findings(supervisor, codes)
        report.findings += checks.event_findings(books, self.events)
        report.findings += await self._analytics_findings(books)
        report.notes = checks.both_ways_notes(self.journal, books, self.events)
        report.notes += checks.placed_by_repeat_notes(self.journal, books, self.events)
        report.notes += checks.marketable_notes(books)
        if not quiet:
            report.notes.append("the order-status queue did not go quiet within 30 s")
        if self.caught_up:
            report.notes.append(f"analytics: {self.caught_up}")
        report.deaths = [d.line() for d in supervisor.deaths]
        report.facts = self._facts(books, drained, len(letters), supervisor)
        return report

    def _findings(self, books: Books, letters: list[dict[str, object]]) -> list[Finding]:
        journal, events, plan = self.journal, self.events, self.plan
        order_ids = {intent.order_id for _, intent in journal.places()}
        funds = checks.funds_by_account(journal, events)
        converted = checks.converted_by_account(journal, events)
        moved = {a: funds.get(a, ZERO) + converted.get(a, ZERO) for a in {*funds, *converted}}
        # The exchange's liquidity moves opposite to the conversions announced and to the
        # conversions of the buys paid in another currency.
        paid_in = quoted.paid_in_by_account(books, order_ids)
        exchanged = {
            a: converted.get(a, ZERO) + paid_in.get(a, ZERO) for a in {*converted, *paid_in}
        }
        spread = self.harness.settings.fx_spread_percent
        return [
            *checks.waiting_findings(journal, books, events, self.stopped - OVERDUE_MARGIN),
            *checks.command_findings(journal, books, events),
            *effect_findings(books, plan),
            *ledger_findings(books),
            *implied_findings(books, plan, moved, order_ids),
            *cash.liquidity_findings(books, exchanged),
            *cash.conservation_findings(books, plan, funds, order_ids),
            *cash.conversion_findings(books, plan, spread),
            *checks.duplicate_findings(journal, books, events),
            *checks.dead_letter_findings(letters, journal),
            *checks.conditional_findings(journal, books, self.plan),
            *quoted.quote_findings(journal, books, self.plan),
        ]

    def _facts(
        self, books: Books, drained: bool, dead: int, supervisor: Supervisor
    ) -> dict[str, str]:
        sent = Counter(
            s.command.type.value + (f"({s.repeat})" if s.repeat else "") for s in self.journal.sent
        )
        statuses = Counter(f"{o.order_type}/{o.status}" for o in books.orders.values())
        conditional = Counter(o.status for o in books.orders.values() if o.is_conditional)
        topped_up = sum(
            1
            for o in books.orders.values()
            if o.status == "COMPLETED" and o.hold_price and o.price and o.price > o.hold_price
        )
        kills = sum(d.how == "SIGKILL" for d in supervisor.deaths)
        conversions = len(self.events.conversions_applied())
        return {
            "plan": f"{self.config}",
            "sent": f"{sum(sent.values())} {dict(sorted(sent.items()))}",
            "orders": f"{len(books.orders)} {dict(sorted(statuses.items()))}",
            "conditional": f"{sum(conditional.values())} {dict(sorted(conditional.items()))}, "
            f"{topped_up} bought above their hold",
            "conversions": f"{conversions} applied of {len(self.journal.conversions())}",
            "quoted": quoted.summary(books, {i.order_id for _, i in self.journal.places()}),
            "currencies": cash.currency_lines(books),
            "deaths": f"{kills} SIGKILLs, {len(supervisor.deaths) - kills} crashes",
            "drain": f"{'every command answered' if drained else 'gave up waiting'} "
            f"after {self.drain_took:.1f} s",
            "events heard": str(len(self.events.bodies)),
            "analytics": f"{len(self.counted)} final orders counted; "
            + (
                f"its queue drained {self.analytics_drain_took:.1f} s after the finale"
                if self.analytics_drain_took is not None
                else "its queue did not drain"
            ),
            "events re-sent": self.echoes.summary(),
            "dead letters": str(dead),
            "AWS faults": self._fault_summary(),
            "logs": str(self.log_dir),
            "duration": f"{time.monotonic() - self.started:.1f} s",
        }

    def _fault_summary(self) -> str:
        if self.proxy is None:
            return "none (the programs talk to the emulator directly)"
        stats = self.proxy.stats()
        counts = {kind: sum(by_op.values()) for kind, by_op in sorted(stats.faults.items())}
        return f"{sum(counts.values())} injected in {stats.requests} requests {counts}"


def _process_findings(supervisor: Supervisor, codes: dict[str, int]) -> list[Finding]:
    found = [
        finding("processes", "unexpected_exit", d.program, d.line())
        for d in supervisor.unexpected_exits
    ]
    found += [
        finding("processes", "stop_status", name, f"exited {code} after SIGTERM")
        for name, code in codes.items()
        if code != 0
    ]
    return found
