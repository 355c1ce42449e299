"""The gateway's ports: what it reads (`GatewayReads`), how it sends commands
(`CommandSender`), where it counts failed logins (`Attempts`) and remembers each
Idempotency-Key's request (`Receipts`). Adapters: `dynamo` (the DAOs), the producer;
in-memory ones in `memory`, held to the same contract suites."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from order_processor.domain.assets import Asset
from order_processor.domain.balances import Balance
from order_processor.domain.commands import AnyCommand
from order_processor.domain.orders import Order, OrderStatus
from order_processor.domain.portfolio import Portfolio
from order_processor.domain.users import User


@dataclass(frozen=True)
class OrdersPage:
    """A user's orders, newest first; `cursor` (the store's own, unsigned) resumes after
    the last one, None on the last page."""

    orders: list[Order]
    cursor: str | None = None


class UnknownCursor(Exception):
    """The store cannot resume from this cursor."""


class GatewayReads(Protocol):
    async def authenticate(self, username: str, password: str) -> User | None:
        """The active user these credentials name, or None; as slow for an unknown user
        as for a wrong password (a bcrypt check against a hash nothing matches)."""
        ...

    async def order(self, username: str, order_id: str) -> Order | None:
        """The order if it is this user's (another user's is None, as a missing one)."""
        ...

    async def orders(
        self, username: str, status: OrderStatus | None, limit: int, cursor: str | None
    ) -> OrdersPage:
        """Newest first; UnknownCursor for a cursor the store did not issue."""
        ...

    async def balances(self, username: str) -> list[Balance]:
        """Every currency's balance (none before the first)."""
        ...

    async def portfolio(self, username: str) -> Portfolio:
        """Empty (nothing held, no cash) for a user without a balance."""
        ...

    async def prices(self) -> list[Asset]:
        """The active assets with their prices, by asset id."""
        ...


class CommandSender(Protocol):
    """The producer's `send`: on a FIFO queue the group is the command's user."""

    async def send(self, command: AnyCommand) -> str: ...


class Attempts(Protocol):
    """Failed logins under a key (a username, an address): after `limit` failures within
    the lockout the key is locked for the lockout, counted from the last failure."""

    async def locked_for(self, key: str) -> float:
        """Seconds until the key may try again; 0 when it may now."""
        ...

    async def failed(self, key: str) -> float:
        """Count a failure; the seconds the key is now locked for (0: not locked)."""
        ...

    async def cleared(self, key: str) -> None:
        """A success: the key's failures forgotten."""
        ...


PENDING_SECONDS = 60.0  # an unsent receipt's longest life: its sender may have died


@dataclass(frozen=True)
class Receipt:
    """What one Idempotency-Key of a user was first used for, and the answer given."""

    digest: str
    answer: str
    sent: bool = True  # False while its command is being sent (or the sender died)


class Receipts(Protocol):
    """Each (user, Idempotency-Key)'s first request, for a while."""

    async def claim(self, username: str, key: str, receipt: Receipt) -> Receipt | None:
        """Keep `receipt` unless one is kept for the key: then that one, unchanged. A
        receipt claimed unsent is kept at most `PENDING_SECONDS` until `sent`."""
        ...

    async def sent(self, username: str, key: str, receipt: Receipt) -> None:
        """The key's command was sent: `receipt` (sent) is kept from now on, its whole
        time."""
        ...

    async def release(self, username: str, key: str) -> None:
        """Forget the key (its command could not be sent: a retry may send it)."""
        ...
