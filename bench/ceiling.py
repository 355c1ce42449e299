"""The ceiling: the same per-order mix of AWS calls a worker makes, against the same
emulator, as fast as plain aioboto3 can issue them; no framework, no logic."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

from bench.workload import bench_deployment, seed_users
from order_processor.aws import aio_session, client_kwargs
from order_processor.bootstrap import get_asset_dao
from order_processor.domain.base import utc_now
from order_processor.store import keys
from order_processor.store.dynamo import to_attribute, to_item


def _operation_calls(mix: dict[str, float], index: int) -> list[str]:
    """Whole calls per order, plus fractional ones spread evenly over the orders."""
    calls = []
    for name, rate in sorted(mix.items()):
        whole = int(rate)
        extra = 1 if (index * (rate - whole)) % 1 + (rate - whole) >= 1 else 0
        calls += [name] * (whole + extra)
    return calls


# Today's design (v1), as `make bench` counted it: per market buy 3 GetItem, 3
# TransactWriteItems (accept 2 items, debit 4, credit 4), 2 lock UpdateItems, 3 Publish,
# the SQS receive and delete batched. A fixed mix, so the comparison holds on any machine.
V1_MIX = {
    "dynamodb.GetItem": 3.0,
    "dynamodb.TransactWriteItems": 3.0,
    "dynamodb.UpdateItem": 2.0,
    "sns.Publish": 3.0,
    "sqs.ReceiveMessage": 0.14,
    "sqs.DeleteMessageBatch": 0.16,
}
V1_TRANSACTION_SIZES = (2, 4, 4)
V2_TRANSACTION_SIZES = (6,)  # fence, order, balance, payment, holding, BUY record


async def _fill_queue(bench: Any, users: list[str], orders: int) -> None:
    """The messages the ceiling's receives will find, ten to a batch, one group a user."""
    for start in range(0, orders, 10):
        await bench.clients.sqs.send_message_batch(
            QueueUrl=bench.commands_url,
            Entries=[
                {
                    "Id": str(i),
                    "MessageBody": "{}",
                    "MessageGroupId": users[(start + i) % len(users)],
                }
                for i in range(10)
            ],
        )


@contextlib.asynccontextmanager
async def _raw_clients(settings: Any) -> AsyncIterator[dict[str, Any]]:
    """Plain aioboto3 clients, none of the worker's settings (the ceiling's own)."""
    session = await aio_session(settings)
    kwargs = client_kwargs(settings, long_running=True)  # a pool sized to the concurrency
    async with (
        session.client("dynamodb", **kwargs) as dynamodb,
        session.client("sqs", **kwargs) as sqs,
        session.client("sns", **kwargs) as sns,
    ):
        yield {"dynamodb": dynamodb, "sqs": sqs, "sns": sns}


async def ceiling(
    endpoint: str,
    mix: dict[str, float],
    orders: int,
    concurrency: int = 64,
    transaction_sizes: tuple[int, ...] = V2_TRANSACTION_SIZES,
) -> dict[str, Any]:
    async with bench_deployment(endpoint) as bench:
        users = [f"ceil_user_{n:04d}" for n in range(1000)]
        await seed_users(bench.clients, users, Decimal("100000000"))
        resources = bench.settings.resources()
        topic = (await bench.clients.sns.create_topic(Name=resources.events_topic))["TopicArn"]
        await _fill_queue(bench, users, orders)
        async with _raw_clients(
            bench.settings.model_copy(update={"concurrency": concurrency})
        ) as clients:
            context = {
                "users": resources.users_table,
                "orders": resources.orders_table,
                "queue": bench.commands_url,
                "topic": topic,
            }
            semaphore = asyncio.Semaphore(concurrency)

            async def one(index: int) -> None:
                async with semaphore:
                    user = users[index % len(users)]
                    sizes = iter(transaction_sizes * 4)
                    for call in _operation_calls(mix, index):
                        await _call(clients, context, call, user, sizes)

            started, cpu = time.monotonic(), time.process_time()
            await asyncio.gather(*(one(n) for n in range(orders)))
            elapsed, cpu = time.monotonic() - started, time.process_time() - cpu
    return {
        "orders": orders,
        "concurrency": concurrency,
        "orders_per_second": round(orders / elapsed, 1),
        # The client's CPU: what a worker doing nothing but these calls would spend.
        "client_cpu_ms_per_order": round(cpu * 1000 / orders, 2),
    }


