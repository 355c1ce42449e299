"""The analytics views in DynamoDB: each final event applied once, atomically, whatever
the copies, the arrival order and the concurrency; equal to the views folded in memory
and to the rebuild from the orders table."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from order_processor.analytics.rebuild import rebuild
from order_processor.analytics.store import AnalyticsStore
from order_processor.analytics.views import Views, contribution
from order_processor.bootstrap import AwsClients, get_order_dao, open_clients
from order_processor.config import Settings
from order_processor.domain.events import order_event
from order_processor.domain.orders import OrderStatus, OrderType
from order_processor.faultproxy import FaultPlan, fault_proxy
from tests.analytics import final, mixed_finals
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
    expected = Views()
    for order in finals:
        expected.apply(order_event(order))
    # Every event two or three times, earlier states too, shuffled, ten at a time: the
    # same user's fills race for the position, and late fills recompute it.
    rng = random.Random(7)
    stream = [order_event(o) for o in finals for _ in range(rng.randint(2, 3))]
    stream += [order_event(o.evolve(status=OrderStatus.PROCESSING, sequence=2)) for o in finals]
    rng.shuffle(stream)
    applied = []
    for start in range(0, len(stream), 10):
        parts = [contribution(event) for event in stream[start : start + 10]]
        applied += await asyncio.gather(*(store.apply(p) for p in parts if p is not None))

    assert sum(applied) == len(finals)  # each order once; every copy answered False
    stored = await store.report()
    want = expected.report()
    assert len(want.positions) == 4  # two users, two assets
    assert stored.positions == want.positions
    assert stored.differences(want) == []


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

    rebuilt, markers = await rebuild(orders)

    assert {o.order_id for o in finals} <= set(markers)
    assert (await store.report()).differences(rebuilt) == []
    # Replaced: the same views, and the markers keep a redelivered final event out.
    await store.replace(rebuilt, markers)
    assert (await store.report()).differences(rebuilt) == []
    again = contribution(order_event(finals[0]))
    assert again is not None
    assert await store.apply(again) is False
    assert (await store.report()).differences(rebuilt) == []


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
    finals = {}
    for order in (first, last):
        part = contribution(order_event(order))
        assert part is not None
        finals[part.order_id] = part
    await store.replace(rebuilt.report(), finals)

    part = contribution(order_event(late))
    assert part is not None
    assert await store.apply(part) is True

    expected = Views()
    for order in (first, late, last):
        expected.apply(order_event(order))
    stored = await store.report()
    assert stored.positions[("dave_01", "BTC")] == expected.position("dave_01", "BTC")
    assert stored.differences(expected.report()) == []


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
