"""Each role of the CloudFormation template allows exactly the calls its program makes.

The programs run in this process (the same `serve_*` functions `worker` runs), each with its
clients' AWS calls counted by `aws_calls_total` as in production, and recorded beside the
counter with the resource each call names. Every recorded call, translated into the IAM
actions and ARNs AWS authorises it by, must be allowed by that program's role in
deploy/aws/order-processor.json; every grant of the role must have been used here, or be
listed below: RARE with the path that needs it, OVERGRANTED where the README's table grants
more than any path needs (to settle in the README).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from order_processor.bootstrap import compose, open_clients, programs
from order_processor.bootstrap.gateway import serve_gateway
from order_processor.bootstrap.readiness import checks_for
from order_processor.bootstrap.runtime import Lifecycle
from order_processor.config import Settings
from order_processor.deployment.emulator import free_port
from order_processor.deployment.iam import Grant
from order_processor.domain.base import utc_now
from order_processor.messaging.producer import Producer
from order_processor.observability import Metrics, count_aws_calls
from tests.cloudformation import CACHE_NETWORK, Stack
from tests.e2e.gateway_world import PASSWORD
from tests.e2e.harness import Harness

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "aws" / "order-processor.json"
ACCOUNT = "111122223333"
# Where the programs' item actions come from in a transaction or a batch.
TRANSACTION_ITEMS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "ConditionCheck": "ConditionCheckItem",
    "Delete": "DeleteItem",
}
# Granted, and needed only on paths this scenario does not take.
RARE: dict[str, dict[str, str]] = {
    "order-worker": {
        "sqs:SendMessage on order-commands-dlq": "a last delivery the worker moves itself",
        "sqs:ChangeMessageVisibility on order-commands": "a retry's backoff, a busy lock, "
        "the hand-back at SIGTERM",
        "dynamodb:ConditionCheckItem on inventory": "a trailing stop placed at the price it "
        "read (no trailing stop here)",
    },
    "limit-matcher": {
        "sqs:ChangeMessageVisibility on price-updates": "a retry's backoff, the hand-back",
        "dynamodb:UpdateItem on orders": "a trailing stop's move (no trailing stop here)",
    },
    "analytics-worker": {
        "sqs:ChangeMessageVisibility on order-analytics": "a retry's backoff, the hand-back",
        "dynamodb:Query on analytics": "a fill that arrives after a later one (the position "
        "is rebuilt from every fill)",
    },
    "cache-worker": {
        "sqs:ChangeMessageVisibility on order-cache": "Redis away: the hand-back's backoff",
    },
    "gateway": {},
    "producers": {},
    "expiry-sweeper": {},
}
# Granted by the README's table, and no code path found that needs them: over-grants to
# settle in the README (and deploy/iam), listed here so that the test stays exact about
# everything else.
OVERGRANTED: dict[str, dict[str, str]] = {}


class Recorder:
    """Every call of the clients it is attached to, by the program running them."""

    def __init__(self) -> None:
        self.program = ""
        self.calls: dict[str, list[tuple[str, str, dict[str, Any]]]] = defaultdict(list)
        # The calls of the clients the bootstrap counted, and the counters themselves.
        self.counted: dict[str, Counter[tuple[str, str]]] = defaultdict(Counter)
        self.meters: dict[str, list[Metrics]] = defaultdict(list)

    def attach(self, client: Any, *, counted: bool = False) -> None:
        service = client.meta.service_model.service_name
        program = self.program

        def record(params: dict[str, Any], model: Any, **_: Any) -> None:
            self.calls[program].append((service, model.name, params))
            if counted:
                self.counted[program][(service, model.name)] += 1

        client.meta.events.register("before-parameter-build", record)

    def count_aws_calls(self, client: Any, metrics: Metrics) -> None:
        """What the programs' bootstrap calls on each client: the counter, and the record."""
        COUNT_AWS_CALLS(client, metrics)
        self.attach(client, counted=True)
        if all(known is not metrics for known in self.meters[self.program]):
            self.meters[self.program].append(metrics)  # one per run, for its three clients

    def grants(self, program: str, stack: Stack) -> set[Grant]:
        found: set[Grant] = set()
        for service, operation, params in self.calls[program]:
            found |= set(_authorised(service, operation, params, stack))
        return found

    def metered(self, program: str) -> Counter[tuple[str, str]]:
        """`aws_calls_total` of the program's runs, by (service, operation)."""
        found: Counter[tuple[str, str]] = Counter()
        for metrics in self.meters[program]:
            for family in metrics.registry.collect():
                for sample in family.samples:
                    if sample.name == "order_processor_aws_calls_total":
                        key = (sample.labels["service"], sample.labels["operation"])
                        found[key] += int(sample.value)
        return found


COUNT_AWS_CALLS = count_aws_calls