async def _call(
    clients: dict[str, Any],
    context: dict[str, str],
    call: str,
    user: str,
    sizes: Iterator[int],
) -> None:
    service, operation = call.split(".", 1)
    client = clients[service]
    if operation == "BatchGetItem":
        keys_read = [keys.lock_key(user), keys.user_key(user), keys.balance_key(user)]
        await client.batch_get_item(
            RequestItems={context["users"]: {"Keys": keys_read, "ConsistentRead": True}}
        )
    elif operation == "PublishBatch":
        await client.publish_batch(
            TopicArn=context["topic"],
            PublishBatchRequestEntries=[
                {"Id": str(n), "Message": json.dumps({"event_type": kind, "id": uuid.uuid4().hex})}
                for n, kind in enumerate(("order.accepted", "order.processing", "order.completed"))
            ],
        )
    elif operation == "GetItem":
        await client.get_item(
            TableName=context["users"], Key=keys.balance_key(user), ConsistentRead=True
        )
    elif operation == "UpdateItem":
        await client.update_item(
            TableName=context["users"],
            Key=keys.lock_key(user),
            UpdateExpression="SET lease_expires = :now ADD fencing_token :one",
            ExpressionAttributeValues={
                ":now": to_attribute(int(time.time() * 1000)),
                ":one": to_attribute(1),
            },
        )
    elif operation == "PutItem":
        await client.put_item(
            TableName=context["orders"],
            Item=to_item({"PK": f"ORDER#{uuid.uuid4().hex}", "SK": "ORDER", "username": user}),
        )
    elif operation == "TransactWriteItems":
        items = _transaction(context, user)[: next(sizes, 4)]
        await client.transact_write_items(TransactItems=items)
    elif operation == "Query":
        await client.query(
            TableName=context["users"],
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues={":pk": to_attribute(keys.user_pk(user))},
            Limit=1,
        )
    elif operation == "Publish":
        await client.publish(
            TopicArn=context["topic"],
            Message=json.dumps({"event_type": "order.completed", "order_id": uuid.uuid4().hex}),
        )
    elif operation == "ReceiveMessage":
        response = await client.receive_message(
            QueueUrl=context["queue"],
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            VisibilityTimeout=60,
        )
        context["receipts"] = json.dumps(
            [m["ReceiptHandle"] for m in response.get("Messages", [])][:10]
        )
    elif operation == "DeleteMessageBatch":
        receipts = json.loads(context.get("receipts", "[]")) or []
        if receipts:
            await client.delete_message_batch(
                QueueUrl=context["queue"],
                Entries=[{"Id": str(i), "ReceiptHandle": r} for i, r in enumerate(receipts)],
            )
    elif operation == "ChangeMessageVisibilityBatch":
        pass  # only on retries; none in a clean run


def _transaction(context: dict[str, str], user: str) -> list[dict[str, Any]]:
    """Up to six items, as a fused step writes them: the fence, the order, the balance
    and its record, the holding and its record."""
    order_id = uuid.uuid4().hex
    return [
        {
            "ConditionCheck": {
                "TableName": context["users"],
                "Key": keys.user_key(user),
                "ConditionExpression": "attribute_exists(PK)",
            }
        },
        {
            "Put": {
                "TableName": context["orders"],
                "Item": to_item(
                    {
                        "PK": f"ORDER#{order_id}",
                        "SK": "ORDER",
                        "username": user,
                        "status": "PROCESSING",
                    }
                ),
            }
        },
        {
            "Update": {
                "TableName": context["users"],
                "Key": keys.balance_key(user),
                "UpdateExpression": "SET available = available - :c",
                "ConditionExpression": "available >= :c",
                "ExpressionAttributeValues": {":c": to_attribute(Decimal("0.01"))},
            }
        },
        {
            "Put": {
                "TableName": context["users"],
                "Item": to_item(
                    {"PK": keys.user_pk(user), "SK": f"TX#{order_id}", "amount": Decimal("0.01")}
                ),
            }
        },
        {
            "Update": {
                "TableName": context["users"],
                "Key": keys.asset_balance_key(user, "COIN"),
                "UpdateExpression": "ADD available :q",
                "ExpressionAttributeValues": {":q": to_attribute(Decimal("0.001"))},
            }
        },
        {
            "Put": {
                "TableName": context["users"],
                "Item": to_item(
                    {"PK": keys.user_pk(user), "SK": f"ATX#{order_id}", "quantity": Decimal(1)}
                ),
            }
        },
    ]


