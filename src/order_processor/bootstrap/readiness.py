"""What each long-running program needs to be ready: every table it reads or writes, every
queue it reads or sends to, the topic it publishes to (the cache worker's Redis too, once
its program has the client). Each check is one cheap call that
fails when the resource is missing, not yet active, or not allowed to this identity."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from order_processor.bootstrap.clients import AwsClients
from order_processor.observability import Check

PROGRAMS = ("orders", "limit-matcher", "expiry-sweeper", "analytics", "cache", "gateway")
_Probe = Callable[[], Awaitable[None]]


def checks_for(program: str, clients: AwsClients) -> list[Check]:
    resources = clients.resources
    commands = resources.commands_queue.name
    if program == "orders":
        tables = [resources.users_table, resources.orders_table, resources.inventory_table]
        dead_letters = resources.commands_queue.dead_letter
        queues = [commands] + ([dead_letters.name] if dead_letters else [])
        topic = True
    elif program == "limit-matcher":
        tables = [resources.inventory_table, resources.orders_table]
        queues = [resources.price_updates_queue.name, commands]
        topic = True
    elif program == "expiry-sweeper":
        tables, queues, topic = [resources.orders_table], [commands], False
    elif program == "analytics":
        tables, queues, topic = [resources.analytics_table], [resources.analytics_queue.name], False
    elif program == "cache":  # and Redis, added by the program (bootstrap.programs)
        tables, queues, topic = [], [resources.order_cache_queue.name], False
    elif program == "gateway":  # and Redis, reported but not required (bootstrap.gateway)
        tables = [resources.users_table, resources.orders_table, resources.inventory_table]
        queues, topic = [commands], False
    else:
        raise ValueError(f"unknown program {program!r}: one of {', '.join(PROGRAMS)}")
    checks = [Check(f"table {name}", _table(clients, name)) for name in tables]
    checks += [Check(f"queue {name}", _queue(clients, name)) for name in queues]
    if topic:
        checks.append(Check(f"topic {resources.events_topic}", _topic(clients, commands)))
    return checks


def _table(clients: AwsClients, name: str) -> _Probe:
    async def probe() -> None:
        described = await clients.dynamodb.describe_table(TableName=name)
        status = described["Table"]["TableStatus"]
        if status not in ("ACTIVE", "UPDATING"):
            raise RuntimeError(f"table {name} is {status}")

    return probe


def _queue(clients: AwsClients, name: str) -> _Probe:
    async def probe() -> None:
        url = await clients.queue_url(name)
        await clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])

    return probe


def _topic(clients: AwsClients, commands_queue: str) -> _Probe:
    async def probe() -> None:
        arn = await clients.topic_arn(await clients.queue_url(commands_queue))
        await clients.sns.get_topic_attributes(TopicArn=arn)

    return probe
