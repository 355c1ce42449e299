"""The hand-written baseline: what a user writes first, in the seed's transaction-manager
style. Synchronous boto3, one message at a time: lock the user, read, then one write after
another (a conditional debit, never below zero), publish, unlock, delete. The same
guarantees where it can: the lock and the conditional debit; no transaction, no fencing,
no resume."""

from __future__ import annotations

import json
import time
import uuid
from decimal import Decimal
from typing import Any

from bench.workload import bench_deployment, seed_users
from order_processor.aws import sync_clients
from order_processor.domain.money import buy_cost
from order_processor.store import keys
from order_processor.store.dynamo import to_attribute, to_item


def run_baseline(settings: Any, orders: int) -> float:
    dynamodb, sqs, sns = sync_clients(settings, "dynamodb", "sqs", "sns")
    resources = settings.resources()
    queue = sqs.get_queue_url(QueueName=resources.commands_queue.name)["QueueUrl"]
    topic = sns.create_topic(Name=resources.events_topic)["TopicArn"]
    users_table, orders_table, inventory = (
        resources.users_table,
        resources.orders_table,
        resources.inventory_table,
    )
    done = 0
    started = time.monotonic()
    while done < orders:
        response = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=1, WaitTimeSeconds=1)
        for message in response.get("Messages", []):
            command = json.loads(message["Body"])
            user, payload = command["username"], command["payload"]
            dynamodb.update_item(  # lock
                TableName=users_table,
                Key=keys.lock_key(user),
                UpdateExpression="SET #o = :o",
                ConditionExpression="attribute_not_exists(#o)",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":o": to_attribute("baseline")},
            )
            dynamodb.get_item(TableName=users_table, Key=keys.user_key(user))
            asset = dynamodb.get_item(TableName=inventory, Key=keys.asset_key(payload["asset_id"]))[
                "Item"
            ]
            price = Decimal(asset["price"]["N"])
            cost = buy_cost(Decimal(payload["quantity"]), price)
            order_id = payload["order_id"]
            dynamodb.put_item(
                TableName=orders_table,
                Item=to_item(
                    {
                        "PK": f"ORDER#{order_id}",
                        "SK": "ORDER",
                        "username": user,
                        "status": "PROCESSING",
                    }
                ),
            )
            dynamodb.update_item(
                TableName=users_table,
                Key=keys.balance_key(user),
                UpdateExpression="SET available = available - :c",
                ConditionExpression="available >= :c",
                ExpressionAttributeValues={":c": to_attribute(cost)},
            )
            dynamodb.put_item(
                TableName=users_table,
                Item=to_item(
                    {"PK": keys.user_pk(user), "SK": f"TX#{order_id}#payment", "amount": cost}
                ),
            )
            dynamodb.update_item(
                TableName=users_table,
                Key=keys.asset_balance_key(user, payload["asset_id"]),
                UpdateExpression="ADD available :q",
                ExpressionAttributeValues={":q": to_attribute(Decimal(payload["quantity"]))},
            )
            dynamodb.put_item(
                TableName=users_table,
                Item=to_item(
                    {
                        "PK": keys.user_pk(user),
                        "SK": f"ATX#{order_id}#buy",
                        "quantity": Decimal(payload["quantity"]),
                    }
                ),
            )
            dynamodb.update_item(
                TableName=orders_table,
                Key={"PK": {"S": f"ORDER#{order_id}"}, "SK": {"S": "ORDER"}},
                UpdateExpression="SET #s = :s",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":s": to_attribute("COMPLETED")},
            )
            sns.publish(
                TopicArn=topic,
                Message=json.dumps(
                    {"event_type": "order.completed", "order_id": order_id, "id": uuid.uuid4().hex}
                ),
            )
            dynamodb.update_item(  # unlock
                TableName=users_table,
                Key=keys.lock_key(user),
                UpdateExpression="REMOVE #o",
                ExpressionAttributeNames={"#o": "owner"},
            )
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
            done += 1
    return orders / (time.monotonic() - started)


async def baseline(endpoint: str, orders: int) -> dict[str, Any]:
    import asyncio

    async with bench_deployment(endpoint) as bench:
        users = [f"base_user_{n:04d}" for n in range(1000)]
        await seed_users(bench.clients, users, Decimal("100000000"))
        await bench.send(list(bench.orders(users, orders)))
        rate = await asyncio.to_thread(run_baseline, bench.settings, orders)
    return {"orders": orders, "orders_per_second": round(rate, 1)}
