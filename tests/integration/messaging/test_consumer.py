"""The consumer runtime against a real SQS endpoint, with handlers written for the test."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from botocore.exceptions import ClientError

from order_processor.aws import aio_session, client_kwargs
from order_processor.config import Settings
from order_processor.faultproxy import FaultPlan, fault_proxy
from order_processor.messaging.consumer import Ack, Backoff, Consumer, Message, Outcome, Retry


async def depth(sqs: Any, url: str) -> tuple[int, int]:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    values = (await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names))["Attributes"]
    return int(values[names[0]]), int(values[names[1]])


def consumer(sqs: Any, url: str, handler: Any, **options: Any) -> Consumer:
    return Consumer(
        sqs=sqs,
        queue_url=url,
        handle_group=handler,
        group_of=lambda m: json.loads(m.body)["user"],
        **{"burst": True, "visibility_timeout": 30, **options},
    )


async def test_groups_run_back_to_back_and_acked_messages_are_deleted(
    sqs: Any, queue: tuple[str, str]
) -> None:
    url, _ = queue
    for n in range(6):
        await sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"user": f"u{n % 2}", "n": n}))
    seen: dict[str, list[int]] = {}

    async def handle(key: str, messages: list[Message]) -> dict[str, Outcome]:
        seen.setdefault(key, []).extend(json.loads(m.body)["n"] for m in messages)
        return {m.message_id: Ack() for m in messages}

    await asyncio.wait_for(consumer(sqs, url, handle).run(), 30)

    assert sorted(seen) == ["u0", "u1"]
    assert sorted(seen["u0"]) == [0, 2, 4]
    assert sorted(seen["u1"]) == [1, 3, 5]
    assert await depth(sqs, url) == (0, 0)


async def test_long_work_stays_invisible_through_heartbeats(
    sqs: Any, queue: tuple[str, str]
) -> None:
    url, _ = queue
    await sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"user": "slow"}))
    stolen: list[Any] = []

    async def handle(key: str, messages: list[Message]) -> dict[str, Outcome]:
        # Work three times longer than the 2 s visibility timeout; meanwhile another
        # consumer polls and must see nothing.
        for _ in range(3):
            response = await sqs.receive_message(QueueUrl=url, WaitTimeSeconds=2)
            stolen.extend(response.get("Messages", []))
        return {m.message_id: Ack() for m in messages}

    await asyncio.wait_for(consumer(sqs, url, handle, visibility_timeout=2).run(), 60)

    assert stolen == []
    assert await depth(sqs, url) == (0, 0)


async def test_retries_back_off_and_end_in_the_dead_letter_queue(
    sqs: Any, queue: tuple[str, str]
) -> None:
    url, dlq = queue
    await sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"user": "poison"}))
    receive_counts: list[int] = []

    async def handle(key: str, messages: list[Message]) -> dict[str, Outcome]:
        receive_counts.extend(m.receive_count for m in messages)
        return {m.message_id: Retry() for m in messages}

    fast = Backoff(base_seconds=1, max_seconds=1)
    await asyncio.wait_for(consumer(sqs, url, handle, backoff=fast).run(), 60)

    assert receive_counts == [1, 2]
    assert await depth(sqs, url) == (0, 0)
    moved = await sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=2)
    assert json.loads(moved["Messages"][0]["Body"]) == {"user": "poison"}


async def test_stop_hands_back_unfinished_work_at_once(sqs: Any, queue: tuple[str, str]) -> None:
    url, _ = queue
    await sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"user": "stuck"}))
    started = asyncio.Event()

    async def handle(key: str, messages: list[Message]) -> dict[str, Outcome]:
        started.set()
        await asyncio.sleep(3600)
        return {}

    runtime = consumer(sqs, url, handle, burst=False, grace_seconds=0.5)
    running = asyncio.create_task(runtime.run())
    await asyncio.wait_for(started.wait(), 30)
    runtime.stop()
    await asyncio.wait_for(running, 30)

    # Visible again at once (visibility 0), not after the 30 s timeout.
    again = await sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5)
    assert json.loads(again["Messages"][0]["Body"]) == {"user": "stuck"}


def test_backoff_grows_exponentially_with_jitter_and_a_ceiling() -> None:
    backoff = Backoff(base_seconds=2, max_seconds=60)

    delays = {n: [backoff.delay(n) for _ in range(50)] for n in (1, 2, 3, 10)}

    assert all(1 <= d <= 2 for d in delays[1])
    assert all(2 <= d <= 4 for d in delays[2])
    assert all(4 <= d <= 8 for d in delays[3])
    assert all(30 <= d <= 60 for d in delays[10])


class FlakySqs:
    """The real client, whose first receive fails as a throttled or reset call does."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.failures = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    async def receive_message(self, **arguments: Any) -> Any:
        if self.failures == 0:
            self.failures += 1
            raise ClientError(
                {"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "ReceiveMessage"
            )
        return await self.client.receive_message(**arguments)


async def test_a_stop_during_a_poll_hands_back_what_the_poll_brings_at_once(
    sqs: Any, queue: tuple[str, str]
) -> None:
    """The poll's answer is on its way when the stop comes (here: held 1 s on the way
    back): cutting it off would leave its messages invisible for the whole timeout (on a
    FIFO queue, their user's group with them)."""
    url, _ = queue
    handled: list[str] = []

    async def handle(key: str, messages: list[Message]) -> dict[str, Outcome]:
        handled.append(key)
        return {m.message_id: Ack() for m in messages}

    slow = SlowAnswerSqs(sqs)
    runtime = consumer(slow, url, handle, burst=False, grace_seconds=10, visibility_timeout=300)
    running = asyncio.create_task(runtime.run())
    await sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"user": "in-the-poll"}))
    await asyncio.wait_for(slow.answered.wait(), 30)
    runtime.stop()
    await asyncio.wait_for(running, 30)

    assert handled == []
    assert await depth(sqs, url) == (1, 0)  # visible again, not held for 300 s


