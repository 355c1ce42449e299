"""The ceiling: the same per-order mix of AWS calls a worker makes, against the same
emulator, as fast as plain aioboto3 can issue them; no framework, no logic."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from decimal import Decimal
from typing import Any

import aioboto3

from bench.workload import bench_deployment, seed_users
from order_processor.aws import client_kwargs
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


async def ceiling(
    endpoint: str, mix: dict[str, float], orders: int, concurrency: int = 64
) -> dict[str, Any]:
    async with bench_deployment(endpoint) as bench:
        users = [f"ceil_user_{n:04d}" for n in range(1000)]
        await seed_users(bench.clients, users, Decimal("100000000"))
        resources = bench.settings.resources()
        topic = (await bench.clients.sns.create_topic(Name=resources.events_topic))["TopicArn"]
        for start in range(0, orders, 10):  # the messages the receives will find
            await bench.clients.sqs.send_message_batch(
                QueueUrl=bench.commands_url,
                Entries=[
                    {"Id": str(i), "MessageBody": "{}", "MessageGroupId": users[(start + i) % 1000]}
                    for i in range(10)
                ],
            )
        session = aioboto3.Session()
        kwargs = client_kwargs(bench.settings)
        async with (
            session.client("dynamodb", **kwargs) as dynamodb,
            session.client("sqs", **kwargs) as sqs,
            session.client("sns", **kwargs) as sns,
        ):
            clients = {"dynamodb": dynamodb, "sqs": sqs, "sns": sns}
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
                    for call in _operation_calls(mix, index):
                        await _call(clients, context, call, user)

            started = time.monotonic()
            await asyncio.gather(*(one(n) for n in range(orders)))
            elapsed = time.monotonic() - started
    return {
        "orders": orders,
        "concurrency": concurrency,
        "orders_per_second": round(orders / elapsed, 1),
    }


async def _call(clients: dict[str, Any], context: dict[str, str], call: str, user: str) -> None:
    service, operation = call.split(".", 1)
    client = clients[service]
    if operation == "GetItem":
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
        await client.transact_write_items(TransactItems=_transaction(context, user))
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
    ]
