"""The expiry sweeper: QUEUED orders whose expiry has passed, found through the sparse
ExpiryIndex, each sent an ExpireOrder. The sweeper's clock decides what is due (the
command carries it as `issued_at`); the order worker releases the hold under the lock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from order_processor.messaging.commands import ExpireOrder, OrderReference
from order_processor.messaging.producer import Producer
from order_processor.saga.matcher import derived_id
from order_processor.security.tokens import TokenManager
from order_processor.store.orders import OrderDAO

SERVICE_NAME = "expiry-sweeper"


@dataclass(frozen=True)
class ExpirySweeper:
    orders: OrderDAO
    commands: Producer
    tokens: TokenManager

    async def sweep(self, now: datetime) -> list[ExpireOrder]:
        due = await self.orders.due_orders(now)
        token = self.tokens.create_access_token(SERVICE_NAME, role="service")
        commands = [
            ExpireOrder(
                command_id=derived_id("expire", order.order_id),
                username=order.username,
                issued_at=now,
                auth=token,
                payload=OrderReference(order_id=order.order_id),
            )
            for order in due
        ]
        await self.commands.send_batch(commands)
        return commands