class SlowAnswerSqs:
    """The real client, whose receive answers reach the caller a second late."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.answered = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    async def receive_message(self, **arguments: Any) -> Any:
        response = await self.client.receive_message(**arguments)
        if response.get("Messages"):
            self.answered.set()
            await asyncio.sleep(1)
        return response


async def test_a_failed_receive_backs_off_instead_of_stopping_the_worker(
    sqs: Any, queue: tuple[str, str]
) -> None:
    url, _ = queue
    await sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"user": "after-throttle"}))
    seen: list[str] = []

    async def handle(key: str, messages: list[Message]) -> dict[str, Outcome]:
        seen.append(key)
        return {m.message_id: Ack() for m in messages}

    flaky = FlakySqs(sqs)
    await asyncio.wait_for(consumer(flaky, url, handle).run(), 60)

    assert flaky.failures == 1
    assert seen == ["after-throttle"]


async def test_a_stop_with_a_short_grace_never_leaves_a_poll_running_at_the_server(
    sqs: Any, queue: tuple[str, str]
) -> None:
    """A poll cut off on the client's side goes on at the server, where it could take the
    very message the stop hands back and hold it for a whole visibility timeout."""
    url, _ = queue
    await sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"user": "held"}))
    started = asyncio.Event()

    async def handle(key: str, messages: list[Message]) -> dict[str, Outcome]:
        started.set()
        await asyncio.sleep(3600)
        return {}

    watched = CutPollsSqs(sqs)
    runtime = consumer(watched, url, handle, burst=False, grace_seconds=0.2)
    running = asyncio.create_task(runtime.run())
    await asyncio.wait_for(started.wait(), 30)
    await asyncio.sleep(0.1)  # the next poll is waiting at the server
    runtime.stop()
    await asyncio.wait_for(running, 30)

    assert watched.cut == 0
    again = await sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5)
    assert json.loads(again["Messages"][0]["Body"]) == {"user": "held"}


class CutPollsSqs:
    """The real client, counting the receives its caller cancelled before they answered."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.cut = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    async def receive_message(self, **arguments: Any) -> Any:
        try:
            return await self.client.receive_message(**arguments)
        except asyncio.CancelledError:
            self.cut += 1
            raise


async def test_a_stop_while_every_slot_is_busy_still_ends_within_the_grace(
    sqs: Any, queue: tuple[str, str]
) -> None:
    url, _ = queue
    await sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"user": "stuck"}))
    started = asyncio.Event()

    async def handle(key: str, messages: list[Message]) -> dict[str, Outcome]:
        started.set()
        await asyncio.sleep(3600)  # an AWS call that never answers
        return {}

    runtime = consumer(sqs, url, handle, burst=False, grace_seconds=0.5, concurrency=1)
    running = asyncio.create_task(runtime.run())
    await asyncio.wait_for(started.wait(), 30)
    runtime.stop()
    await asyncio.wait_for(running, 30)  # not after the handler, an hour from now

    again = await sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5)
    assert json.loads(again["Messages"][0]["Body"]) == {"user": "stuck"}


async def test_deletes_and_hand_backs_sqs_failed_are_made_again_and_nothing_runs_twice(
    aws_endpoint: str, sqs: Any, queue: tuple[str, str]
) -> None:
    """A third of the entries of every DeleteMessageBatch and ChangeMessageVisibilityBatch
    fail (SQS's partial failures, not the sender's fault): each is sent again, so no
    message comes back after its visibility timeout to run a second time."""
    url, _ = queue
    for n in range(20):
        await sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"user": f"u{n}", "n": n}))
    runs: list[int] = []

    async def handle(key: str, messages: list[Message]) -> dict[str, Outcome]:
        runs.extend(json.loads(m.body)["n"] for m in messages)
        return {m.message_id: Ack() for m in messages}

    plan = FaultPlan.parse(
        "partial.DeleteMessageBatch=0.34,partial.ChangeMessageVisibilityBatch=0.34"
    )
    with fault_proxy(aws_endpoint, plan, seed=3) as proxy:
        settings = Settings(endpoint_url=proxy.endpoint)
        session = await aio_session(settings)
        async with session.client("sqs", **client_kwargs(settings)) as proxied:
            await asyncio.wait_for(consumer(proxied, url, handle, visibility_timeout=2).run(), 30)
            await asyncio.sleep(2.5)  # past the visibility timeout: anything undeleted is back
            await asyncio.wait_for(consumer(proxied, url, handle, visibility_timeout=2).run(), 30)
        failed = proxy.stats().injected("partial", "DeleteMessageBatch")

    assert failed > 0
    assert sorted(runs) == list(range(20))
    assert await depth(sqs, url) == (0, 0)
