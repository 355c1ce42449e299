"""What every worker program shares: logging, signals, queue URLs."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from order_processor.config import Settings
from order_processor.dependencies import AwsClients
from order_processor.observability import configure_json_logs


def configure_logging(settings: Settings) -> None:
    """JSON logs, redacted: tokens, passwords and the JWT secret never reach a line."""
    secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
    configure_json_logs(logging.INFO, secrets=[secret] if secret else [])


def on_stop_signals(stop: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop)


async def topic_arn(clients: AwsClients, queue: str) -> str:
    """The events topic's ARN, derived from a queue's ARN (same region and account),
    without creating anything."""
    attributes = await clients.sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    _, _, _, region, account, _ = attributes["Attributes"]["QueueArn"].split(":")
    return f"arn:aws:sns:{region}:{account}:{clients.resources.events_topic}"
