"""The gateway's ports in memory: the unit tests' stand-ins (`MemoryGatewayReads`,
`RecordingSender`), held to the contract suites their adapters run, and the per-replica
counters a gateway uses as they are (`MemoryAttempts`, `MemoryReceipts`): bounded, so
that a flood of usernames or keys cannot grow them without end."""

from __future__ import annotations

import base64
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from order_processor.domain.assets import Asset
from order_processor.domain.balances import Balance
from order_processor.domain.commands import AnyCommand
from order_processor.domain.currencies import BASE_CURRENCY
from order_processor.domain.orders import Order, OrderStatus
from order_processor.domain.portfolio import Portfolio, build_portfolio
from order_processor.domain.users import User, normalise_username
from order_processor.gateway.ports import PENDING_SECONDS, OrdersPage, Receipt, UnknownCursor
from order_processor.messaging.producer import reference_of
from order_processor.security.passwords import PasswordManager

MAX_KEYS = 100_000


@dataclass
class MemoryGatewayReads:
    passwords: PasswordManager = field(default_factory=lambda: PasswordManager(rounds=4))
    users: dict[str, User] = field(default_factory=dict)
    order_book: dict[str, Order] = field(default_factory=dict)
    cash: dict[str, list[Balance]] = field(default_factory=dict)
    assets: dict[str, Asset] = field(default_factory=dict)

    async def authenticate(self, username: str, password: str) -> User | None:
        user = self.users.get(normalise_username(username))
        matches = await self.passwords.verify_password(
            password, user.password_hash if user else None
        )
        return user if user is not None and matches and user.is_active else None

    async def order(self, username: str, order_id: str) -> Order | None:
        order = self.order_book.get(order_id)
        if order is None or order.username != normalise_username(username):
            return None
        return order

    async def orders(
        self, username: str, status: OrderStatus | None, limit: int, cursor: str | None
    ) -> OrdersPage:
        name = normalise_username(username)
        mine = sorted(
            (o for o in self.order_book.values() if o.username == name),
            key=lambda o: (o.created_at, o.order_id),
            reverse=True,
        )
        start = _position(cursor, mine)
        kept = [o for o in mine[start:] if status is None or o.status is status]
        page = kept[:limit]
        if len(kept) <= limit:
            return OrdersPage(page)
        return OrdersPage(page, _cursor_after(page[-1]))

    async def balances(self, username: str) -> list[Balance]:
        return sorted(self.cash.get(normalise_username(username), []), key=lambda b: b.currency)

    async def portfolio(self, username: str) -> Portfolio:
        name = normalise_username(username)
        usd = next((b for b in self.cash.get(name, []) if b.currency == BASE_CURRENCY), None)
        return build_portfolio(usd or Balance(username=name), [], self.assets)

    async def prices(self) -> list[Asset]:
        return sorted((a for a in self.assets.values() if a.is_active), key=lambda a: a.asset_id)


def _cursor_after(order: Order) -> str:
    raw = f"{order.created_at.isoformat()}|{order.order_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _position(cursor: str | None, orders: list[Order]) -> int:
    """The index after the order the cursor names (by creation time and id, as the
    index's sort key: an order gone since still places the cursor)."""
    if cursor is None:
        return 0
    try:
        created, _, order_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
    except ValueError as exc:
        raise UnknownCursor("not a cursor of this store") from exc
    if not order_id:
        raise UnknownCursor("not a cursor of this store")
    after = (created, order_id)
    return sum(1 for o in orders if (o.created_at.isoformat(), o.order_id) >= after)


@dataclass
class RecordingSender:
    """Keeps what it sends (its group: the command's user, as the producer sends it on a
    FIFO queue); `failing` makes the next sends raise it (SQS away)."""

    sent: list[AnyCommand] = field(default_factory=list)
    failing: Exception | None = None

    async def send(self, command: AnyCommand) -> str:
        if self.failing is not None:
            raise self.failing
        self.sent.append(command)
        return reference_of(command)


@dataclass
class MemoryAttempts:
    """Per replica: with N replicas behind a balancer, an attacker spreading tries over
    them gets at most N x `limit` tries per lockout."""

    limit: int = 5
    lockout_seconds: float = 900.0
    clock: Callable[[], float] = time.monotonic
    _failures: OrderedDict[str, tuple[int, float]] = field(default_factory=OrderedDict)

    async def locked_for(self, key: str) -> float:
        count, last = self._current(key)
        if count < self.limit:
            return 0.0
        return max(0.0, last + self.lockout_seconds - self.clock())

    async def failed(self, key: str) -> float:
        count, _ = self._current(key)
        self._failures[key] = (count + 1, self.clock())
        self._failures.move_to_end(key)
        while len(self._failures) > MAX_KEYS:
            self._failures.popitem(last=False)
        return await self.locked_for(key)

    async def cleared(self, key: str) -> None:
        self._failures.pop(key, None)

    def _current(self, key: str) -> tuple[int, float]:
        count, last = self._failures.get(key, (0, 0.0))
        if count and self.clock() - last >= self.lockout_seconds:
            del self._failures[key]
            return 0, 0.0
        return count, last


@dataclass
class MemoryReceipts:
    """Per replica, for `keep_seconds`: a retry that reaches another replica (or comes
    later) is sent again under the same command and order ids, which the worker answers
    as the same command (an order id reused with another body is refused there)."""

    keep_seconds: float = 24 * 3600.0
    clock: Callable[[], float] = time.monotonic
    _kept: OrderedDict[tuple[str, str], tuple[Receipt, float]] = field(  # (receipt, until)
        default_factory=OrderedDict
    )

    async def claim(self, username: str, key: str, receipt: Receipt) -> Receipt | None:
        entry = self._kept.get((username, key))
        if entry is not None and self.clock() < entry[1]:
            return entry[0]
        self._kept[(username, key)] = (receipt, self._until(receipt))
        self._kept.move_to_end((username, key))
        while len(self._kept) > MAX_KEYS:
            self._kept.popitem(last=False)
        return None

    async def sent(self, username: str, key: str, receipt: Receipt) -> None:
        if (username, key) in self._kept:
            self._kept[(username, key)] = (receipt, self._until(receipt))

    async def release(self, username: str, key: str) -> None:
        self._kept.pop((username, key), None)

    def _until(self, receipt: Receipt) -> float:
        return self.clock() + (self.keep_seconds if receipt.sent else PENDING_SECONDS)
