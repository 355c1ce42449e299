"""100 buys for one user whose balance covers 50, over 4 worker processes on a standard
queue (no FIFO ordering: the user lock alone keeps the balance right)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from order_processor.bootstrap import get_order_dao, open_clients
from order_processor.config import QueueKind
from tests.e2e.conftest import deployment_settings
from tests.e2e.harness import Harness
from tests.ledger import assert_ledger
from tests.support import Clients, destroy


@pytest.fixture
async def standard_harness(aws_endpoint: str) -> AsyncIterator[Harness]:
    settings = deployment_settings(aws_endpoint, QueueKind.STANDARD)
    Clients(settings).provisioner().apply(settings.resources())
    try:
        async with open_clients(settings) as clients:
            yield await Harness.start(settings, clients)
    finally:
        destroy(settings)


async def test_exactly_the_affordable_half_of_100_buys_completes(standard_harness: Harness) -> None:
    harness = standard_harness
    await harness.create_user("hot_user", usd="500")
    await harness.add_asset("COIN", "10")
    buys = [harness.market("hot_user", "buy", "COIN", "1") for _ in range(100)]
    await harness.send(*buys)

    workers = [harness.start_worker(concurrency=8) for _ in range(4)]
    codes = await asyncio.gather(*(harness.wait(w, 240) for w in workers))

    assert codes == [0, 0, 0, 0], harness.worker_output()
    orders = []
    cursor = None
    while True:
        page = await get_order_dao(harness.clients).get_orders_by_user(
            "hot_user", limit=100, cursor=cursor
        )
        orders += page.items
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    outcome = Counter((o.status.value, o.failure_reason) for o in orders)
    assert outcome == {("COMPLETED", None): 50, ("FAILED", "INSUFFICIENT_BALANCE"): 50}
    assert await harness.available("hot_user") == Decimal("0.00")
    await assert_ledger(harness.clients, "hot_user")
