"""The events topic: status changes published to SNS."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from order_processor.domain.events import Event


@dataclass(frozen=True)
class EventPublisher:
    sns: Any
    topic_arn: str

    async def publish(self, event: Event) -> None:
        await self.sns.publish(
            TopicArn=self.topic_arn,
            Message=event.body(),
            MessageAttributes=event.attributes(),
        )
