"""Orders over HTTP: placed under the authenticated user with a minted id, read back,
listed, cancelled; another user's ids answer 404."""

from __future__ import annotations

from typing import Any

import pytest

from order_processor.domain.commands import AnyCommand, CancelOrder, PlaceOrder
from order_processor.domain.events import Event, EventType, rejection_event
from order_processor.domain.orders import Order, OrderStatus
from order_processor.exceptions import Reason
from tests.unit.gateway.conftest import World

MARKET_BUY = {"order_type": "MARKET_BUY", "asset_id": "BTC", "quantity": "0.5"}


async def place(
    world: World, body: dict[str, Any], key: str = "key-0001", user: str = "alice1"
) -> Any:
    headers = {**world.auth(user), "Idempotency-Key": key}
    return await world.client.post("/v1/orders", json=body, headers=headers)


async def test_placing_an_order_sends_it_under_the_user_with_a_minted_id(world: World) -> None:
    answer = await place(world, MARKET_BUY)

    assert answer.status_code == 202
    order = answer.json()
    assert answer.headers["location"] == f"/v1/orders/{order['order_id']}"
    assert (order["status"], order["username"], order["sequence"]) == ("PENDING", "alice1", 0)
    [command] = world.sender.sent
    assert isinstance(command, PlaceOrder)
    assert command.command_id == "key-0001"
    assert command.username == "alice1"
    assert command.payload.order_id == order["order_id"]
    assert command.auth == world.token("alice1")


async def test_every_order_type_is_accepted_with_its_fields(world: World) -> None:
    bodies = [
        {
            "order_type": "LIMIT_BUY",
            "asset_id": "BTC",
            "quantity": "1",
            "limit_price": "100",
            "expires_at": "2030-01-01T00:00:00Z",
        },
        {"order_type": "STOP_SELL", "asset_id": "BTC", "quantity": "1", "stop_price": "90"},
        {
            "order_type": "TRAILING_STOP_SELL",
            "asset_id": "BTC",
            "quantity": "1",
            "trail_percent": "5",
        },
        {"order_type": "TAKE_PROFIT_SELL", "asset_id": "BTC", "quantity": "1", "stop_price": "200"},
        {**MARKET_BUY, "pay_currency": "EUR"},
    ]
    for index, body in enumerate(bodies):
        answer = await place(world, body, key=f"type-{index}")
        assert answer.status_code == 202, answer.text
    assert [c.payload.order_type for c in world.sender.sent if isinstance(c, PlaceOrder)] == [
        "LIMIT_BUY",
        "STOP_SELL",
        "TRAILING_STOP_SELL",
        "TAKE_PROFIT_SELL",
        "MARKET_BUY",
    ]


async def test_a_retry_with_the_same_key_and_body_answers_the_same_and_sends_nothing(
    world: World,
) -> None:
    first = await place(world, MARKET_BUY)
    again = await place(world, MARKET_BUY)

    assert again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert len(world.sender.sent) == 1


async def test_the_same_key_with_another_body_is_a_conflict(world: World) -> None:
    await place(world, MARKET_BUY)
    other = await place(world, {**MARKET_BUY, "quantity": "2"})

    assert other.status_code == 409
    assert other.headers["content-type"] == "application/problem+json"
    assert "Idempotency-Key" in other.json()["detail"]
    assert len(world.sender.sent) == 1


async def test_two_users_with_the_same_key_get_different_orders(world: World) -> None:
    mine = (await place(world, MARKET_BUY, user="alice1")).json()
    theirs = (await place(world, MARKET_BUY, user="bobby1")).json()

    assert mine["order_id"] != theirs["order_id"]


async def test_a_missing_or_malformed_idempotency_key_is_a_bad_request_naming_it(
    world: World,
) -> None:
    missing = await world.client.post("/v1/orders", json=MARKET_BUY, headers=world.auth())
    malformed = await place(world, MARKET_BUY, key="not a key!")
    too_long = await place(world, MARKET_BUY, key="k" * 129)

    for answer in (missing, malformed, too_long):
        assert answer.status_code == 400
        assert answer.json()["errors"][0]["field"] == "header.Idempotency-Key"
    assert world.sender.sent == []


