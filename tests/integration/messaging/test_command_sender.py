"""The producer runs the gateway's CommandSender contract against a FIFO queue on the
endpoint, as RecordingSender does in tests/unit/gateway/test_contracts.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from order_processor.domain.commands import COMMANDS, AnyCommand
from order_processor.gateway.ports import CommandSender
from order_processor.messaging.producer import Producer
from tests.contracts.command_sender import CommandSenderContract
from tests.integration.messaging.conftest import queue_with_dead_letters


class ProducerWorld:
    def __init__(self, sqs: Any, url: str) -> None:
        self.sqs, self.url = sqs, url

    @property
    def sender(self) -> CommandSender:
        return Producer(self.sqs, self.url, fifo=True)

    async def received(self, count: int) -> list[tuple[str, AnyCommand]]:
        found: list[tuple[str, AnyCommand]] = []
        for _ in range(10):
            answer = await self.sqs.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=1,
                MessageSystemAttributeNames=["MessageGroupId"],
            )
            for message in answer.get("Messages", []):
                group = message["Attributes"]["MessageGroupId"]
                found.append((group, COMMANDS.validate_json(message["Body"])))
            if len(found) >= count:
                break
        return found[:count]


class TestProducerSender(CommandSenderContract):
    @pytest.fixture
    async def world(self, sqs: Any) -> AsyncIterator[ProducerWorld]:
        async with queue_with_dead_letters(sqs, fifo=True) as (url, _):
            yield ProducerWorld(sqs, url)
