"""The analytics views in DynamoDB: each final event and conversion applied once,
atomically, whatever the copies, the arrival order and the concurrency; equal to the views
folded in memory and to the rebuild from the orders and users tables; the items written
before currencies read as USD."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from order_processor.analytics.items import shard
from order_processor.analytics.parts import Part, contribution, part_of
from order_processor.analytics.rebuild import conversion_events, rebuild
from order_processor.analytics.store import AnalyticsStore
from order_processor.analytics.views import Views
from order_processor.bootstrap import AwsClients, get_order_dao, open_clients
from order_processor.config import Settings
from order_processor.domain.balances import BalanceTransactionCreate, TransactionType
from order_processor.domain.base import utc_now
from order_processor.domain.events import Event, order_event
from order_processor.domain.orders import Order, OrderStatus, OrderType
from order_processor.faultproxy import FaultPlan, fault_proxy
from order_processor.store.balances import transaction_put
from order_processor.store.dynamo import to_item
from tests.analytics import conversion, final, mixed_finals
from tests.support import cli_env, deployed, run_cli


@pytest.fixture
async def aws(aws_endpoint: str) -> AsyncIterator[AwsClients]:
    """A deployment of its own: the views are global to one."""
    settings = Settings(endpoint_url=aws_endpoint, prefix=f"a{uuid.uuid4().hex[:12]}")
    with deployed(settings):
        async with open_clients(settings) as clients:
            yield clients


@pytest.fixture
async def conflicting(aws: AwsClients, aws_endpoint: str) -> AsyncIterator[AwsClients]:
    """The same deployment through the fault proxy: DynamoDB's conflict semantics (a
    transaction meeting another in flight on one of its items is cancelled, each held
    20 ms as AWS's take), nothing else."""
    settings = Settings(endpoint_url=aws_endpoint, prefix=aws.resources.prefix)
    with fault_proxy(aws_endpoint, FaultPlan.parse("conflict=on,hold-ms=20")) as proxy:
        proxied = settings.model_copy(update={"endpoint_url": proxy.endpoint})
        async with open_clients(proxied) as clients:
            yield clients
        assert proxy.stats().injected("conflict") > 0  # the counters did meet each other


async def test_copies_shuffled_and_concurrent_give_the_views_of_one_punctual_delivery(
    aws: AwsClients, username: str
) -> None:
    await copies_shuffled_and_concurrent(aws, username)


async def test_under_dynamodbs_conflicts_every_final_event_counts_once(
    conflicting: AwsClients, username: str
) -> None:
    await copies_shuffled_and_concurrent(conflicting, username)


async def copies_shuffled_and_concurrent(aws: AwsClients, username: str) -> None:
    store = AnalyticsStore(aws.dynamodb, aws.resources.analytics_table)
    finals = mixed_finals(seed=7, count=40, prefix=f"{username}_")
    conversions = conversions_of(f"{username}_")
    expected = Views()
    for event in [*map(order_event, finals), *conversions]:
        expected.apply(event)
    # Every event two or three times, earlier states too, shuffled, ten at a time: the
    # same user's fills race for the position, and late fills recompute it.
    rng = random.Random(7)
    stream = [
        e for e in [*map(order_event, finals), *conversions] for _ in range(rng.randint(2, 3))
    ]
    stream += [order_event(o.evolve(status=OrderStatus.PROCESSING, sequence=2)) for o in finals]
    rng.shuffle(stream)
    applied = []
    for start in range(0, len(stream), 10):
        parts = [part_of(event) for event in stream[start : start + 10]]
        applied += await asyncio.gather(*(store.apply(p) for p in parts if p is not None))

    assert sum(applied) == len(finals) + len(conversions)  # each once; every copy False
    stored = await store.report()
    want = expected.report()
    assert len(want.positions) == 6  # two users, three assets
    assert {p.currency for p in want.positions.values()} == {"USD", "EUR", "JPY"}
    assert len(want.conversions) == 2
    assert stored.positions == want.positions
    assert stored.differences(want) == []


def conversions_of(prefix: str) -> list[Event]:
    """Three conversions of two users, in two pairs."""
    return [
        conversion(f"{prefix}c-1", "EUR", "1000.00", "USD", "1074.60", "1.0746", f"{prefix}alice"),
        conversion(f"{prefix}c-2", "EUR", "10.00", "USD", "10.74", "1.0746", f"{prefix}bob"),
        conversion(
            f"{prefix}c-3", "USD", "100.00", "JPY", "14850", "148.5074626865", f"{prefix}bob"
        ),
    ]