async def test_a_body_naming_the_order_id_or_the_user_is_refused(world: World) -> None:
    for extra in ({"order_id": "mine"}, {"username": "bobby1"}, {"group": "bobby1"}):
        answer = await place(world, {**MARKET_BUY, **extra}, key="extra")
        assert answer.status_code == 422
        assert answer.json()["errors"][0]["field"] == f"body.{next(iter(extra))}"
    assert world.sender.sent == []


async def test_an_invalid_order_names_its_field(world: World) -> None:
    answer = await place(world, {"order_type": "LIMIT_BUY", "asset_id": "BTC", "quantity": "1"})

    assert answer.status_code == 422
    assert "limit_price" in answer.json()["detail"]


async def test_a_placed_order_is_found_at_once_and_then_its_latest_state(world: World) -> None:
    order = (await place(world, MARKET_BUY)).json()
    url = f"/v1/orders/{order['order_id']}"

    assert (await world.client.get(url, headers=world.auth())).json()["status"] == "PENDING"
    done = Order.model_validate(order).evolve(status=OrderStatus.COMPLETED, sequence=3)
    await world.model.apply(
        Event(
            event_id="e3",
            event_type=EventType.ORDER_COMPLETED,
            username="alice1",
            order_id=done.order_id,
            sequence=3,
            data=done.response_json(),
        )
    )
    assert (await world.client.get(url, headers=world.auth())).json()["status"] == "COMPLETED"


async def test_another_users_order_is_not_found_whether_cached_or_stored(world: World) -> None:
    order = (await place(world, MARKET_BUY, user="bobby1")).json()
    url = f"/v1/orders/{order['order_id']}"
    world.reads.order_book[order["order_id"]] = Order.model_validate(order)

    cached = await world.client.get(url, headers=world.auth("alice1"))
    world.model.available = False
    stored = await world.client.get(url, headers=world.auth("alice1"))
    cancel = await world.client.delete(url, headers=world.auth("alice1"))

    assert [cached.status_code, stored.status_code, cancel.status_code] == [404, 404, 404]
    assert cached.json()["detail"] == stored.json()["detail"] == "no such order"


async def test_an_order_missing_from_the_model_is_read_from_dynamodb_and_filled(
    world: World,
) -> None:
    stored = Order.place(
        "alice1",
        PlaceOrder.model_fields["payload"].annotation.model_validate(  # type: ignore[union-attr]
            {**MARKET_BUY, "order_id": "stored-1"}
        ),
        "stored-1",
    )
    world.reads.order_book["stored-1"] = stored

    answer = await world.client.get("/v1/orders/stored-1", headers=world.auth())

    assert answer.json()["order_id"] == "stored-1"
    assert world.model.orders["stored-1"] == stored


async def test_cancelling_sends_a_cancel_for_the_users_order(world: World) -> None:
    order = (await place(world, MARKET_BUY)).json()

    answer = await world.client.delete(f"/v1/orders/{order['order_id']}", headers=world.auth())

    assert answer.status_code == 202
    cancel = world.sender.sent[-1]
    assert isinstance(cancel, CancelOrder)
    assert (cancel.username, cancel.payload.order_id) == ("alice1", order["order_id"])


async def test_sqs_away_answers_503_and_a_retry_sends_it(world: World) -> None:
    world.sender.failing = ConnectionError("SQS away")
    away = await place(world, MARKET_BUY)
    world.sender.failing = None
    retried = await place(world, MARKET_BUY)

    assert away.status_code == 503
    assert retried.status_code == 202
    assert len(world.sender.sent) == 1


async def test_a_command_rejected_before_its_answer_leaves_the_order_failed_not_pending(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker (and the cache worker) fast enough to reject the command before the
    gateway has answered: the rejection meets the placeholder, written before the send."""
    recorded = world.sender.send

    async def rejected_at_once(command: AnyCommand) -> str:
        reference = await recorded(command)
        assert isinstance(command, PlaceOrder)
        await world.model.apply(
            rejection_event(
                reason=Reason.INSUFFICIENT_BALANCE,
                message="not enough USD",
                message_id="m-1",
                username=command.username,
                command_id=command.command_id,
                order_id=command.payload.order_id,
            )
        )
        return reference

    monkeypatch.setattr(world.sender, "send", rejected_at_once)
    order = (await place(world, MARKET_BUY, key="fast-reject-1")).json()
    seen = (await world.client.get(f"/v1/orders/{order['order_id']}", headers=world.auth())).json()

    assert (seen["status"], seen["failure_reason"]) == ("FAILED", "INSUFFICIENT_BALANCE")