def _authorised(
    service: str, operation: str, params: dict[str, Any], stack: Stack
) -> Iterator[Grant]:
    """The (action, ARN) pairs IAM checks for one call."""
    where = f"{stack.region}:{stack.account}"
    if service == "sqs":
        queue = params.get("QueueName") or str(params["QueueUrl"]).rsplit("/", 1)[-1]
        yield f"sqs:{operation.removesuffix('Batch')}", f"arn:aws:sqs:{where}:{queue}"
    elif service == "sns":
        topic = str(params["TopicArn"]).rsplit(":", 1)[-1]
        yield f"sns:{operation.removesuffix('Batch')}", f"arn:aws:sns:{where}:{topic}"
    elif operation == "TransactWriteItems":
        for item in params["TransactItems"]:
            [(kind, request)] = item.items()
            table = f"arn:aws:dynamodb:{where}:table/{request['TableName']}"
            yield f"dynamodb:{TRANSACTION_ITEMS[kind]}", table
    elif operation in {"BatchGetItem", "BatchWriteItem"}:
        for table in params["RequestItems"]:
            yield f"dynamodb:{operation}", f"arn:aws:dynamodb:{where}:table/{table}"
    else:
        index = f"/index/{params['IndexName']}" if "IndexName" in params else ""
        table = f"arn:aws:dynamodb:{where}:table/{params['TableName']}{index}"
        yield f"dynamodb:{operation}", table


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recording = Recorder()
    monkeypatch.setattr(compose, "count_aws_calls", recording.count_aws_calls)
    return recording


def role_grants(stack: Stack, program: str) -> set[Grant]:
    [role] = [
        role
        for role in stack.resources("AWS::IAM::Role").values()
        if role["Policies"][0]["PolicyName"] == program
    ]
    grants: set[Grant] = set()
    for statement in role["Policies"][0]["PolicyDocument"]["Statement"]:
        for action in statement["Action"]:
            grants |= {(action, resource) for resource in statement["Resource"]}
    return grants


def described(grant: Grant, prefix: str) -> str:
    """`sqs:SendMessage on order-commands-dlq`: a grant as RARE lists it."""
    action, arn = grant
    name = arn.rsplit(":", 1)[-1].removeprefix("table/").removeprefix(prefix + "-")
    return f"{action} on {name.removesuffix('.fifo')}"


async def run(recorder: Recorder, program: str, serve: Any, settings: Settings, **kw: Any) -> None:
    recorder.program = program
    life = Lifecycle(asyncio.Event())
    await asyncio.wait_for(serve(settings, life, **kw), 30)


async def ready(recorder: Recorder, program: str, kind: str, settings: Settings) -> None:
    """The program's readiness checks, as /readyz runs them, on clients recorded for it."""
    recorder.program = program
    async with open_clients(settings) as clients:
        for client in (clients.dynamodb, clients.sqs, clients.sns):
            recorder.attach(client)
        for check in checks_for(kind, clients):
            await check.probe()


