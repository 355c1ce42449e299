"""The messaging tests' SQS client and queues, on the emulator."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from order_processor.aws import aio_session, client_kwargs
from order_processor.config import Settings


@pytest.fixture
async def sqs(aws_endpoint: str) -> AsyncIterator[Any]:
    settings = Settings(endpoint_url=aws_endpoint)
    async with (await aio_session(settings)).client("sqs", **client_kwargs(settings)) as client:
        yield client


@contextlib.asynccontextmanager
async def queue_with_dead_letters(
    sqs: Any, *, fifo: bool = False, max_receives: int = 2
) -> AsyncIterator[tuple[str, str]]:
    """A queue and its DLQ (after `max_receives` receives), deleted afterwards."""
    name = f"c{uuid.uuid4().hex[:12]}"
    suffix = ".fifo" if fifo else ""
    attributes = {"FifoQueue": "true", "ContentBasedDeduplication": "true"} if fifo else {}
    dlq = (await sqs.create_queue(QueueName=f"{name}-dlq{suffix}", Attributes=attributes))[
        "QueueUrl"
    ]
    arn = (await sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"]))["Attributes"][
        "QueueArn"
    ]
    policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": max_receives})
    url = (
        await sqs.create_queue(
            QueueName=f"{name}{suffix}", Attributes={**attributes, "RedrivePolicy": policy}
        )
    )["QueueUrl"]
    try:
        yield url, dlq
    finally:
        await sqs.delete_queue(QueueUrl=url)
        await sqs.delete_queue(QueueUrl=dlq)


@pytest.fixture
async def queue(sqs: Any) -> AsyncIterator[tuple[str, str]]:
    """A standard queue with a DLQ after 2 receives."""
    async with queue_with_dead_letters(sqs) as urls:
        yield urls
