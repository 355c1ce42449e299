"""`GatewayReads` over the DAOs: the users' table (profiles, balances, holdings), the
orders' table and its user index, the inventory. The DAOs build the requests; this only
composes them and turns their refusals into the port's answers."""

from __future__ import annotations

from dataclasses import dataclass

from order_processor.domain.assets import Asset
from order_processor.domain.balances import Balance
from order_processor.domain.orders import Order, OrderStatus
from order_processor.domain.portfolio import Portfolio, build_portfolio
from order_processor.domain.users import User, normalise_username
from order_processor.exceptions import (
    AccessDeniedException,
    BalanceNotFoundException,
    InvalidCredentialsException,
    OrderNotFoundException,
)
from order_processor.gateway.ports import OrdersPage, UnknownCursor
from order_processor.security.passwords import PasswordManager
from order_processor.store.asset_balances import AssetBalanceDAO
from order_processor.store.assets import AssetDAO
from order_processor.store.balances import BalanceDAO
from order_processor.store.dynamo import InvalidCursorError
from order_processor.store.orders import OrderDAO
from order_processor.store.portfolio import load_portfolio
from order_processor.store.users import UserDAO


@dataclass(frozen=True)
class DynamoGatewayReads:
    users: UserDAO
    orders_dao: OrderDAO
    balances_dao: BalanceDAO
    asset_balances: AssetBalanceDAO
    assets: AssetDAO
    passwords: PasswordManager

    async def authenticate(self, username: str, password: str) -> User | None:
        """UserDAO.authenticate_user does the same bcrypt work for an unknown user as for
        a wrong password; a disabled user is refused like a wrong password here."""
        try:
            return await self.users.authenticate_user(username, password, self.passwords)
        except (InvalidCredentialsException, AccessDeniedException):
            return None

    async def order(self, username: str, order_id: str) -> Order | None:
        try:
            return await self.orders_dao.get_order(order_id, username=username)
        except OrderNotFoundException:
            return None

    async def orders(
        self, username: str, status: OrderStatus | None, limit: int, cursor: str | None
    ) -> OrdersPage:
        try:
            if status is None:
                page = await self.orders_dao.get_orders_by_user(
                    username, limit=limit, cursor=cursor
                )
            else:
                page = await self.orders_dao.get_orders_by_user_and_status(
                    username, status, limit=limit, cursor=cursor
                )
        except InvalidCursorError as exc:
            raise UnknownCursor(str(exc)) from exc
        return OrdersPage(page.items, page.next_cursor)

    async def balances(self, username: str) -> list[Balance]:
        try:
            found = await self.balances_dao.balances(username)
        except BalanceNotFoundException:
            return []
        return sorted(found, key=lambda b: b.currency)

    async def portfolio(self, username: str) -> Portfolio:
        try:
            return await load_portfolio(
                username, self.balances_dao, self.asset_balances, self.assets
            )
        except BalanceNotFoundException:
            return build_portfolio(Balance(username=normalise_username(username)), [], {})

    async def prices(self) -> list[Asset]:
        listed = [asset async for asset in self.assets.every_asset(active_only=True)]
        return sorted(listed, key=lambda a: a.asset_id)
