"""The analytics handler: whatever a message on its queue holds, it ends acknowledged,
in the dead letters or retried, never as an exception; a final event reaches the store
once per order, a copy changes nothing."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from order_processor.analytics.parts import Contribution, Converted, Part
from order_processor.analytics.views import Views
from order_processor.domain.events import order_event
from order_processor.domain.orders import OrderStatus, OrderType
from order_processor.exceptions import ServiceUnavailableException
from order_processor.handlers.analytics import AnalyticsHandler
from order_processor.messaging.consumer import Ack, Message, Retry, ToDeadLetters
from tests.analytics import conversion, final


class MemoryStore:
    """Applies each part once (by its marker), like the DynamoDB store."""

    def __init__(self, failing: bool = False) -> None:
        self.parts: dict[str, Part] = {}
        self.failing = failing

    async def apply(self, part: Part) -> bool:
        if self.failing:
            raise ServiceUnavailableException("DynamoDB is unavailable")
        if part.marker in self.parts:
            return False
        self.parts[part.marker] = part
        return True


def message(body: str, number: int = 1) -> Message:
    return Message(f"m-{number}", f"r-{number}", body, receive_count=1)


COMPLETED = order_event(final(1, OrderType.MARKET_BUY, "0.5", "100", latency_ms=40))


async def test_a_final_event_is_applied_once_and_its_copies_acknowledged() -> None:
    store = MemoryStore()
    handler = AnalyticsHandler(store)
    outcomes = await handler.handle_group("k", [message(COMPLETED.body(), n) for n in range(3)])

    assert set(outcomes.values()) == {Ack()}
    part = store.parts["ORDER#o-1"]
    assert isinstance(part, Contribution)
    assert part.fill is not None
    assert (part.fill.amount, part.fill.currency) == (Decimal(50), "USD")
    assert part.latency == ("market", "50")  # 40 ms: under the 50 ms bound


async def test_a_fill_is_counted_in_its_orders_quote_currency() -> None:
    store = MemoryStore()
    yen = final(2, OrderType.MARKET_BUY, "0.5", "9000", asset="SOL", currency="JPY")

    assert await AnalyticsHandler(store).handle(message(order_event(yen).body())) == Ack()
    part = store.parts["ORDER#o-2"]
    assert isinstance(part, Contribution)
    assert part.fill is not None
    assert (part.fill.amount, part.fill.currency) == (Decimal(4500), "JPY")


CONVERTED = conversion("c-1", "EUR", "1000.00", "USD", "1074.60", "1.0746")


async def test_a_conversion_is_applied_once_whatever_event_id_carries_it() -> None:
    store = MemoryStore()
    handler = AnalyticsHandler(store)
    renamed = CONVERTED.model_copy(update={"event_id": "converted:other"})
    bodies = [CONVERTED.body(), CONVERTED.body(), renamed.body()]
    outcomes = await handler.handle_group("k", [message(b, n) for n, b in enumerate(bodies)])

    assert set(outcomes.values()) == {Ack()}
    (part,) = store.parts.values()
    assert isinstance(part, Converted)
    assert (part.username, part.conversion_id) == ("alice_01", "c-1")
    assert (part.conversion.sold, part.conversion.bought) == (Decimal(1000), Decimal("1074.60"))
    assert part.conversion.spread == Decimal("5.4")  # 1000 x 1.08 - 1074.60


async def test_events_that_count_nothing_are_acknowledged_without_the_store() -> None:
    store = MemoryStore(failing=True)  # any call would fail
    handler = AnalyticsHandler(store)
    queued = final(2, OrderType.LIMIT_BUY, "1", "10").evolve(status=OrderStatus.QUEUED)

    assert await handler.handle(message(order_event(queued).body())) == Ack()


async def test_a_store_outage_hands_the_event_back() -> None:
    handler = AnalyticsHandler(MemoryStore(failing=True))
    assert await handler.handle(message(COMPLETED.body())) == Retry()


def test_failure_reasons_outside_the_saga_codes_count_as_other() -> None:
    failed = final(3, OrderType.MARKET_BUY, "1", "10", OrderStatus.FAILED)
    event = order_event(failed.evolve(failure_reason="f_x'; DROP"))
    views = Views()
    views.apply(event)
    assert dict(views.counters.failures) == {"OTHER": 1}


async def test_an_event_whose_data_is_another_order_or_status_goes_to_the_dead_letters() -> None:
    store = MemoryStore()
    handler = AnalyticsHandler(store)
    document = json.loads(COMPLETED.body())
    other_order = {**document, "order_id": "o-2"}
    other_status = {**document, "data": {**document["data"], "status": "FAILED"}}
    other_user = {**document, "username": "mallory_01"}
    no_total = {**document, "data": {**document["data"], "total_amount": None}}
    bad_quote = {**document, "data": {**document["data"], "quote_currency": "X#Y"}}
    for forged in (other_order, other_status, other_user, no_total, bad_quote):
        assert await handler.handle(message(json.dumps(forged))) == ToDeadLetters()
    assert store.parts == {}


@pytest.mark.parametrize(
    "change",
    [
        {"username": None},
        {"data": {**CONVERTED.data, "sell": "USD"}},  # to the same currency
        {"data": {**CONVERTED.data, "bought": "0"}},
        {"data": {**CONVERTED.data, "spread_percent": "100"}},
        {"data": {**CONVERTED.data, "buy": "ZZZ"}},
    ],
)
async def test_a_conversion_without_what_the_views_need_goes_to_the_dead_letters(
    change: dict[str, Any],
) -> None:
    store = MemoryStore()
    forged = CONVERTED.model_copy(update=change)

    assert await AnalyticsHandler(store).handle(message(forged.body())) == ToDeadLetters()
    assert store.parts == {}


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(max_size=30)
    | st.sampled_from(["NaN", "Infinity", "-1", "1e400", "0", "BTC", "COMPLETED", "x" * 3000]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
valid = json.loads(COMPLETED.body())


def forged(field: str, value: Any, in_data: bool) -> str:
    document = json.loads(COMPLETED.body())
    if in_data:
        document["data"][field] = value
    else:
        document[field] = value
    return json.dumps(document, allow_nan=True)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=200),
        json_values.map(lambda v: json.dumps(v, allow_nan=True)),
        st.tuples(st.sampled_from(sorted(valid)), json_values).map(
            lambda fv: forged(fv[0], fv[1], in_data=False)
        ),
        st.tuples(st.sampled_from(sorted(valid["data"])), json_values).map(
            lambda fv: forged(fv[0], fv[1], in_data=True)
        ),
    )
)
async def test_any_body_ends_acknowledged_or_in_the_dead_letters(body: str) -> None:
    store = MemoryStore()
    outcome = await AnalyticsHandler(store).handle(message(body))

    assert outcome in (Ack(), ToDeadLetters())
    for part in store.parts.values():  # what reached the store is a well-formed fill
        assert isinstance(part, Contribution)
        assert part.fill is None or (part.fill.quantity > 0 and part.fill.amount >= 0)
        assert part.order_id == "o-1"
