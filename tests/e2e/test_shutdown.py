"""SIGTERM during work: the worker stops receiving, finishes or hands back what it holds,
exits 0, and nothing is lost."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter

from order_processor.bootstrap import get_order_dao
from order_processor.domain.orders import OrderStatus
from tests.e2e.harness import Harness
from tests.ledger import assert_ledger

USERS = [f"term_user_{n:02d}" for n in range(20)]


async def test_sigterm_mid_batch_loses_nothing_and_exits_0(harness: Harness) -> None:
    await harness.add_asset("BTC", "100")
    commands = []
    for username in USERS:
        await harness.create_user(username, usd="1000")
        commands += [harness.market(username, "buy", "BTC", "0.1") for _ in range(10)]
    await harness.send(*commands)
    orders = get_order_dao(harness.clients)

    worker = harness.start_worker(burst=False, concurrency=4)
    deadline = time.monotonic() + 60
    while not (await orders.get_orders_by_user(USERS[0], limit=1)).items:
        assert time.monotonic() < deadline, harness.worker_output()
        await asyncio.sleep(0.1)
    worker.send_signal(signal.SIGTERM)

    assert await harness.wait(worker, 60) == 0, harness.worker_output()
    # Handed back at once (visibility 0), and every lock released by its owner.
    depth = await harness.clients.sqs.get_queue_attributes(
        QueueUrl=harness.queue_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )
    assert depth["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "0"
    for username in USERS:
        lock = await harness.clients.dynamodb.get_item(
            TableName=harness.settings.resources().users_table,
            Key={"PK": {"S": f"USER#{username}"}, "SK": {"S": "LOCK"}},
        )
        assert "owner" not in lock.get("Item", {}), username
    done_before = 0
    for username in USERS:
        page = await orders.get_orders_by_user_and_status(
            username, OrderStatus.COMPLETED, limit=100
        )
        done_before += len(page.items)
    assert done_before < 200  # the second worker had work left: the stop was mid-stream
    assert await harness.run_worker() == 0, harness.worker_output()

    statuses: Counter[OrderStatus] = Counter()
    for username in USERS:
        page = await orders.get_orders_by_user(username, limit=100)
        statuses.update(o.status for o in page.items)
        assert await harness.available(username) == 1000 - 10 * 10
        await assert_ledger(harness.clients, username)
    assert statuses == {OrderStatus.COMPLETED: 200}
