from __future__ import annotations

from order_processor.domain.events import Event, EventType
from order_processor.messaging.follower import StatusFollower


def order_event(sequence: int, status: str, order_id: str = "o-1") -> Event:
    kinds = {
        "PENDING": EventType.ORDER_ACCEPTED,
        "PROCESSING": EventType.ORDER_PROCESSING,
        "COMPLETED": EventType.ORDER_COMPLETED,
    }
    return Event(
        event_id=f"{order_id}:{sequence}",
        event_type=kinds[status],
        order_id=order_id,
        status=status,
        sequence=sequence,
    )


def test_events_apply_in_sequence_and_stale_or_duplicate_ones_are_dropped() -> None:
    follower = StatusFollower()

    applied = [
        follower.apply(order_event(1, "PENDING")),
        follower.apply(order_event(3, "COMPLETED")),
        follower.apply(order_event(2, "PROCESSING")),  # late: older than what we have
        follower.apply(order_event(3, "COMPLETED")),  # duplicate
    ]

    assert applied == [True, True, False, False]
    assert follower.status_of("o-1") == "COMPLETED"
    assert follower.status_of("unknown") is None


def test_order_less_events_apply_once_per_id() -> None:
    follower = StatusFollower()
    deposit = Event(event_id="funds:c-1", event_type=EventType.BALANCE_DEPOSITED, username="a")

    assert [follower.apply(deposit), follower.apply(deposit)] == [True, False]


def test_a_rejection_that_names_an_order_does_not_touch_the_orders_view() -> None:
    follower = StatusFollower()
    follower.apply(order_event(3, "COMPLETED"))
    conflict = Event(
        event_id="rejected:c-9",
        event_type=EventType.COMMAND_REJECTED,
        order_id="o-1",
        data={"reason": "CONFLICTING_DUPLICATE"},
    )

    assert follower.apply(conflict) is True
    assert follower.apply(conflict) is False
    assert follower.status_of("o-1") == "COMPLETED"
