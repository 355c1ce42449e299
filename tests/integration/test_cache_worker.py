"""The cache worker against the emulator and a real Redis: events published on the topic
reach its queue (raw delivery) and the read model, each once, the newest state kept
whatever their order; a body that is not an event is dropped, not retried."""

from __future__ import annotations

import asyncio
import uuid

from order_processor.bootstrap.cache import open_read_model
from order_processor.bootstrap.clients import AwsClients, open_clients
from order_processor.bootstrap.programs import serve_cache
from order_processor.bootstrap.runtime import Lifecycle
from order_processor.config import Settings
from order_processor.domain.events import order_event
from order_processor.domain.orders import OrderStatus
from order_processor.messaging.publisher import EventPublisher
from order_processor.readmodel.ports import Document
from tests.builders import an_order
from tests.contracts.read_model import deposit


async def until_waiting(clients: AwsClients, url: str, count: int) -> None:
    """SNS delivers to the queue a moment after the publish answers."""
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        attributes = await clients.sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        if int(attributes["Attributes"]["ApproximateNumberOfMessages"]) >= count:
            return
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.1)


async def test_events_on_the_topic_reach_the_read_model_once_and_newest_first(
    provisioned: Settings, redis_url: str
) -> None:
    settings = provisioned.overridden({"redis_url": redis_url})
    trader = f"cache_{uuid.uuid4().hex[:10]}"
    placed = an_order(username=trader)
    queued = placed.evolve(status=OrderStatus.QUEUED, sequence=1)
    completed = queued.evolve(status=OrderStatus.COMPLETED, sequence=2)
    funded = deposit(trader)
    events = [order_event(completed), order_event(queued), order_event(queued), funded]
    async with open_clients(settings) as clients:
        url = await clients.queue_url(settings.resources().order_cache_queue.name)
        topic = await clients.topic_arn(url)
        await EventPublisher(clients.sns, topic).publish(events)
        await clients.sqs.send_message(QueueUrl=url, MessageBody="{not an event")
        await until_waiting(clients, url, len(events) + 1)
        async with open_read_model(settings) as model:
            generation = await model.generation(trader)
            await model.fill_document(trader, Document.BALANCES, "{}", generation)

            await asyncio.wait_for(
                serve_cache(settings, Lifecycle(asyncio.Event()), burst=True), 30
            )

            assert await model.order(placed.order_id) == completed
            streamed = (await model.events_after(trader, None, 10)).events
            assert sorted(s.event.event_id for s in streamed) == sorted(
                {e.event_id for e in events}
            )
            assert await model.document(trader, Document.BALANCES) is None
        left = await clients.sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )
        assert left["Attributes"] == {
            "ApproximateNumberOfMessages": "0",
            "ApproximateNumberOfMessagesNotVisible": "0",
        }
