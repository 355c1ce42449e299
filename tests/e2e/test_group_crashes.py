"""A worker killed with SIGKILL at each point of a group commit (a batch of one user's
commands decided together, written in one transaction, announced in one publish): before
the write (`grouped`), right after it (`completed`: the batch's market buy is in it), and
after the publish, before the messages are deleted (`announced`). A fresh worker ends with
the same ledger as one-at-a-time processing, and every command's final event out."""

from __future__ import annotations

import signal
from decimal import Decimal

import pytest

from order_processor.domain.events import EventType
from order_processor.domain.orders import OrderStatus
from tests.e2e.harness import Harness
from tests.e2e.test_crashes import assert_final_events
from tests.ledger import assert_ledger

pytestmark = pytest.mark.aws_faults


@pytest.mark.parametrize("point", ["grouped", "completed", "announced"])
async def test_a_batch_of_one_users_commands_survives_a_crash_at_each_point(
    harness: Harness, point: str
) -> None:
    user = f"group_{point}"
    await harness.create_user(user, usd="1000")
    await harness.add_asset("BTC", "100")
    bought = harness.market(user, "buy", "BTC", "1")
    resting = harness.limit(user, "buy", "BTC", "1", "90")
    too_big = harness.market(user, "buy", "BTC", "20")
    await harness.send(
        harness.factory.deposit(user, "100"),
        bought,
        resting,
        harness.factory.cancel(user, resting.payload.order_id),
        too_big,
        harness.factory.withdraw(user, "10"),
    )

    crashed = await harness.run_worker(fault=f"crash-after={point}")
    assert crashed == -signal.SIGKILL, harness.worker_output()
    assert await harness.run_worker() == 0, harness.worker_output()

    orders = [await harness.order(o.payload.order_id) for o in (bought, resting, too_big)]
    assert [(o.status, o.failure_reason) for o in orders] == [
        (OrderStatus.COMPLETED, None),
        (OrderStatus.CANCELLED, None),
        (OrderStatus.FAILED, "INSUFFICIENT_BALANCE"),
    ]
    assert await harness.available(user) == Decimal("990.00")  # 1000 + 100 - 100 - 10
    await assert_ledger(harness.clients, user)
    await assert_final_events(harness, orders)
    events = await harness.collect_events(
        lambda e: (
            {EventType.BALANCE_DEPOSITED, EventType.BALANCE_WITHDRAWN} <= {x.event_type for x in e}
        )
    )
    funds = {e.event_id: e.event_type for e in events if e.event_type.value.startswith("balance.")}
    assert sorted(funds.values()) == [EventType.BALANCE_DEPOSITED, EventType.BALANCE_WITHDRAWN]
