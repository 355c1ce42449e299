"""Reads: balances, portfolio and prices through the read model (filled under the user's
generation), the orders list with a tamper-proof cursor, and the same answers from
DynamoDB while the model is away."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from order_processor.domain.commands import Withdraw
from order_processor.domain.events import Event, EventType
from order_processor.domain.orders import Order, OrderCreate, OrderStatus
from order_processor.readmodel.ports import Document
from tests.unit.gateway.conftest import World

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def stored_orders(world: World, username: str, count: int) -> list[Order]:
    request = OrderCreate.model_validate(
        {"order_type": "MARKET_BUY", "asset_id": "BTC", "quantity": "1"}
    )
    orders = []
    for index in range(count):
        order = Order.place(username, request, f"{username}-{index:03d}").evolve(
            created_at=T0 + timedelta(minutes=index),
            status=OrderStatus.COMPLETED if index % 2 else OrderStatus.FAILED,
        )
        world.reads.order_book[order.order_id] = order
        orders.append(order)
    return orders


async def test_balances_are_read_once_then_served_from_the_model(world: World) -> None:
    first = await world.client.get("/v1/balances", headers=world.auth())
    world.reads.cash["alice1"] = []
    second = await world.client.get("/v1/balances", headers=world.auth())

    assert (
        first.json()
        == second.json()
        == {
            "balances": [
                {"currency": "EUR", "available": "50.00", "held": "0.00"},
                {"currency": "USD", "available": "1000.00", "held": "0.00"},
            ]
        }
    )


async def test_an_event_of_the_user_drops_their_cached_documents(world: World) -> None:
    await world.client.get("/v1/balances", headers=world.auth())
    await world.model.apply(
        Event(event_id="w1", event_type=EventType.BALANCE_WITHDRAWN, username="alice1")
    )
    world.reads.cash["alice1"] = []

    answer = await world.client.get("/v1/balances", headers=world.auth())

    assert answer.json() == {"balances": []}


async def test_a_fill_that_raced_an_event_is_not_kept(world: World) -> None:
    original = world.reads.balances

    async def racing(username: str) -> list[object]:
        found = await original(username)
        await world.model.apply(
            Event(event_id="race", event_type=EventType.BALANCE_DEPOSITED, username=username)
        )
        return found  # type: ignore[return-value]

    world.reads.balances = racing  # type: ignore[method-assign,assignment]
    await world.client.get("/v1/balances", headers=world.auth())

    assert await world.model.document("alice1", Document.BALANCES) is None


async def test_portfolio_and_prices_answer_from_the_store_and_the_cache(world: World) -> None:
    portfolio = await world.client.get("/v1/portfolio", headers=world.auth())
    prices = await world.client.get("/v1/prices", headers=world.auth())

    assert portfolio.json()["usd_available"] == "1000.00"
    assert prices.json()["prices"][0]["asset_id"] == "BTC"
    assert Decimal(prices.json()["prices"][0]["price"]) == Decimal("50000")
    assert world.model.price_document == prices.text


async def test_the_read_model_away_gives_the_same_answers_from_dynamodb(world: World) -> None:
    stored_orders(world, "alice1", 3)
    paths = ["/v1/balances", "/v1/portfolio", "/v1/prices", "/v1/orders", "/v1/orders/alice1-001"]
    up = [(await world.client.get(p, headers=world.auth())).json() for p in paths]
    world.model.available = False
    away = [(await world.client.get(p, headers=world.auth())) for p in paths]

    assert [a.status_code for a in away] == [200] * len(paths)
    assert [a.json() for a in away] == up


async def test_orders_are_listed_newest_first_page_by_page(world: World) -> None:
    orders = stored_orders(world, "alice1", 5)
    stored_orders(world, "bobby1", 2)

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await world.client.get("/v1/orders", params=params, headers=world.auth())).json()
        seen += [o["order_id"] for o in page["orders"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == [o.order_id for o in reversed(orders)]


async def test_orders_are_listed_by_status(world: World) -> None:
    stored_orders(world, "alice1", 5)

    page = await world.client.get(
        "/v1/orders", params={"status": "COMPLETED"}, headers=world.auth()
    )

    assert [o["order_id"] for o in page.json()["orders"]] == ["alice1-003", "alice1-001"]


async def test_a_cursor_cannot_be_forged_or_used_by_another_user_or_filter(world: World) -> None:
    stored_orders(world, "alice1", 3)
    first = await world.client.get("/v1/orders", params={"limit": "1"}, headers=world.auth())
    cursor = first.json()["next_cursor"]
    body, _, mac = cursor.partition(".")
    raw = base64.urlsafe_b64decode(body + "==").decode()
    forged_body = base64.urlsafe_b64encode(f"{raw[:-2]}AA".encode())  # another position

    attempts = [
        (world.auth("bobby1"), {"cursor": cursor}),
        (world.auth(), {"cursor": cursor, "status": "COMPLETED"}),
        (world.auth(), {"cursor": f"{forged_body.decode().rstrip('=')}.{mac}"}),
        (world.auth(), {"cursor": "garbage"}),
    ]
    for headers, params in attempts:
        answer = await world.client.get("/v1/orders", params=params, headers=headers)
        assert answer.status_code == 400
        assert answer.json()["detail"] == "cursor: not one this gateway issued"


async def test_a_withdrawal_is_sent_with_its_key_as_command_id(world: World) -> None:
    headers = {**world.auth(), "Idempotency-Key": "wd-0001"}
    body = {"amount": "25.50", "currency": "EUR"}
    first = await world.client.post("/v1/withdrawals", json=body, headers=headers)
    again = await world.client.post("/v1/withdrawals", json=body, headers=headers)
    other = await world.client.post(
        "/v1/withdrawals", json={**body, "amount": "30"}, headers=headers
    )

    assert first.status_code == again.status_code == 202
    assert first.json() == {"withdrawal_id": "wd-0001", "currency": "EUR", "amount": "25.50"}
    assert other.status_code == 409
    [command] = world.sender.sent
    assert isinstance(command, Withdraw)
    assert (command.command_id, command.username, command.payload.amount) == (
        "wd-0001",
        "alice1",
        Decimal("25.50"),
    )


async def test_a_withdrawal_of_a_bad_amount_names_the_field(world: World) -> None:
    answer = await world.client.post(
        "/v1/withdrawals",
        json={"amount": "-5", "currency": "USD"},
        headers={**world.auth(), "Idempotency-Key": "wd-bad"},
    )

    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "body.amount"
