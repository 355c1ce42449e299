"""The analytics worker, a real process on its own queue: each order and conversion counted
once through a SIGKILL after an applied event, copies of every event, earlier states and
any arrival order; its views equal their rebuild from the orders table and the conversion
records, and what a user would work out by hand, per currency and in dollars."""

from __future__ import annotations

import json
import random
import signal
from decimal import Decimal

from order_processor.analytics.summary import summary
from order_processor.analytics.valuation import Rates
from order_processor.analytics.views import Views
from order_processor.bootstrap import get_asset_dao, get_rate_store
from order_processor.domain.assets import AssetCreate
from order_processor.domain.base import utc_now
from order_processor.domain.commands import AnyCommand
from order_processor.domain.events import Event, EventType, order_event
from order_processor.domain.orders import OrderStatus, OrderType
from tests.analytics import final
from tests.e2e.harness import Harness
from tests.support import cli_env, run_cli

FINAL = {
    EventType.ORDER_COMPLETED,
    EventType.ORDER_FAILED,
    EventType.ORDER_CANCELLED,
    EventType.ORDER_EXPIRED,
}


async def test_each_order_counts_once_through_a_crash_copies_and_reordering(
    harness: Harness,
) -> None:
    await harness.add_asset("BTC", "50000")
    euro_asset = AssetCreate(asset_id="ETH", name="ETH", price="2000", quote_currency="EUR")
    await get_asset_dao(harness.clients).create_asset(euro_asset)
    rates = get_rate_store(harness.clients, harness.settings)
    await rates.change_rate("EUR", "1.08", as_of=utc_now(), command_id="eur-rate-1")
    await harness.create_user("ana_trader", usd="3000")
    await harness.create_user("ben_trader", usd="100")
    await harness.give_asset("ben_trader", "BTC", "0.1")
    funding: list[AnyCommand] = [
        harness.factory.deposit("ana_trader", "500", currency="EUR"),
        harness.factory.convert("ana_trader", "100", "EUR", "USD"),  # 107.46 USD
    ]
    orders = [
        harness.market("ana_trader", "buy", "BTC", "0.02"),  # 1000.00
        harness.market("ana_trader", "buy", "BTC", "0.01"),  # 500.00
        harness.market("ana_trader", "buy", "ETH", "0.1"),  # 200.00 EUR
        harness.market("ben_trader", "sell", "BTC", "0.05"),  # 2500.00
        harness.market("ben_trader", "buy", "BTC", "0.06"),  # 3000 > 2600: FAILED
        harness.limit("ana_trader", "buy", "BTC", "0.01", "100"),  # rests, then cancelled
    ]
    resting = orders[-1].payload.order_id
    await harness.send(*funding, *orders)
    assert await harness.run_worker() == 0, harness.worker_output()
    await harness.send(harness.factory.cancel("ana_trader", resting))
    assert await harness.run_worker() == 0, harness.worker_output()
    events = await harness.collect_events(
        lambda seen: (
            len({e.order_id for e in seen if e.event_type in FINAL}) == len(orders)
            and any(e.event_type is EventType.BALANCE_CONVERTED for e in seen)
        )
    )

    # Every event again, one to three times, shuffled, onto the analytics queue: with
    # what SNS delivered, each final event arrives two to four times, some after states
    # that came before it.
    copies = [e for e in events for _ in range(random.Random(5).randint(1, 3))]
    random.Random(5).shuffle(copies)
    url = await harness.clients.queue_url(harness.settings.resources().analytics_queue.name)
    for start in range(0, len(copies), 10):
        await harness.clients.sqs.send_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(n), "MessageBody": e.body()}
                for n, e in enumerate(copies[start : start + 10])
            ],
        )

    crashed = await harness.run_worker(kind="analytics", fault="crash-after=analytics")
    assert crashed == -signal.SIGKILL, harness.worker_output()
    assert await harness.run_worker(kind="analytics") == 0, harness.worker_output()

    env = cli_env(harness.settings)
    check = run_cli("analytics", "--check", env=env)
    assert check.returncode == 0, check.stdout + check.stderr
    shown = json.loads(run_cli("analytics", "--output", "json", env=env).stdout)
    expected = Views()
    for event in events:
        expected.apply(event)
    valued = summary(expected.report(), await Rates.read(rates, harness.settings.fx_max_age))
    assert shown == json.loads(json.dumps(valued, default=str))
    assert shown["orders"]["by_status"] == {"cancelled": 1, "completed": 4, "failed": 1}
    assert shown["orders"]["failures"] == {"INSUFFICIENT_BALANCE": 1}
    assert shown["orders"]["fill_ratio"] == "0.6667"
    assert shown["latency_ms"]["market"]["samples"] == 5
    ana, ben = (
        {p["asset_id"]: p for p in shown["positions"] if p["username"] == user}["BTC"]
        for user in ("ana_trader", "ben_trader")
    )
    assert (Decimal(ana["quantity"]), Decimal(ana["cost"])) == (Decimal("0.03"), Decimal(1500))
    # 0.05 sold from 0.1 given outside any order: no cost to set against the proceeds.
    assert Decimal(ben["realised_pnl"]) == Decimal(2500)
    assert [u["username"] for u in shown["users"]] == ["ben_trader", "ana_trader"]
    (day,) = shown["volume"]["BTC"]["day"]
    assert (day["orders"], day["currency"], Decimal(day["amount"])) == (3, "USD", Decimal(4000))
    (euro_day,) = shown["volume"]["ETH"]["day"]
    assert (euro_day["currency"], Decimal(euro_day["amount"])) == ("EUR", Decimal(200))
    # 200.00 EUR at 1.08 is 216.00 USD; with the 4000.00 USD of BTC, 4216.00.
    euro = {row["currency"]: row for row in shown["currencies"]["by_currency"]}["EUR"]
    assert (euro["volume"], euro["in_base"]["volume"]) == ("200", "216")
    assert shown["currencies"]["total_in_base"]["volume"] == "4216"
    # 100 EUR at 1.08 less 0.5 %: 107.46 USD bought, 0.54 USD kept.
    assert shown["conversions"] == [
        {
            **{"sell": "EUR", "buy": "USD", "conversions": 1, "sold": "100", "bought": "107.46"},
            **{"spread": "0.54", "spread_in_base": "0.54"},
        }
    ]
    stored = {o.payload.order_id: await harness.order(o.payload.order_id) for o in orders}
    assert stored[resting].status is OrderStatus.CANCELLED