async def test_a_rebuild_from_the_orders_table_equals_the_views_and_can_replace_them(
    aws: AwsClients, username: str
) -> None:
    orders = get_order_dao(aws)
    store = AnalyticsStore(aws.dynamodb, aws.resources.analytics_table)
    finals = mixed_finals(seed=11, count=20, prefix=f"{username}_")
    for order in finals:
        await orders.create_order(order)
        part = contribution(order_event(order))
        assert part is not None
        await store.apply(part)
    # A QUEUED order counts nowhere.
    await orders.create_order(
        final(f"{username}-open", OrderType.LIMIT_BUY, "1", "1", user=username).evolve(
            status=OrderStatus.QUEUED
        )
    )
    # Two Convert commands' records, and a market buy paid in euros (its records are
    # `#fx-sold` and `#fx-bought`: counted once, from its order).
    paid = paid_in_euros(f"{username}-paid", username)
    await orders.create_order(paid)
    converted = conversions_of(f"{username}_")[:2]
    for event in converted:
        await write_records(aws, event)
    await write_records(
        aws,
        conversion(f"{paid.order_id}#fx", "EUR", "4652.90", "USD", "5000.00", "1.0746", username),
    )
    for event in [order_event(paid), *converted]:
        counted = part_of(event)
        assert counted is not None
        await store.apply(counted)

    rebuilt, markers = await rebuild(
        orders, conversion_events(aws.dynamodb, aws.resources.users_table)
    )

    assert {f"ORDER#{o.order_id}" for o in finals} <= set(markers)
    assert rebuilt.conversions[("EUR", "USD")].conversions == 3  # two converts, one paid
    assert (await store.report()).differences(rebuilt) == []
    # Replaced: the same views, and the markers keep a redelivered final event out.
    await store.replace(rebuilt, markers)
    assert (await store.report()).differences(rebuilt) == []
    for event in (order_event(finals[0]), converted[0]):
        again = part_of(event)
        assert again is not None
        assert await store.apply(again) is False
    assert (await store.report()).differences(rebuilt) == []


def paid_in_euros(order_id: str, username: str) -> Order:
    """5000.00 USD of BTC paid with 4652.90 EUR at 1.0746 USD a euro."""
    return final(order_id, OrderType.MARKET_BUY, "0.1", "50000", user=username).evolve(
        order_id=order_id,
        pay_currency="EUR",
        paid_amount=Decimal("4652.90"),
        pay_rate=Decimal("1.0746"),
        pay_spread_percent=Decimal("0.5"),
    )


async def write_records(aws: AwsClients, event: Event) -> None:
    """The two records a conversion stores (ids `<id>#sold`, `<id>#bought`, or a paid
    order's `<order>#fx-sold` when the event's id is `<order>#fx`)."""
    data, user = event.data, event.username
    assert user is not None
    fx = data["conversion_id"].endswith("#fx")
    base = data["conversion_id"].removesuffix("#fx")
    for kind, currency, amount, counter, counter_amount in (
        ("sold", data["sell"], data["sold"], data["buy"], data["bought"]),
        ("bought", data["buy"], data["bought"], data["sell"], data["sold"]),
    ):
        record = BalanceTransactionCreate(
            username=user,
            transaction_id=f"{base}#fx-{kind}" if fx else f"{base}#{kind}",
            transaction_type=TransactionType.CONVERSION_OUT
            if kind == "sold"
            else TransactionType.CONVERSION_IN,
            currency=currency,
            amount=amount,
            counter_currency=counter,
            counter_amount=counter_amount,
            rate=data["rate"],
            spread_percent=data["spread_percent"],
            reference_id=base,
        )
        await aws.dynamodb.put_item(**transaction_put(aws.resources.users_table, record, utc_now()))


async def test_racing_fills_of_one_position_are_all_in_it(aws: AwsClients) -> None:
    """Fills in time order, ten at a time: each adds to the position it read, so of two
    racing writes one must be refused and decided again (a lost fill stays lost: only a
    late fill recomputes the position from the stored fills). A store each, as replicas:
    within one process the fills of a position take turns."""
    store = AnalyticsStore(aws.dynamodb, aws.resources.analytics_table)
    replicas = [AnalyticsStore(aws.dynamodb, aws.resources.analytics_table) for _ in range(10)]
    kinds = [OrderType.MARKET_BUY, OrderType.MARKET_BUY, OrderType.MARKET_SELL]
    finals = [
        final(f"race-{n}", kinds[n % 3], "1", str(100 + n), user="carol_01", minutes=n)
        for n in range(30)
    ]
    for start in range(0, len(finals), 10):
        parts = [contribution(order_event(o)) for o in finals[start : start + 10]]
        assert all(
            await asyncio.gather(
                *(replica.apply(p) for replica, p in zip(replicas, parts, strict=True) if p)
            )
        )

    expected = Views()
    for order in finals:
        expected.apply(order_event(order))
    stored = (await store.report(user="carol_01")).positions[("carol_01", "BTC")]
    assert stored == expected.position("carol_01", "BTC")
    assert (stored.fills, stored.quantity) == (30, Decimal(10))


