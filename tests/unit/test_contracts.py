"""The in-memory fakes run their ports' contracts (tests/contracts/), as the adapters do
against DynamoDB: a fake that passes its adapter's contract is a fake the unit tests can
trust."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from order_processor.domain.assets import Asset
from order_processor.domain.base import new_id
from order_processor.domain.fx import ExchangeRate
from order_processor.domain.orders import Order
from order_processor.domain.ports import Inventory, Ledger, OrderBook
from order_processor.domain.users import User
from order_processor.readmodel.memory import MemoryReadModel
from order_processor.readmodel.ports import ReadModel
from tests.contracts.book import InventoryContract, OrderBookContract
from tests.contracts.ledger import NOW, LedgerContract, Pair
from tests.contracts.read_model import ReadModelContract
from tests.unit.fakes import MemoryBook, MemoryInventory, MemoryLedger


class MemoryLedgerWorld:
    def __init__(self) -> None:
        self.memory = MemoryLedger()

    @property
    def ledger(self) -> Ledger:
        return self.memory

    async def open_balance(self, username: str) -> None:
        self.memory.cash.setdefault((username, "USD"), (Decimal("0.00"), Decimal("0.00")))

    async def register(self, username: str, *, active: bool) -> None:
        await self.open_balance(username)
        self.memory.users[username] = User(
            username=username,
            email=f"{username}@example.com",
            first_name="A",
            last_name="B",
            password_hash="x",
            is_active=active,
        )

    async def list_asset(self, asset_id: str, price: str) -> str | None:
        self.memory.assets[asset_id] = Asset(asset_id=asset_id, name="Coin", price=Decimal(price))
        return None

    async def reprice(self, asset_id: str, price: str) -> None:
        update = {"price": Decimal(price), "price_command_id": new_id()}
        self.memory.assets[asset_id] = self.memory.assets[asset_id].model_copy(update=update)

    async def usd_of(self, username: str) -> Pair:
        return self.memory.available(username)

    async def holding_of(self, username: str, asset_id: str) -> Pair:
        return self.memory.holding(username, asset_id)

    async def cash_of(self, username: str, currency: str) -> Pair | None:
        return self.memory.cash.get((username, currency))

    async def liquidity_of(self, username: str, currency: str) -> Decimal:
        return self.memory.liquidity.get((username, currency), Decimal(0))

    async def set_rate(self, currency: str, rate: str) -> None:
        self.memory.rates[currency] = ExchangeRate(currency=currency, rate=rate, as_of=NOW)


class TestMemoryLedger(LedgerContract):
    @pytest.fixture
    def world(self) -> MemoryLedgerWorld:
        return MemoryLedgerWorld()


class MemoryBookWorld:
    def __init__(self) -> None:
        self.memory = MemoryBook()

    @property
    def book(self) -> OrderBook:
        return self.memory

    async def store(self, *orders: Order) -> None:
        self.memory.place(*orders)


class TestMemoryBook(OrderBookContract):
    @pytest.fixture
    def world(self) -> MemoryBookWorld:
        return MemoryBookWorld()


class MemoryInventoryWorld:
    def __init__(self) -> None:
        self.memory = MemoryInventory()

    @property
    def inventory(self) -> Inventory:
        return self.memory

    async def list_asset(self, asset_id: str, price: str) -> None:
        listed = Asset(
            asset_id=asset_id, name="Coin", price=Decimal(price), price_as_of=datetime.now(UTC)
        )
        self.memory.list_assets(listed)


class TestMemoryInventory(InventoryContract):
    @pytest.fixture
    def world(self) -> MemoryInventoryWorld:
        return MemoryInventoryWorld()


class MemoryReadModelWorld:
    def __init__(self) -> None:
        self.interrupted = MemoryReadModel()

    def model(
        self, *, ttl_seconds: float = 60, price_ttl_seconds: float = 2, stream_length: int = 1000
    ) -> ReadModel:
        return MemoryReadModel(
            ttl_seconds=ttl_seconds,
            price_ttl_seconds=price_ttl_seconds,
            stream_length=stream_length,
        )

    def interruptible(self) -> ReadModel:
        return self.interrupted

    def stop(self) -> None:
        self.interrupted.available = False

    def start(self) -> None:
        self.interrupted.available = True


class TestMemoryReadModel(ReadModelContract):
    @pytest.fixture
    def world(self) -> MemoryReadModelWorld:
        return MemoryReadModelWorld()
