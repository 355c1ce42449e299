"""The analytics views recomputed from the tables: each final order's final event, as the
saga published it (`order_event` of the stored order), and each conversion's event, as
the saga publishes it again from its stored record (`conversion_event`), folded in memory.
What the analytics worker keeps incrementally must equal this."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import TYPE_CHECKING, Any

from order_processor.analytics.parts import Part, part_of
from order_processor.analytics.views import Report, Views
from order_processor.domain.balances import BalanceTransaction, TransactionType
from order_processor.domain.events import Event, order_event
from order_processor.saga.convert import sold_id, stored_conversion_event
from order_processor.store.dynamo import all_items, to_attribute, without_keys
from order_processor.store.keys import TRANSACTION_PREFIX
from order_processor.store.orders import OrderDAO

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient


async def rebuild(
    orders: OrderDAO, conversions: AsyncIterable[Event]
) -> tuple[Report, dict[str, Part]]:
    """The views from every final order and every conversion (`conversions`: their
    events, `conversion_events`), and each part counted, by its marker."""
    views = Views()
    counted: dict[str, Part] = {}

    async def events() -> AsyncIterator[Event]:
        async for order in orders.final_orders():
            yield order_event(order)
        async for event in conversions:
            yield event

    async for event in events():
        part = part_of(event)
        if part is not None and views.apply(event):
            counted[part.marker] = part
    return views.report(), counted


async def conversion_events(client: DynamoDBClient, users_table: str) -> AsyncIterator[Event]:
    """The `balance.converted` event of every Convert command, rebuilt from the record of
    the currency it sold, as the saga answers a redelivered command: a Scan of the users
    table, for the rebuild (an operator's command), never for the workers. A market buy
    paid in another currency is counted from its order (its records are `#fx-sold`)."""
    request: dict[str, Any] = {
        "TableName": users_table,
        "FilterExpression": "begins_with(SK, :tx) AND transaction_type = :out",
        "ExpressionAttributeValues": {
            ":tx": to_attribute(TRANSACTION_PREFIX),
            ":out": to_attribute(TransactionType.CONVERSION_OUT.value),
        },
        "ConsistentRead": True,
    }
    async for item in all_items(client, "scan", request):
        record = BalanceTransaction.model_validate(without_keys(item))
        conversion_id = record.reference_id
        if conversion_id and record.transaction_id == sold_id(conversion_id):
            yield stored_conversion_event(conversion_id, record)
