"""The events topic under SNS's partial failures: what SNS failed is published again, that
alone; what keeps failing hands the message back; what SNS can never take is a bug."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from botocore.exceptions import ClientError

from order_processor.domain.events import Event, rejection_event
from order_processor.exceptions import OrderProcessorError, Reason, ServiceUnavailableException
from order_processor.messaging.publisher import EventPublisher


def events(count: int) -> list[Event]:
    return [
        rejection_event(
            reason=Reason.UNAUTHORIZED,
            message="no",
            message_id=f"m-{n}",
            username=None,
            command_id=None,
        )
        for n in range(count)
    ]


class FlakySns:
    """Fails the entries whose message ids it is told to, `times` times each."""

    def __init__(self, failing: dict[str, int], sender_fault: bool = False) -> None:
        self.failing = failing
        self.sender_fault = sender_fault
        self.calls: list[list[str]] = []
        self.published: list[str] = []

    async def publish_batch(self, **request: Any) -> dict[str, Any]:
        entries = request["PublishBatchRequestEntries"]
        self.calls.append([e["Id"] for e in entries])
        successful, failed = [], []
        for entry in entries:
            message_id = json.loads(entry["Message"])["data"]["message_id"]
            if self.failing.get(message_id, 0) > 0:
                self.failing[message_id] -= 1
                failed.append(
                    {"Id": entry["Id"], "Code": "InternalError", "SenderFault": self.sender_fault}
                )
            else:
                self.published.append(message_id)
                successful.append({"Id": entry["Id"], "MessageId": message_id})
        return {"Successful": successful, "Failed": failed}


def publisher(sns: FlakySns) -> EventPublisher:
    return EventPublisher(cast(Any, sns), "arn:topic", pause_seconds=0)


async def test_only_the_entries_sns_failed_are_published_again() -> None:
    sns = FlakySns({"m-1": 1, "m-3": 2})

    await publisher(sns).publish(events(12))

    assert sns.calls == [
        [str(n) for n in range(10)],
        ["1", "3"],
        ["3"],
        ["0", "1"],  # the second batch of ten
    ]
    assert sorted(sns.published) == sorted(f"m-{n}" for n in range(12))


async def test_a_final_event_sns_keeps_failing_hands_the_message_back() -> None:
    sns = FlakySns({"m-2": 99})

    with pytest.raises(ServiceUnavailableException):
        await publisher(sns).publish(events(3))

    assert len(sns.calls) == 5
    assert "m-2" not in sns.published


async def test_an_event_sns_refuses_as_ours_is_not_retried_as_an_outage() -> None:
    sns = FlakySns({"m-0": 1}, sender_fault=True)

    with pytest.raises(OrderProcessorError) as raised:
        await publisher(sns).publish(events(1))

    assert not raised.value.retryable
    assert len(sns.calls) == 1


class ThrottledSns(FlakySns):
    """Throttles its first `times` calls (429, which botocore does not retry)."""

    def __init__(self, times: int) -> None:
        super().__init__({})
        self.times = times

    async def publish_batch(self, **request: Any) -> dict[str, Any]:
        if self.times:
            self.times -= 1
            self.calls.append([])
            raise ClientError(
                cast(
                    Any,
                    {"Error": {"Code": "Throttled"}, "ResponseMetadata": {"HTTPStatusCode": 429}},
                ),
                "PublishBatch",
            )
        return await super().publish_batch(**request)


async def test_a_throttled_publish_is_made_again_in_place() -> None:
    sns = ThrottledSns(times=2)

    await publisher(sns).publish(events(3))

    assert sorted(sns.published) == ["m-0", "m-1", "m-2"]
    assert len(sns.calls) == 3
