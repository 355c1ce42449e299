"""The cache handler: whatever a message on its queue holds, it ends acknowledged or
handed back, never as an exception; an event reaches the read model once, a copy is
counted as one, a message that is not an event is dropped, Redis away is waited out."""

from __future__ import annotations

import pytest

from order_processor.domain.events import order_event
from order_processor.domain.orders import OrderStatus
from order_processor.handlers.cache import CacheHandler
from order_processor.messaging.consumer import Ack, Message, Retry
from order_processor.observability import CACHE, Metrics
from order_processor.readmodel.memory import MemoryReadModel
from tests.builders import an_order

QUEUED = an_order(username="ann_trader").evolve(status=OrderStatus.QUEUED, sequence=1)


def message(body: str, number: int = 1) -> Message:
    return Message(f"m-{number}", f"r-{number}", body, receive_count=1)


async def test_an_event_is_applied_once_and_its_copies_acknowledged() -> None:
    model, metrics = MemoryReadModel(), Metrics(CACHE)
    handler = CacheHandler(model, metrics)
    body = order_event(QUEUED).body()
    outcomes = await handler.handle_group("k", [message(body, n) for n in range(3)])

    assert set(outcomes.values()) == {Ack()}
    assert await model.order(QUEUED.order_id) == QUEUED
    assert len((await model.events_after("ann_trader", None, 10)).events) == 1
    assert metrics.value("cache_events_total", outcome="applied") == 1
    assert metrics.value("cache_events_total", outcome="duplicate") == 2


@pytest.mark.parametrize(
    "body",
    ["not json", "{}", '{"event_id": "e1", "event_type": "order.exploded"}', "[]", ""],
)
async def test_a_message_that_is_not_an_event_is_dropped_and_counted(body: str) -> None:
    model, metrics = MemoryReadModel(), Metrics(CACHE)
    outcome = await CacheHandler(model, metrics).handle(message(body))

    assert outcome == Ack()
    assert metrics.value("cache_events_total", outcome="malformed") == 1
    assert model.counter == 0


async def test_an_event_without_a_user_changes_nothing() -> None:
    model, metrics = MemoryReadModel(), Metrics(CACHE)
    body = order_event(QUEUED).model_copy(update={"username": None}).body()
    outcome = await CacheHandler(model, metrics).handle(message(body))

    assert outcome == Ack()
    assert metrics.value("cache_events_total", outcome="ignored") == 1
    assert await model.order(QUEUED.order_id) is None


async def test_an_event_is_handed_back_while_the_read_model_is_away() -> None:
    model, metrics = MemoryReadModel(available=False), Metrics(CACHE)
    handler = CacheHandler(model, metrics)
    body = order_event(QUEUED).body()

    assert await handler.handle(message(body)) == Retry()
    assert metrics.value("cache_events_total", outcome="unavailable") == 1
    model.available = True
    assert await handler.handle(message(body)) == Ack()
    assert await model.order(QUEUED.order_id) == QUEUED
