"""The events topic: status changes published to SNS."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from botocore.exceptions import BotoCoreError, ClientError

from order_processor.awserrors import is_transient
from order_processor.domain.events import Event
from order_processor.exceptions import OrderProcessorError, ServiceUnavailableException

if TYPE_CHECKING:
    from types_aiobotocore_sns import SNSClient
    from types_aiobotocore_sns.type_defs import (
        MessageAttributeValueTypeDef,
        PublishBatchRequestEntryTypeDef,
    )

BATCH = 10  # SNS PublishBatch takes ten entries at most
PUBLISH_ATTEMPTS = 5


@dataclass(frozen=True)
class EventPublisher:
    """The `EventSink` over SNS: one PublishBatch per ten events, in order. Entries SNS
    fails (a partial failure that is not the sender's fault) are published again, those
    alone, and a call that failed transiently (throttled, 5xx, cut) is made again, a few
    times with a short pause; what still fails raises ServiceUnavailableException: the
    message is handed back, and its redelivery publishes the stored state's event again
    (same id)."""

    sns: SNSClient
    topic_arn: str
    attempts: int = PUBLISH_ATTEMPTS
    pause_seconds: float = 0.05

    async def publish(self, events: Sequence[Event]) -> None:
        for start in range(0, len(events), BATCH):
            await self._publish_chunk(list(events[start : start + BATCH]))

    async def _publish_chunk(self, chunk: list[Event]) -> None:
        pending = {str(index): event for index, event in enumerate(chunk)}
        for attempt in range(self.attempts):
            if attempt:
                await asyncio.sleep(self.pause_seconds * 2**attempt * random.uniform(0.5, 1))  # noqa: S311
            try:
                failed = await self._publish_batch(pending)
            except ServiceUnavailableException:  # throttled (SNS's 429 is not botocore's)
                if attempt == self.attempts - 1:
                    raise
                continue
            pending = {entry_id: pending[entry_id] for entry_id in failed}
            if not pending:
                return
        raise ServiceUnavailableException(
            f"SNS failed {len(pending)} of {len(chunk)} event(s) {self.attempts} times"
        )

    async def _publish_batch(self, pending: dict[str, Event]) -> list[str]:
        """The ids of the entries SNS failed through no fault of ours."""
        entries: list[PublishBatchRequestEntryTypeDef] = [
            {
                "Id": entry_id,
                "Message": event.body(),
                "MessageAttributes": cast(
                    "dict[str, MessageAttributeValueTypeDef]", event.attributes()
                ),
            }
            for entry_id, event in pending.items()
        ]
        try:
            response = await self.sns.publish_batch(
                TopicArn=self.topic_arn, PublishBatchRequestEntries=entries
            )
        except (ClientError, BotoCoreError) as exc:
            if is_transient(exc):
                raise ServiceUnavailableException(f"SNS is unavailable: {exc}") from exc
            raise
        failed = response.get("Failed", [])
        ours = [f for f in failed if f.get("SenderFault")]
        if ours:  # an event we built that SNS can never take: a bug, not an outage
            raise OrderProcessorError(f"SNS refused an event: {ours[0]}")
        return [str(f["Id"]) for f in failed]
