"""The `GatewayReads` port's contract: who logs in (an unknown user and a wrong password
alike: None), whose orders a user sees (only their own, newest first, page by page, by
status), each currency's balance, the portfolio (empty before any balance), the listed
prices (active assets, by id)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Protocol

import bcrypt
import pytest

from order_processor.domain.orders import Order, OrderCreate, OrderStatus
from order_processor.gateway.ports import GatewayReads, UnknownCursor

PASSWORD = "Corr3ct-horse!"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def password_hash() -> str:
    return bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()


class GatewayReadsWorld(Protocol):
    @property
    def reads(self) -> GatewayReads: ...

    async def register(self, username: str, *, active: bool = True) -> None:
        """A user whose password is PASSWORD."""
        ...

    async def store(self, order: Order) -> None: ...

    async def fund(self, username: str, currency: str, available: str) -> None:
        """The user's balance in `currency` set to `available` (nothing held)."""
        ...

    async def list_asset(self, asset_id: str, price: str, *, active: bool = True) -> None: ...


def an_order(username: str, number: int, status: OrderStatus) -> Order:
    request = OrderCreate.model_validate(
        {"order_type": "MARKET_BUY", "asset_id": "BTC", "quantity": "1"}
    )
    moment = T0 + timedelta(minutes=number)
    return Order.place(username, request, f"{username}-order-{number:03d}").evolve(
        status=status, sequence=2, created_at=moment, updated_at=moment
    )


class GatewayReadsContract:
    @pytest.fixture
    def world(self) -> GatewayReadsWorld:
        raise NotImplementedError

    async def test_the_right_password_logs_the_user_in(self, world: GatewayReadsWorld) -> None:
        await world.register("trader_one")

        user = await world.reads.authenticate("Trader_One", PASSWORD)

        assert user is not None
        assert user.username == "trader_one"

    async def test_a_wrong_password_an_unknown_or_disabled_user_log_nobody_in(
        self, world: GatewayReadsWorld
    ) -> None:
        await world.register("trader_two")
        await world.register("trader_off", active=False)

        assert await world.reads.authenticate("trader_two", "Wr0ng-horse!") is None
        assert await world.reads.authenticate("nobody_at_all", PASSWORD) is None
        assert await world.reads.authenticate("trader_off", PASSWORD) is None
        assert await world.reads.authenticate("not a name!", PASSWORD) is None

    async def test_a_user_reads_their_own_order_and_never_anothers(
        self, world: GatewayReadsWorld
    ) -> None:
        mine = an_order("owner_one", 1, OrderStatus.COMPLETED)
        await world.store(mine)

        assert await world.reads.order("owner_one", mine.order_id) == mine
        assert await world.reads.order("other_one", mine.order_id) is None
        assert await world.reads.order("owner_one", "no-such-order") is None

    async def test_orders_come_newest_first_page_by_page_and_only_the_users(
        self, world: GatewayReadsWorld
    ) -> None:
        statuses = [OrderStatus.COMPLETED, OrderStatus.FAILED, OrderStatus.QUEUED] * 2
        mine = [an_order("pager_one", n, s) for n, s in enumerate(statuses)]
        for order in [*mine, an_order("pager_two", 9, OrderStatus.COMPLETED)]:
            await world.store(order)

        seen: list[str] = []
        cursor = None
        for _ in range(10):
            page = await world.reads.orders("pager_one", None, 4, cursor)
            seen += [o.order_id for o in page.orders]
            cursor = page.cursor
            if cursor is None:
                break

        assert seen == [o.order_id for o in reversed(mine)]

    async def test_orders_are_listed_by_status(self, world: GatewayReadsWorld) -> None:
        statuses = [OrderStatus.COMPLETED, OrderStatus.FAILED] * 3
        mine = [an_order("status_one", n, s) for n, s in enumerate(statuses)]
        for order in mine:
            await world.store(order)

        first = await world.reads.orders("status_one", OrderStatus.FAILED, 2, None)
        rest = await world.reads.orders("status_one", OrderStatus.FAILED, 2, first.cursor)

        found = [o.order_id for o in first.orders + rest.orders]
        assert found == [o.order_id for o in reversed(mine) if o.status is OrderStatus.FAILED]

    async def test_a_cursor_the_store_did_not_issue_is_refused(
        self, world: GatewayReadsWorld
    ) -> None:
        with pytest.raises(UnknownCursor):
            await world.reads.orders("cursor_one", None, 2, "not-a-cursor!")

    async def test_balances_are_each_currency_of_the_user(self, world: GatewayReadsWorld) -> None:
        await world.register("funded_one")
        await world.fund("funded_one", "USD", "120.50")
        await world.fund("funded_one", "EUR", "7.00")

        found = await world.reads.balances("funded_one")

        assert [(b.currency, b.available, b.held) for b in found] == [
            ("EUR", Decimal("7.00"), Decimal("0.00")),
            ("USD", Decimal("120.50"), Decimal("0.00")),
        ]
        assert await world.reads.balances("unfunded_one") == []

    async def test_the_portfolio_holds_the_users_cash(self, world: GatewayReadsWorld) -> None:
        await world.register("holder_one")
        await world.fund("holder_one", "USD", "99.99")

        portfolio = await world.reads.portfolio("holder_one")
        empty = await world.reads.portfolio("holder_two")

        assert (portfolio.username, portfolio.usd_available, portfolio.holdings) == (
            "holder_one",
            Decimal("99.99"),
            [],
        )
        assert (empty.usd_available, empty.usd_total, len(empty.holdings)) == (
            Decimal(0),
            Decimal(0),
            0,
        )

    async def test_prices_are_the_active_assets_by_id(self, world: GatewayReadsWorld) -> None:
        await world.list_asset("ZZTOP", "2.50")
        await world.list_asset("AAONE", "10")
        await world.list_asset("OFFLINE", "3", active=False)

        listed = [(a.asset_id, a.price) for a in await world.reads.prices()]

        assert [a for a in listed if a[0] in {"ZZTOP", "AAONE", "OFFLINE"}] == [
            ("AAONE", Decimal("10")),
            ("ZZTOP", Decimal("2.50")),
        ]
