"""`--output json` of `audit` and `status` over a deployment the worker has processed, and
the line a deleted topic gives: what a script reads instead of the text."""

from __future__ import annotations

import json
from decimal import Decimal

from order_processor.domain.orders import OrderStatus
from tests.e2e.harness import Harness
from tests.support import run_cli


def cli_environment(harness: Harness) -> dict[str, str]:
    environment = harness.worker_environment()
    return {k: v for k, v in environment.items() if k.startswith(("AWS_", "ORDER_"))}


async def test_audit_json_after_a_deposit_reports_no_mismatch_and_what_it_checked(
    harness: Harness,
) -> None:
    env = cli_environment(harness)
    await harness.create_user("json_depositor", usd="100")
    deposit = run_cli("deposit", "json_depositor", "50", env=env)
    assert deposit.returncode == 0, deposit.stderr
    assert await harness.run_worker() == 0, harness.worker_output()

    audit = run_cli("audit", "--output", "json", env=env)

    assert audit.returncode == 0, audit.stderr
    assert await harness.available("json_depositor") == Decimal("150.00")
    assert json.loads(audit.stdout) == {
        "passed": True,
        "users": 1,
        "orders": 0,
        "transactions": 2,  # the opening deposit and the CLI's
        "mismatches": [],
        # Per currency: the users' balances and the exchange's liquidity against what came
        # in less what went out.
        "currencies": {
            "USD": {"balances": "150.00", "liquidity": "0.00", "flows": "150.00", "conserved": True}
        },
    }


async def test_audit_json_lists_each_mismatch_with_its_ids_and_exits_1(harness: Harness) -> None:
    env = cli_environment(harness)
    await harness.create_user("json_stranded", usd="1000")
    await harness.add_asset("BTC", "50000")
    order = await harness.strand(
        harness.market("json_stranded", "buy", "BTC", "0.01"), OrderStatus.PENDING
    )

    audit = run_cli("audit", "--output", "json", env=env)

    assert audit.returncode == 1, audit.stderr
    report = json.loads(audit.stdout)
    assert (report["passed"], report["users"], report["orders"]) == (False, 1, 1)
    assert [(m["kind"], m["username"], m["ids"]) for m in report["mismatches"]] == [
        ("order_in_flight", "json_stranded", [order.order_id])
    ]


async def test_status_json_counts_orders_by_status_and_the_open_book(harness: Harness) -> None:
    env = cli_environment(harness)
    await harness.create_user("json_bidder", usd="1000")
    await harness.add_asset("XRP", "2")
    placed = run_cli("buy", "json_bidder", "XRP", "100", "--limit", "1.5", env=env)
    assert placed.returncode == 0, placed.stderr
    assert await harness.run_worker() == 0, harness.worker_output()

    status = run_cli("status", "--output", "json", env=env)

    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    resources = harness.settings.resources()
    queues = {q["name"]: q for q in report["queues"]}
    assert queues[resources.commands_queue.name] == {
        "name": resources.commands_queue.name,
        "visible": 0,
        "in_flight": 0,
        "dead_letters": 0,
    }
    assert report["topics"] == [{"name": resources.events_topic, "exists": True}]
    assert report["missing"] == []
    assert report["orders_by_status"] == {"QUEUED": 1}
    assert report["open_limit_orders"] == {"XRP": {"bids": 1, "asks": 0}}
    assert report["dead_letters_by_type"] == {}


async def test_republishing_to_a_deleted_topic_says_it_is_not_provisioned(
    harness: Harness,
) -> None:
    env = cli_environment(harness)
    await harness.create_user("json_orphan", usd="1000")
    await harness.add_asset("BTC", "50000")
    order = await harness.strand(
        harness.market("json_orphan", "buy", "BTC", "0.01"), OrderStatus.PENDING
    )
    topic = harness.settings.resources().events_topic
    topics = (await harness.clients.sns.list_topics())["Topics"]
    arn = next(t["TopicArn"] for t in topics if t["TopicArn"].endswith(f":{topic}"))
    await harness.clients.sns.delete_topic(TopicArn=arn)

    republish = run_cli("events", "republish", order.order_id, env=env)
    status = run_cli("status", "--output", "json", env=env)

    assert (republish.returncode, republish.stdout) == (4, "")
    assert "Traceback" not in republish.stderr
    assert republish.stderr.splitlines() == [
        f"order-processor: not provisioned: topic {topic} does not exist (PublishBatch): run "
        "`order-processor provision` (or check ORDER_PROCESSOR_PREFIX and AWS_REGION)"
    ]
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["missing"] == [topic]
