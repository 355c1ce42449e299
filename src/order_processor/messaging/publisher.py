"""The events topic: status changes published to SNS."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from botocore.exceptions import BotoCoreError, ClientError

from order_processor.domain.events import Event
from order_processor.exceptions import ServiceUnavailableException

if TYPE_CHECKING:
    from types_aiobotocore_sns import SNSClient
    from types_aiobotocore_sns.type_defs import (
        MessageAttributeValueTypeDef,
        PublishBatchRequestEntryTypeDef,
    )

BATCH = 10  # SNS PublishBatch takes ten entries at most


@dataclass(frozen=True)
class EventPublisher:
    """The `EventSink` over SNS: one PublishBatch per ten events, in order. A partial
    failure raises ServiceUnavailableException: the message is handed back, and its
    redelivery publishes the stored state's event again (same id)."""

    sns: SNSClient
    topic_arn: str

    async def publish(self, events: Sequence[Event]) -> None:
        for start in range(0, len(events), BATCH):
            chunk = events[start : start + BATCH]
            entries: list[PublishBatchRequestEntryTypeDef] = [
                {
                    "Id": str(index),
                    "Message": event.body(),
                    "MessageAttributes": cast(
                        "dict[str, MessageAttributeValueTypeDef]", event.attributes()
                    ),
                }
                for index, event in enumerate(chunk)
            ]
            try:
                response = await self.sns.publish_batch(
                    TopicArn=self.topic_arn, PublishBatchRequestEntries=entries
                )
            except (ClientError, BotoCoreError) as exc:
                raise ServiceUnavailableException(f"SNS is unavailable: {exc}") from exc
            failed = response.get("Failed", [])
            if failed:
                raise ServiceUnavailableException(
                    f"SNS refused {len(failed)} of {len(chunk)} event(s): {failed[0]}"
                )
