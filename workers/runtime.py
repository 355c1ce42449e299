"""What every worker program shares: logging, signals, queue URLs."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass

from order_processor.bootstrap import AwsClients
from order_processor.config import Settings
from order_processor.observability import configure_json_logs


def configure_logging(settings: Settings) -> None:
    """JSON logs, redacted: tokens, passwords and the JWT secret never reach a line."""
    secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
    configure_json_logs(logging.INFO, secrets=[secret] if secret else [])


def on_stop_signals(stop: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop)


@dataclass(frozen=True)
class Redrive:
    """The queue's own redrive policy: where dead letters go, after how many receives."""

    dead_letter_url: str | None
    max_receive_count: int | None


async def redrive_of(clients: AwsClients, queue: str) -> Redrive:
    attributes = await clients.sqs.get_queue_attributes(
        QueueUrl=queue, AttributeNames=["RedrivePolicy"]
    )
    policy = attributes.get("Attributes", {}).get("RedrivePolicy")
    if not policy:
        return Redrive(None, None)
    parsed = json.loads(policy)
    name = str(parsed["deadLetterTargetArn"]).rsplit(":", 1)[-1]
    return Redrive(await clients.queue_url(name), int(parsed["maxReceiveCount"]))


async def topic_arn(clients: AwsClients, queue: str) -> str:
    return await clients.topic_arn(queue)
