"""The gateway's in-memory ports run their contracts, as their adapters do against the
endpoint: DynamoGatewayReads (tests/integration/store/test_gateway_reads.py) and the
producer (tests/integration/messaging/test_command_sender.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from order_processor.domain.assets import Asset
from order_processor.domain.balances import Balance
from order_processor.domain.commands import AnyCommand
from order_processor.domain.orders import Order
from order_processor.domain.users import User
from order_processor.gateway.memory import MemoryGatewayReads, RecordingSender
from order_processor.gateway.ports import CommandSender, GatewayReads
from order_processor.security.passwords import PasswordManager
from tests.contracts.command_sender import CommandSenderContract
from tests.contracts.gateway_reads import GatewayReadsContract, password_hash


class MemoryReadsWorld:
    def __init__(self) -> None:
        self.memory = MemoryGatewayReads(passwords=PasswordManager(rounds=4))

    @property
    def reads(self) -> GatewayReads:
        return self.memory

    async def register(self, username: str, *, active: bool = True) -> None:
        self.memory.users[username] = User(
            username=username,
            email=f"{username}@example.com",
            first_name="A",
            last_name="B",
            password_hash=password_hash(),
            is_active=active,
        )

    async def store(self, order: Order) -> None:
        self.memory.order_book[order.order_id] = order

    async def fund(self, username: str, currency: str, available: str) -> None:
        kept = [b for b in self.memory.cash.get(username, []) if b.currency != currency]
        balance = Balance(username=username, currency=currency, available=Decimal(available))
        self.memory.cash[username] = [*kept, balance]

    async def list_asset(self, asset_id: str, price: str, *, active: bool = True) -> None:
        self.memory.assets[asset_id] = Asset(
            asset_id=asset_id, name="Coin", price=Decimal(price), is_active=active
        )


class TestMemoryGatewayReads(GatewayReadsContract):
    @pytest.fixture
    def world(self) -> MemoryReadsWorld:
        return MemoryReadsWorld()


class RecordingSenderWorld:
    def __init__(self) -> None:
        self.recording = RecordingSender()

    @property
    def sender(self) -> CommandSender:
        return self.recording

    async def received(self, count: int) -> list[tuple[str, AnyCommand]]:
        return [(c.username, c) for c in self.recording.sent[:count]]


class TestRecordingSender(CommandSenderContract):
    @pytest.fixture
    def world(self) -> RecordingSenderWorld:
        return RecordingSenderWorld()
