"""The DynamoDB adapters run their ports' contracts (tests/contracts/) against the
endpoint, as the in-memory fakes do in tests/unit/test_contracts.py."""

from __future__ import annotations

import contextlib
from decimal import Decimal

import pytest

from order_processor.bootstrap import (
    AwsClients,
    get_asset_balance_dao,
    get_asset_dao,
    get_balance_dao,
    get_order_dao,
    get_user_dao,
)
from order_processor.domain.assets import AssetCreate
from order_processor.domain.base import new_id, utc_now
from order_processor.domain.orders import Order
from order_processor.domain.ports import Inventory, Ledger, OrderBook
from order_processor.domain.users import UserCreate, UserUpdate
from order_processor.exceptions import AssetBalanceNotFoundException, EntityAlreadyExistsException
from order_processor.store import keys
from order_processor.store.dynamo import get_item
from order_processor.store.ledger import DynamoLedger
from order_processor.store.rates import ExchangeRateStore
from tests.contracts.book import InventoryContract, OrderBookContract
from tests.contracts.ledger import LedgerContract, Pair


class DynamoLedgerWorld:
    def __init__(self, aws: AwsClients) -> None:
        self.aws = aws

    @property
    def ledger(self) -> Ledger:
        r = self.aws.resources
        return DynamoLedger(self.aws.dynamodb, r.users_table, r.orders_table, r.inventory_table)

    async def open_balance(self, username: str) -> None:
        with contextlib.suppress(EntityAlreadyExistsException):
            await get_balance_dao(self.aws).create_balance(username)

    async def register(self, username: str, *, active: bool) -> None:
        users = get_user_dao(self.aws)
        request = UserCreate(
            username=username, email=f"{username}@example.com", first_name="A", last_name="B"
        )
        await users.create_user(request, password_hash="x")  # a balance there is kept
        if not active:
            await users.update_user(username, UserUpdate(is_active=False))

    async def list_asset(self, asset_id: str, price: str) -> str | None:
        asset = await get_asset_dao(self.aws).create_asset(
            AssetCreate(asset_id=asset_id, name="Coin", price=price)
        )
        return asset.price_command_id

    async def reprice(self, asset_id: str, price: str) -> None:
        await get_asset_dao(self.aws).update_price(asset_id, Decimal(price))

    async def usd_of(self, username: str) -> Pair:
        balance = await get_balance_dao(self.aws).get_balance(username)
        return balance.available, balance.held

    async def holding_of(self, username: str, asset_id: str) -> Pair:
        try:
            held = await get_asset_balance_dao(self.aws).get_asset_balance(username, asset_id)
        except AssetBalanceNotFoundException:
            return Decimal(0), Decimal(0)
        return held.available, held.held

    async def cash_of(self, username: str, currency: str) -> Pair | None:
        item = await get_item(
            self.aws.dynamodb, self.aws.resources.users_table, keys.balance_key(username, currency)
        )
        return None if item is None else (Decimal(item["available"]), Decimal(item["held"]))

    async def liquidity_of(self, username: str, currency: str) -> Decimal:
        item = await get_item(
            self.aws.dynamodb,
            self.aws.resources.users_table,
            keys.liquidity_key(username, currency),
        )
        return Decimal(0) if item is None else Decimal(item["amount"])

    async def set_rate(self, currency: str, rate: str) -> None:
        rates = ExchangeRateStore(self.aws.dynamodb, self.aws.resources.inventory_table)
        await rates.change_rate(currency, rate, as_of=utc_now(), command_id=new_id())


class TestDynamoLedger(LedgerContract):
    @pytest.fixture
    def world(self, aws: AwsClients) -> DynamoLedgerWorld:
        return DynamoLedgerWorld(aws)


class DynamoBookWorld:
    def __init__(self, aws: AwsClients) -> None:
        self.orders = get_order_dao(aws)

    @property
    def book(self) -> OrderBook:
        return self.orders

    async def store(self, *orders: Order) -> None:
        for order in orders:
            await self.orders.create_order(order)


class TestOrderDAOBook(OrderBookContract):
    @pytest.fixture
    def world(self, aws: AwsClients) -> DynamoBookWorld:
        return DynamoBookWorld(aws)


class DynamoInventoryWorld:
    def __init__(self, aws: AwsClients) -> None:
        self.assets = get_asset_dao(aws)

    @property
    def inventory(self) -> Inventory:
        return self.assets

    async def list_asset(self, asset_id: str, price: str) -> None:
        await self.assets.create_asset(AssetCreate(asset_id=asset_id, name="Coin", price=price))


class TestAssetDAOInventory(InventoryContract):
    @pytest.fixture
    def world(self, aws: AwsClients) -> DynamoInventoryWorld:
        return DynamoInventoryWorld(aws)
