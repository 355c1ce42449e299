"""DynamoGatewayReads runs the port's contract against the endpoint, as the in-memory
one does in tests/unit/gateway/test_reads_contract.py."""

from __future__ import annotations

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
from order_processor.domain.balances import Balance
from order_processor.domain.orders import Order
from order_processor.domain.users import UserCreate, UserUpdate
from order_processor.gateway.dynamo import DynamoGatewayReads
from order_processor.gateway.ports import GatewayReads
from order_processor.security.passwords import PasswordManager
from order_processor.store import keys
from order_processor.store.dynamo import entity_item
from tests.contracts.gateway_reads import GatewayReadsContract, password_hash


class DynamoReadsWorld:
    def __init__(self, aws: AwsClients) -> None:
        self.aws = aws

    @property
    def reads(self) -> GatewayReads:
        return DynamoGatewayReads(
            users=get_user_dao(self.aws),
            orders_dao=get_order_dao(self.aws),
            balances_dao=get_balance_dao(self.aws),
            asset_balances=get_asset_balance_dao(self.aws),
            assets=get_asset_dao(self.aws),
            passwords=PasswordManager(rounds=4),
        )

    async def register(self, username: str, *, active: bool = True) -> None:
        users = get_user_dao(self.aws)
        request = UserCreate(
            username=username, email=f"{username}@example.com", first_name="A", last_name="B"
        )
        await users.create_user(request, password_hash=password_hash())
        if not active:
            await users.update_user(username, UserUpdate(is_active=False))

    async def store(self, order: Order) -> None:
        await get_order_dao(self.aws).create_order(order)

    async def fund(self, username: str, currency: str, available: str) -> None:
        balance = Balance(username=username, currency=currency, available=Decimal(available))
        item = {**keys.balance_key(username, currency), **entity_item(balance)}
        await self.aws.dynamodb.put_item(TableName=self.aws.resources.users_table, Item=item)

    async def list_asset(self, asset_id: str, price: str, *, active: bool = True) -> None:
        request = AssetCreate(asset_id=asset_id, name="Coin", price=price, is_active=active)
        await get_asset_dao(self.aws).create_asset(request)


class TestDynamoGatewayReads(GatewayReadsContract):
    @pytest.fixture
    def world(self, aws: AwsClients) -> DynamoReadsWorld:
        return DynamoReadsWorld(aws)