async def test_a_late_fill_after_a_rebuild_written_keeps_the_fills_before_it(
    aws: AwsClients,
) -> None:
    """`--rebuild --write` on a live deployment: an order final in the orders table after
    the scan passed it, but earlier than a fill the rebuild counted, arrives late and
    recomputes the position from the stored fills, which the replace must have kept."""
    store = AnalyticsStore(aws.dynamodb, aws.resources.analytics_table)
    first = final("rw-1", OrderType.MARKET_BUY, "2", "100", user="dave_01", minutes=0)
    last = final("rw-3", OrderType.MARKET_SELL, "1", "150", user="dave_01", minutes=10)
    late = final("rw-2", OrderType.MARKET_BUY, "2", "200", user="dave_01", minutes=5)
    rebuilt = Views()
    for order in (first, last):
        rebuilt.apply(order_event(order))
    finals: dict[str, Part] = {}
    for order in (first, last):
        part = contribution(order_event(order))
        assert part is not None
        finals[part.marker] = part
    await store.replace(rebuilt.report(), finals)

    part = contribution(order_event(late))
    assert part is not None
    assert await store.apply(part) is True

    expected = Views()
    for order in (first, late, last):
        expected.apply(order_event(order))
    stored = await store.report()
    assert stored.positions[("dave_01", "BTC")] == expected.position("dave_01", "BTC")
    assert stored.positions == expected.report().positions


async def test_a_backlog_of_one_users_fills_at_the_workers_concurrency_all_apply(
    aws: AwsClients,
) -> None:
    """A backlog drained 32 at a time (the worker's default concurrency), every message a
    fill of one busy user's position: each must get in without being handed back (five
    hand-backs and SQS moves it to the dead letters, uncounted)."""
    store = AnalyticsStore(aws.dynamodb, aws.resources.analytics_table)
    finals = [
        final(f"busy-{n}", OrderType.MARKET_BUY, "1", "100", user="erin_01", minutes=n / 100)
        for n in range(32)
    ]
    parts = [contribution(order_event(o)) for o in finals]
    outcomes = await asyncio.gather(
        *(store.apply(p) for p in parts if p is not None), return_exceptions=True
    )
    failed = [o for o in outcomes if o is not True]
    assert failed == []


async def test_the_cli_narrows_to_a_user_and_an_asset_however_they_are_cased(
    settings: Settings,
) -> None:
    """Usernames are stored lower-case and asset ids upper-case (as the orders do); the
    CLI takes them as an operator types them, as `buy` does an asset id."""
    with deployed(settings):
        async with open_clients(settings) as clients:
            store = AnalyticsStore(clients.dynamodb, clients.resources.analytics_table)
            part = contribution(
                order_event(final("case-1", OrderType.MARKET_BUY, "1", "100", user="carol_01"))
            )
            assert part is not None
            assert await store.apply(part) is True

        shown = run_cli(
            "analytics", "Carol_01", "--asset", "btc", "--output", "json", env=cli_env(settings)
        )

        assert shown.returncode == 0, shown.stderr
        document = json.loads(shown.stdout)
        assert [(p["username"], p["asset_id"]) for p in document["positions"]] == [
            ("carol_01", "BTC")
        ]
        assert document["volume"]["BTC"]["day"][0]["orders"] == 1


async def test_the_items_written_before_currencies_read_as_usd_and_add_up_with_new_ones(
    aws: AwsClients,
) -> None:
    """A deployment upgraded in place: its volume items (no currency in the sort key, the
    amount in `usd`), fills (`usd`) and positions (no `currency`) stay as they are, and
    the fills after the upgrade add to the same figures."""
    store = AnalyticsStore(aws.dynamodb, aws.resources.analytics_table)
    before = final("old-1", OrderType.MARKET_BUY, "2", "100", user="gail_01", minutes=0)
    after = final("new-1", OrderType.MARKET_SELL, "1", "150", user="gail_01", minutes=1)
    part = contribution(order_event(before))
    assert part is not None
    assert part.fill is not None
    fill, day = part.fill, "2026-11-28"
    table = aws.resources.analytics_table
    for item in (
        {"PK": "TOTALS#0", "SK": "ALL", "s_completed": 1, "assets": {"BTC"}},
        {"PK": "VOLUME#BTC#0", "SK": f"day#{day}", "orders": 1, "quantity": 2, "usd": 200},
        {"PK": "ORDER#o-old-1", "SK": "FINAL", "event_id": part.event_id, "status": "completed"},
        {
            "PK": "FILLS#gail_01#BTC",
            "SK": fill.key,
            **{"buy": True, "quantity": 2, "usd": 200, "at": fill.at, "order_id": "o-old-1"},
        },
        {
            "PK": f"POSITIONS#{shard('gail_01')}",
            "SK": "gail_01#BTC",
            **{"quantity": 2, "cost": 200, "realised": 0, "bought": 200, "sold": 0},
            **{"fills": 1, "last": fill.key},
        },
    ):
        await aws.dynamodb.put_item(TableName=table, Item=to_item(item))
    late = contribution(order_event(after))
    assert late is not None
    assert await store.apply(late) is True

    stored = await store.report()
    position = stored.positions[("gail_01", "BTC")]
    # Bought 2 for 200 USD, sold 1 for 150: 50 realised against the average cost.
    assert position.currency == "USD"
    assert (position.realised, position.cost) == (Decimal(50), Decimal(100))
    (volume,) = [v for k, v in stored.volume.items() if k[1:3] == ("USD", "day")]
    assert (volume.orders, volume.amount) == (2, Decimal(350))
    expected = Views()
    for order in (before, after):
        expected.apply(order_event(order))
    assert stored.positions == expected.report().positions