async def test_each_role_allows_exactly_the_calls_its_program_makes(
    harness: Harness, recorder: Recorder, redis_url: str
) -> None:
    settings = harness.settings
    resources = settings.resources()
    await harness.create_user("iam_user", usd="1000", password=PASSWORD)
    await harness.add_asset("BTC", "100")
    triggered = harness.limit("iam_user", "buy", "BTC", "1", "90")
    expiring = harness.limit(
        "iam_user", "buy", "BTC", "1", "50", expires_at=(utc_now() + timedelta(days=1)).isoformat()
    )
    # The producers: commands and a price, as the CLI and the feed send them.
    recorder.program = "producers"
    async with open_clients(settings) as clients:
        for client in (clients.dynamodb, clients.sqs, clients.sns):
            recorder.attach(client)
        commands = Producer(clients.sqs, await clients.queue_url(resources.commands_queue.name))
        assert commands.fifo
        await commands.send(harness.factory.deposit("iam_user", "100"))
        await commands.send_batch(
            [
                harness.market("iam_user", "buy", "BTC", "1"),
                triggered,
                expiring,
                harness.market("iam_user", "sell", "BTC", "0.5"),
            ]
        )
        prices = await clients.queue_url(resources.price_updates_queue.name)
        await Producer(clients.sqs, prices, fifo=False).send(
            harness.factory.update_price("BTC", "85")
        )
    # Not a producer's: input the programs reject or cannot count.
    await harness.clients.sqs.send_message(QueueUrl=prices, MessageBody="{broken")
    analytics_url = (
        await harness.clients.sqs.get_queue_url(QueueName=resources.analytics_queue.name)
    )["QueueUrl"]
    await harness.clients.sqs.send_message(QueueUrl=analytics_url, MessageBody="{broken")

    await run(recorder, "order-worker", programs.serve_order_worker, settings, burst=True)
    await run(
        recorder, "limit-matcher", programs.serve_limit_matcher, settings, burst=True, rematch=1
    )
    later = datetime.now(UTC) + timedelta(days=2)
    await run(
        recorder,
        "expiry-sweeper",
        programs.serve_sweeper,
        settings,
        interval=1,
        once=True,
        clock=lambda: later,
    )
    await run(recorder, "order-worker", programs.serve_order_worker, settings, burst=True)
    await until_delivered(harness, analytics_url)
    await run(recorder, "analytics-worker", programs.serve_analytics, settings, burst=True)
    await until_delivered(
        harness, await harness.clients.queue_url(resources.order_cache_queue.name)
    )
    with_redis = settings.overridden({"redis_url": redis_url})
    await run(recorder, "cache-worker", programs.serve_cache, with_redis, burst=True)
    await serve_gateway_requests(recorder, settings, expiring.payload.order_id)
    for program, kind in [
        ("gateway", "gateway"),
        ("order-worker", "orders"),
        ("limit-matcher", "limit-matcher"),
        ("expiry-sweeper", "expiry-sweeper"),
        ("analytics-worker", "analytics"),
        ("cache-worker", "cache"),
    ]:
        await ready(recorder, program, kind, settings)

    assert (await harness.order(triggered.payload.order_id)).status.value == "COMPLETED"
    # The sweeper, its clock two days ahead, found the order due (the worker, whose clock
    # decides, keeps it QUEUED: the sweeper's calls are what matters here).
    [sweeper] = recorder.meters["expiry-sweeper"]
    assert sweeper.value("orders_expired_total") == 1
    stack = Stack(
        json.loads(TEMPLATE.read_text()),
        {"Prefix": settings.prefix, "OidcProvider": "oidc.example/id/X", **CACHE_NETWORK},
        region=settings.region,
        account=ACCOUNT,
    )
    disallowed, unexplained = {}, {}
    for program, rare in RARE.items():
        made, allowed = recorder.grants(program, stack), role_grants(stack, program)
        assert made, program
        disallowed[program] = sorted(described(g, settings.prefix) for g in made - allowed)
        used = {described(grant, settings.prefix) for grant in made}
        assert not used & set(OVERGRANTED.get(program, {})), f"{program}: OVERGRANTED is stale"
        unused = {described(grant, settings.prefix) for grant in allowed - made}
        unexplained[program] = sorted(unused - set(rare) - set(OVERGRANTED.get(program, {})))
    # Calls the role would refuse (AccessDenied in production):
    assert disallowed == {program: [] for program in RARE}
    # Grants nothing here used, nor listed in RARE with the path that needs them:
    assert unexplained == {program: [] for program in RARE}
    # What was recorded is what the programs' own counters counted.
    for program in RARE.keys() - {"producers"}:
        assert recorder.metered(program) == recorder.counted[program], program


async def serve_gateway_requests(recorder: Recorder, settings: Settings, order_id: str) -> None:
    """The gateway, in this process, answering each kind of request of a user's (reads
    without a read model: each of them DynamoDB's), then stopped."""
    recorder.program = "gateway"
    life = Lifecycle(asyncio.Event())
    port = free_port()
    serving = asyncio.create_task(serve_gateway(settings.overridden({"gateway_port": port}), life))
    try:
        await asyncio.wait_for(life.started.wait(), 30)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            session = await client.post(
                "/v1/sessions", json={"username": "iam_user", "password": PASSWORD}
            )
            assert session.status_code == 200, session.text
            auth = {"Authorization": f"Bearer {session.json()['access_token']}"}
            answers = [
                await client.get(path, headers=auth)
                for path in ("/v1/balances", "/v1/portfolio", "/v1/prices", "/v1/orders")
            ]
            answers += [
                await client.get(f"/v1/orders/{order_id}", headers=auth),
                await client.delete(f"/v1/orders/{order_id}", headers=auth),
                await client.post(
                    "/v1/orders",
                    json={"order_type": "MARKET_BUY", "asset_id": "BTC", "quantity": "1"},
                    headers={**auth, "Idempotency-Key": "iam-gateway-order"},
                ),
                await client.post(
                    "/v1/withdrawals",
                    json={"amount": "1.00", "currency": "USD"},
                    headers={**auth, "Idempotency-Key": "iam-gateway-withdrawal"},
                ),
            ]
        assert [a.status_code for a in answers] == [200] * 5 + [202] * 3, answers
    finally:
        life.stopping.set()
        await asyncio.wait_for(serving, 30)


async def until_delivered(harness: Harness, url: str) -> None:
    """Wait for SNS to deliver the final events (completed, expired) to the analytics queue."""
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        attributes = await harness.clients.sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        if int(attributes["Attributes"]["ApproximateNumberOfMessages"]) >= 4:
            return
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.2)
