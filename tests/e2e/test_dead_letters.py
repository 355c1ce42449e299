"""A poisoned command ends in the DLQ after maxReceiveCount; once the cause is fixed,
`dlq redrive` sends it back and it executes exactly once."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from order_processor.domain.orders import OrderStatus
from order_processor.exceptions import OrderNotFoundException
from tests.e2e.harness import Harness
from tests.ledger import assert_ledger
from tests.support import run_cli


async def test_a_poisoned_command_is_redriven_after_the_fix(strict_harness: Harness) -> None:
    harness = strict_harness
    env = {
        k: v for k, v in harness.worker_environment().items() if k.startswith(("AWS_", "ORDER_"))
    }
    await harness.create_user("poison_u", usd="100")
    await harness.add_asset("BTC", "50")
    buy = harness.market("poison_u", "buy", "BTC", "1")
    await harness.send(buy)

    # The "bug": every attempt breaks before its write; on its last delivery the worker
    # moves it to the dead letters. Nothing was written.
    assert await harness.run_worker(fault="break-step=completed") == 0, harness.worker_output()
    listed = run_cli("dlq", "list", env=env)
    status = run_cli("status", env=env)
    with pytest.raises(OrderNotFoundException):
        await harness.order(buy.payload.order_id)

    redriven = run_cli("dlq", "redrive", env=env)
    assert await harness.run_worker() == 0, harness.worker_output()

    letters = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(d["type"], d["username"], d["command_id"]) for d in letters] == [
        ("PlaceOrder", "poison_u", buy.command_id)
    ]
    dlq_row = next(line for line in status.stdout.splitlines() if "order-commands" in line)
    assert dlq_row.split()[-1] == "1"
    assert "dead letters by type: PlaceOrder 1" in status.stdout
    assert redriven.stdout.strip() == "redriven: 1"
    order = await harness.order(buy.payload.order_id)
    assert (order.status, order.total_amount) == (OrderStatus.COMPLETED, Decimal("50.00"))
    assert await harness.available("poison_u") == Decimal("50.00")
    assert run_cli("dlq", "list", env=env).stdout == ""
    await assert_ledger(harness.clients, "poison_u")


async def test_purge_needs_yes_and_then_empties_the_dlq(strict_harness: Harness) -> None:
    harness = strict_harness
    env = {
        k: v for k, v in harness.worker_environment().items() if k.startswith(("AWS_", "ORDER_"))
    }
    commands = harness.settings.resources().commands_queue
    assert commands.dead_letter is not None
    dlq = (await harness.clients.sqs.get_queue_url(QueueName=commands.dead_letter.name))["QueueUrl"]
    for n in range(3):
        await harness.clients.sqs.send_message(
            QueueUrl=dlq,
            MessageBody=f"junk {n}",
            MessageGroupId="junk",
            MessageDeduplicationId=str(n),
        )

    refused = run_cli("dlq", "purge", env=env)
    purged = run_cli("dlq", "purge", "--yes", env=env)

    assert refused.returncode == 2
    assert "add --yes" in refused.stderr
    assert purged.stdout.strip() == "purged: 3"
    assert run_cli("dlq", "list", env=env).stdout == ""
