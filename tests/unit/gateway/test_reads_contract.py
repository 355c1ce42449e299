"""The in-memory GatewayReads runs the port's contract, as DynamoGatewayReads does
against the endpoint (tests/integration/store/test_gateway_reads.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from order_processor.domain.assets import Asset
from order_processor.domain.balances import Balance
from order_processor.domain.orders import Order
from order_processor.domain.users import User
from order_processor.gateway.memory import MemoryGatewayReads
from order_processor.gateway.ports import GatewayReads
from order_processor.security.passwords import PasswordManager
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
