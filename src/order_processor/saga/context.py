"""What a saga step needs: the DAOs, the lock, the publisher, the limits, the clock."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from order_processor.domain.base import utc_now
from order_processor.exceptions import OrderProcessorError
from order_processor.messaging.publisher import EventPublisher
from order_processor.observability import Metrics
from order_processor.saga.faults import Faults
from order_processor.store.asset_balances import AssetTransactionDAO
from order_processor.store.assets import AssetDAO
from order_processor.store.balances import BalanceDAO
from order_processor.store.dynamo import call, cancellation_codes
from order_processor.store.lock import Lease, UserLock
from order_processor.store.orders import OrderDAO
from order_processor.store.users import UserDAO


@dataclass(frozen=True)
class Limits:
    max_order_value: Decimal
    daily_deposit: Decimal
    daily_withdraw: Decimal


@dataclass(frozen=True)
class SagaContext:
    dynamodb: Any
    users: UserDAO
    balances: BalanceDAO
    assets: AssetDAO
    asset_trades: AssetTransactionDAO
    orders: OrderDAO
    lock: UserLock
    publisher: EventPublisher
    limits: Limits
    faults: Faults = field(default_factory=Faults)
    clock: Callable[[], datetime] = utc_now
    metrics: Metrics = field(default_factory=Metrics)


class StepRefused(OrderProcessorError):
    """A step's transaction was cancelled by a condition: `part` names the item that
    refused it ("lock", "order", "balance", ...)."""

    code = "STEP_REFUSED"

    def __init__(self, part: str) -> None:
        super().__init__(f"the {part} condition refused the step")
        self.part = part


class LostLock(OrderProcessorError):
    """Another worker owns the user's lock now (our lease expired): hand the message back."""

    retryable = True
    code = "LOCK_LOST"


class OrderMovedOn(OrderProcessorError):
    """The order changed under us (another delivery advanced it): re-read and resume."""

    retryable = True
    code = "ORDER_MOVED_ON"


async def commit(
    context: SagaContext, lease: Lease, parts: Sequence[tuple[str, dict[str, Any]]]
) -> None:
    """One step: the fence first, then the named items, all or nothing."""
    items = [context.lock.fence(lease), *(item for _, item in parts)]
    names = ["lock", *(name for name, _ in parts)]
    try:
        await call(context.dynamodb, "transact_write_items", TransactItems=items)
    except ClientError as exc:
        codes = cancellation_codes(exc)
        if not codes:
            raise
        failed = next(names[i] for i, code in enumerate(codes) if code not in {"None", ""})
        if failed == "lock":
            raise LostLock(
                f"lost the lock of {lease.username} (token {lease.fencing_token})"
            ) from exc
        if failed == "order":
            raise OrderMovedOn("the order changed since it was read") from exc
        raise StepRefused(failed) from exc
