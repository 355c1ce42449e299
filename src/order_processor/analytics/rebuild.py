"""The analytics views recomputed from the orders table: each final order's final event,
as the saga published it (`order_event` of the stored order), folded in memory. What the
analytics worker keeps incrementally must equal this."""

from __future__ import annotations

from order_processor.analytics.views import Contribution, Report, Views, contribution
from order_processor.domain.events import order_event
from order_processor.store.orders import OrderDAO


async def rebuild(orders: OrderDAO) -> tuple[Report, dict[str, Contribution]]:
    """The views from every final order, and each order's contribution (its marker)."""
    views = Views()
    finals: dict[str, Contribution] = {}
    async for order in orders.final_orders():
        event = order_event(order)
        part = contribution(event)
        if part is not None and views.apply(event):
            finals[part.order_id] = part
    return views.report(), finals