async def test_an_event_it_cannot_count_waits_in_its_dead_letters_for_an_operator(
    harness: Harness,
) -> None:
    """A final event whose data is not the order it names (no total: the views cannot
    count it) goes to the analytics DLQ at once; the events around it are counted."""
    good = final_event("o-good", "0.5")
    bad = json.loads(final_event("o-bad", "1").body())
    del bad["data"]["total_amount"]
    url = await harness.clients.queue_url(harness.settings.resources().analytics_queue.name)
    for body in (good.body(), json.dumps(bad)):
        await harness.clients.sqs.send_message(QueueUrl=url, MessageBody=body)

    assert await harness.run_worker(kind="analytics") == 0, harness.worker_output()

    env = cli_env(harness.settings)
    shown = json.loads(run_cli("analytics", "--output", "json", env=env).stdout)
    assert shown["orders"]["by_status"] == {"completed": 1}
    listed = run_cli("dlq", "list", "--queue", "analytics", env=env)
    (letter,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert letter["type"] == "order.completed"
    assert run_cli("dlq", "list", env=env).stdout == ""  # the commands' DLQ is another
    assert run_cli("dlq", "purge", "--yes", "--queue", "analytics", env=env).stdout == (
        "purged: 1\n"
    )


def final_event(order_id: str, quantity: str) -> Event:
    order = final(order_id, OrderType.MARKET_BUY, quantity, "100", user="dana_trader")
    return order_event(order.evolve(order_id=order_id))
