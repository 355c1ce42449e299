"""Helpers for tests that talk to a live endpoint."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from order_processor.aws import sync_clients
from order_processor.config import Settings
from order_processor.deployment.provision import Provisioner

CLI = str(Path(sys.executable).parent / "order-processor")


class Clients:
    def __init__(self, settings: Settings) -> None:
        self.dynamodb, self.sqs, self.sns = sync_clients(settings, "dynamodb", "sqs", "sns")

    def provisioner(self) -> Provisioner:
        return Provisioner(self.dynamodb, self.sqs, self.sns)

    def queue_url(self, name: str) -> str:
        url: str = self.sqs.get_queue_url(QueueName=name)["QueueUrl"]
        return url


@contextlib.contextmanager
def deployed(settings: Settings) -> Iterator[Settings]:
    """A fully provisioned deployment under the settings' prefix, deleted afterwards: what
    every fixture of a deployment (integration's `provisioned`, e2e's `deployment`) is."""
    Clients(settings).provisioner().apply(settings.resources())
    try:
        yield settings
    finally:
        destroy(settings)


def destroy(settings: Settings) -> None:
    """Delete every resource of the deployment; what is already gone is skipped."""
    clients = Clients(settings)
    resources = settings.resources()
    for table in resources.tables:
        _ignore_missing(clients.dynamodb.delete_table, TableName=table.name)
    for queue in resources.queues:
        with contextlib.suppress(ClientError):
            clients.sqs.delete_queue(QueueUrl=clients.queue_url(queue.name))
    for page in clients.sns.get_paginator("list_topics").paginate():
        for topic in page["Topics"]:
            if topic["TopicArn"].rsplit(":", 1)[-1] in resources.topics:
                clients.sns.delete_topic(TopicArn=topic["TopicArn"])


def _ignore_missing(call: Any, **kwargs: Any) -> None:
    try:
        call(**kwargs)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ORDER_PROCESSOR_")}
    environment.pop("AWS_ENDPOINT_URL", None)
    environment.update(env or {})
    return subprocess.run(
        [CLI, *args],
        env=environment,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def cli_env(settings: Settings) -> dict[str, str]:
    assert settings.endpoint_url is not None
    return {"AWS_ENDPOINT_URL": settings.endpoint_url, "ORDER_PROCESSOR_PREFIX": settings.prefix}
