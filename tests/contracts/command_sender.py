"""The `CommandSender` port's contract (the gateway's producer): a command reaches the
queue whole, under its user's group, and `send` answers the order id of a PlaceOrder, the
command id of anything else."""

from __future__ import annotations

from typing import Protocol

import pytest

from order_processor.domain.commands import (
    AnyCommand,
    CancelOrder,
    FundsPayload,
    OrderReference,
    PlaceOrder,
    PlaceOrderPayload,
    Withdraw,
)
from order_processor.gateway.ports import CommandSender


class CommandSenderWorld(Protocol):
    @property
    def sender(self) -> CommandSender: ...

    async def received(self, count: int) -> list[tuple[str, AnyCommand]]:
        """The first `count` commands sent, each with the group it went under."""
        ...


def a_place_order(username: str) -> PlaceOrder:
    payload = PlaceOrderPayload.model_validate(
        {"order_type": "MARKET_BUY", "asset_id": "BTC", "quantity": "1", "order_id": "minted-1"}
    )
    return PlaceOrder(command_id="key-1", username=username, auth="a.b.c", payload=payload)


class CommandSenderContract:
    @pytest.fixture
    def world(self) -> CommandSenderWorld:
        raise NotImplementedError

    async def test_each_command_reaches_the_queue_whole_under_its_users_group(
        self, world: CommandSenderWorld
    ) -> None:
        commands: list[AnyCommand] = [
            a_place_order("sender_one"),
            CancelOrder(
                command_id="key-2",
                username="sender_two",
                auth="a.b.c",
                payload=OrderReference(order_id="minted-1"),
            ),
            Withdraw(
                command_id="key-3",
                username="sender_one",
                auth="a.b.c",
                payload=FundsPayload.model_validate({"amount": "5", "currency": "EUR"}),
            ),
        ]

        answers = [await world.sender.send(command) for command in commands]
        received = await world.received(3)

        assert answers == ["minted-1", "key-2", "key-3"]
        assert received == [(c.username, c) for c in commands]
