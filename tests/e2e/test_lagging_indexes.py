"""Global secondary indexes lag their table (the fault proxy answers index queries from a
copy of the table that learns each write late): the matcher and the sweeper, reading them,
never execute, expire or skip an order wrongly. What an index still shows after it left
(a cancelled order, a filled one) is re-checked on the table under the fence and changes
nothing; what it hid (an order placed a moment ago) the matcher's rematch catches. Here
the copy learns nothing on its own (a lag of ten minutes) until the test has it catch up,
so every window is exact whatever the machine's load."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from order_processor.aws import sync_client
from order_processor.domain.base import utc_now
from order_processor.domain.orders import OrderStatus
from order_processor.faultproxy import FaultPlan, FaultProxyHandle, fault_proxy
from tests.e2e.harness import AHEAD, DUE_IN, Harness
from tests.ledger import assert_ledger


@pytest.fixture
def lagging(harness: Harness) -> Iterator[FaultProxyHandle]:
    """The programs read indexes through the proxy, from a copy that is only brought up to
    date by `catch_up_indexes()`."""
    direct = harness.settings.endpoint_url
    assert direct is not None
    with fault_proxy(direct, FaultPlan.parse("lag-ms=600000,lag-min-ms=600000")) as proxy:
        # The first index read makes the lagging copy: before any order exists.
        proxied = harness.settings.model_copy(update={"endpoint_url": proxy.endpoint})
        sync_client(proxied, "dynamodb").query(
            TableName=harness.settings.resources().orders_table,
            IndexName="OpenLimitOrders",
            KeyConditionExpression="book_key = :key",
            ExpressionAttributeValues={":key": {"S": "NONE#BUY"}},
        )
        harness.program_env = {"AWS_ENDPOINT_URL": proxy.endpoint}
        yield proxy


async def test_an_order_the_book_hid_is_filled_by_the_rematch_and_a_gone_one_never(
    harness: Harness, lagging: FaultProxyHandle
) -> None:
    await harness.create_user("lag_buyer", usd="1000")
    await harness.add_asset("AVAX", "30")
    gone = harness.limit("lag_buyer", "buy", "AVAX", "1", "26")
    await harness.send(gone)
    assert await harness.run_worker() == 0, harness.worker_output()
    assert lagging.catch_up_indexes() > 0  # the book shows `gone` now
    hidden = harness.limit("lag_buyer", "buy", "AVAX", "10", "25")
    await harness.send(harness.factory.cancel("lag_buyer", gone.payload.order_id), hidden)
    assert await harness.run_worker() == 0, harness.worker_output()

    # The book still holds the cancelled order and not yet the new one.
    await harness.send_prices(("AVAX", "24"))
    assert await harness.run_worker(kind="limit-matcher") == 0, harness.worker_output()
    assert await harness.run_worker() == 0, harness.worker_output()
    assert (await harness.order(hidden.payload.order_id)).status is OrderStatus.QUEUED
    cancelled = await harness.order(gone.payload.order_id)

    lagging.catch_up_indexes()
    rematch = ("--rematch-interval", "1")
    assert await harness.run_worker(kind="limit-matcher", extra=rematch) == 0
    assert await harness.run_worker() == 0, harness.worker_output()

    assert lagging.stats().injected("lagged-read") > 0
    assert cancelled.status is OrderStatus.CANCELLED
    assert (await harness.order(gone.payload.order_id)) == cancelled  # execution found it gone
    filled = await harness.order(hidden.payload.order_id)
    assert (filled.status, filled.price, filled.total_amount) == (
        OrderStatus.COMPLETED,
        Decimal("24"),
        Decimal("240.00"),
    )
    assert await harness.available("lag_buyer") == Decimal("760.00")
    assert f"rematch: order {hidden.payload.order_id}" in harness.worker_output()
    await assert_ledger(harness.clients, "lag_buyer")


async def test_a_filled_order_the_expiry_index_still_shows_is_never_expired(
    harness: Harness, lagging: FaultProxyHandle
) -> None:
    await harness.create_user("lag_seller", usd="1000")
    await harness.add_asset("DOT", "10")
    buy = harness.limit("lag_seller", "buy", "DOT", "10", "9", expires_at=utc_now() + DUE_IN)
    await harness.send(buy)
    assert await harness.run_worker() == 0, harness.worker_output()
    assert lagging.catch_up_indexes() > 0  # the expiry index holds it, QUEUED
    await harness.send_prices(("DOT", "8"))
    await harness.settle()  # filled; the index does not learn it
    assert (await harness.order(buy.payload.order_id)).status is OrderStatus.COMPLETED

    await harness.sweep_ahead()  # the index still shows it QUEUED, and due by then
    assert await harness.run_worker(ahead=AHEAD) == 0, harness.worker_output()

    order = await harness.order(buy.payload.order_id)
    assert (order.status, order.total_amount) == (OrderStatus.COMPLETED, Decimal("80.00"))
    assert await harness.available("lag_seller") == Decimal("920.00")
    assert "1 order(s) due" in harness.worker_output()  # the sweeper did send an ExpireOrder
    await assert_ledger(harness.clients, "lag_seller")