async def replayed_ceiling(endpoint: str, orders: int, concurrency: int = 64) -> dict[str, Any]:
    """The ceiling of our own calls: for each market buy, the very requests the worker
    makes (its batched read, its transaction, its event batch, its share of the SQS
    receive and delete), built beforehand by the store and the saga, then issued by plain
    aioboto3 with no consumer, no admission, no decision, no logging. What the worker
    could reach if everything but the calls cost nothing."""
    from order_processor.domain.orders import Order, OrderCreate, OrderType
    from order_processor.domain.ports import Snapshot
    from order_processor.saga.decision import Limits
    from order_processor.saga.market import fill
    from order_processor.store.ledger import DynamoLedger

    async with bench_deployment(endpoint, follow=False) as bench:
        users = [f"ceil_user_{n:04d}" for n in range(1000)]
        await seed_users(bench.clients, users, Decimal("100000000"))
        resources = bench.settings.resources()
        asset = await get_asset_dao(bench.clients).get_asset("COIN")
        topic = await bench.clients.topic_arn(bench.commands_url)
        ledger = DynamoLedger(
            bench.clients.dynamodb,
            resources.users_table,
            resources.orders_table,
            resources.inventory_table,
        )
        limits = Limits(Decimal(10000), Decimal(10000), Decimal(5000))
        request = OrderCreate(order_type=OrderType.MARKET_BUY, asset_id="COIN", quantity="1")
        prepared = []
        for n in range(orders):
            user = users[n % len(users)]
            now = utc_now()
            accepted = Order.place(user, request).evolve(
                step="accepted", sequence=1, created_at=now, updated_at=now
            )
            decision = fill(Snapshot(user, 0, None, None, asset), accepted, [accepted], now, limits)
            assert decision.write is not None
            write = replace(decision.write, fence=None)  # no read to depend on
            read = {
                resources.users_table: {
                    "Keys": [keys.lock_key(user), keys.user_key(user)],
                    "ConsistentRead": True,
                },
                resources.orders_table: {
                    "Keys": [keys.order_key(accepted.order_id)],
                    "ConsistentRead": True,
                },
                resources.inventory_table: {
                    "Keys": [keys.asset_key("COIN")],
                    "ConsistentRead": True,
                },
            }
            entries = [
                {"Id": str(i), "Message": e.body(), "MessageAttributes": e.attributes()}
                for i, e in enumerate(decision.events)
            ]
            prepared.append((read, [item for _, item in ledger._parts(write)], entries))
        await _fill_queue(bench, users, orders)
        async with _raw_clients(
            bench.settings.model_copy(update={"concurrency": concurrency})
        ) as clients:
            context = {"queue": bench.commands_url}
            semaphore = asyncio.Semaphore(concurrency)
            sqs_mix = {"sqs.ReceiveMessage": 0.14, "sqs.DeleteMessageBatch": 0.22}

            async def one(index: int) -> None:
                read, items, entries = prepared[index]
                async with semaphore:
                    await clients["dynamodb"].batch_get_item(RequestItems=read)
                    await clients["dynamodb"].transact_write_items(TransactItems=items)
                    await clients["sns"].publish_batch(
                        TopicArn=topic, PublishBatchRequestEntries=entries
                    )
                    for call in _operation_calls(sqs_mix, index):
                        await _call(clients, context, call, "", iter(()))

            started, cpu = time.monotonic(), time.process_time()
            await asyncio.gather(*(one(n) for n in range(orders)))
            elapsed, cpu = time.monotonic() - started, time.process_time() - cpu
    return {
        "orders": orders,
        "concurrency": concurrency,
        "orders_per_second": round(orders / elapsed, 1),
        # The client's CPU: what a worker doing nothing but these calls would spend.
        "client_cpu_ms_per_order": round(cpu * 1000 / orders, 2),
    }
