"""The ledger records of an order's steps. Record ids derive from the order id and the
record's kind (`record_id`), so a step that is retried can never record twice, and the
amounts follow the money rules: a buyer pays the cost rounded up, a seller receives the
proceeds rounded down, a limit buy holds the most it can cost."""

from __future__ import annotations

from decimal import Decimal

from order_processor.domain.assets import AssetTransaction, AssetTransactionType
from order_processor.domain.balances import BalanceTransactionCreate, TransactionType
from order_processor.domain.balances import TransactionType as T
from order_processor.domain.base import record_id
from order_processor.domain.currencies import minor_unit
from order_processor.domain.money import buy_cost
from order_processor.domain.orders import Order

SUFFIX = {
    TransactionType.ORDER_PAYMENT: "payment",
    TransactionType.ORDER_SALE: "sale",
    TransactionType.ORDER_REFUND: "refund",
    TransactionType.ORDER_HOLD: "hold",
    TransactionType.ORDER_RELEASE: "release",
}


def usd_record(order: Order, kind: TransactionType, amount: Decimal) -> BalanceTransactionCreate:
    """A cash record of an order's step, in the order's quote currency."""
    return BalanceTransactionCreate(
        transaction_id=record_id(order.order_id, SUFFIX[kind]),
        username=order.username,
        transaction_type=kind,
        currency=order.quote_currency,
        amount=amount,
        reference_id=order.order_id,
        description=f"{order.order_type} {order.quantity} {order.asset_id}",
    )


def asset_record(order: Order, kind: AssetTransactionType) -> AssetTransaction:
    price = order.price or order.limit_price or order.stop_price
    assert price is not None
    return AssetTransaction(
        transaction_id=record_id(order.order_id, kind.value.lower()),
        username=order.username,
        asset_id=order.asset_id,
        transaction_type=kind,
        quantity=order.quantity,
        price=price,
        total_amount=order.total_amount or Decimal("0.00"),
        order_id=order.order_id,
        created_at=order.updated_at,
    )


def hold_amount(order: Order) -> Decimal:
    """What a resting buy sets aside, rounded up to the cent: a limit buy the most it can
    cost; a conditional buy its hold price (see `domain.triggers`)."""
    price = order.hold_price or order.limit_price
    assert price is not None
    return buy_cost(order.quantity, price, minor_unit(order.quote_currency))


Records = tuple[tuple[BalanceTransactionCreate, ...], tuple[AssetTransaction, ...]]


def hold(order: Order) -> Records:
    """A resting order sets aside what it may spend: USD for a buy, the quantity for a
    sell."""
    if order.order_type.is_buy:
        return (usd_record(order, TransactionType.ORDER_HOLD, hold_amount(order)),), ()
    return (), (asset_record(order, AssetTransactionType.HOLD),)


def release(order: Order) -> Records:
    if order.order_type.is_buy:
        return (usd_record(order, TransactionType.ORDER_RELEASE, hold_amount(order)),), ()
    return (), (asset_record(order, AssetTransactionType.RELEASE),)


def debit(order: Order) -> Records:
    """The money leaving: a buy's payment, a sell's quantity (the order is priced). A buy
    paid in another currency pays after converting it (`paid_in`)."""
    assert order.total_amount is not None
    if order.order_type.is_buy:
        payment = usd_record(order, TransactionType.ORDER_PAYMENT, order.total_amount)
        return (*paid_in(order), payment), ()
    return (), (asset_record(order, AssetTransactionType.SELL),)


def credit(order: Order) -> Records:
    """What the order receives: a buy's quantity, a sell's proceeds."""
    assert order.total_amount is not None
    if order.order_type.is_buy:
        return (), (asset_record(order, AssetTransactionType.BUY),)
    return (usd_record(order, TransactionType.ORDER_SALE, order.total_amount),), ()


def refund(order: Order) -> Records:
    """The debit given back (a step after it failed for good)."""
    assert order.total_amount is not None
    if order.order_type.is_buy:
        return (usd_record(order, TransactionType.ORDER_REFUND, order.total_amount),), ()
    return (), (asset_record(order, AssetTransactionType.REFUND),)


def paid_in(order: Order) -> tuple[BalanceTransactionCreate, ...]:
    """A buy paid in another currency: its conversion's two records (`paid_amount` of the
    pay currency sold for exactly the total in the quote currency), else none."""
    if order.pay_currency is None or order.pay_currency == order.quote_currency:
        return ()
    assert order.paid_amount is not None
    assert order.total_amount is not None
    assert order.pay_rate is not None
    assert order.pay_spread_percent is not None
    return conversion_pair(
        order.username,
        order.order_id,
        (order.pay_currency, order.paid_amount),
        (order.quote_currency, order.total_amount),
        (order.pay_rate, order.pay_spread_percent),
        f"{order.order_type} {order.quantity} {order.asset_id}, paid in {order.pay_currency}",
        kinds=("fx-sold", "fx-bought"),
    )


def conversion_pair(
    username: str,
    reference: str,
    sold: tuple[str, Decimal],
    bought: tuple[str, Decimal],
    terms: tuple[Decimal, Decimal],
    note: str,
    kinds: tuple[str, str] = ("sold", "bought"),
) -> tuple[BalanceTransactionCreate, BalanceTransactionCreate]:
    """A conversion's two records, ids `reference` with each of `kinds`: the currency and
    amount sold (CONVERSION_OUT), those bought (CONVERSION_IN), each naming the other
    side, both with the `terms` applied (rate, spread percent)."""
    rate, spread = terms
    shared = {
        "username": username,
        "reference_id": reference,
        "rate": rate,
        "spread_percent": spread,
        "description": note,
    }
    sides = ((T.CONVERSION_OUT, sold, bought), (T.CONVERSION_IN, bought, sold))
    out, into = (
        BalanceTransactionCreate(
            transaction_id=record_id(reference, kind),
            transaction_type=kind_of,
            currency=mine[0],
            amount=mine[1],
            counter_currency=other[0],
            counter_amount=other[1],
            **shared,
        )
        for kind, (kind_of, mine, other) in zip(kinds, sides, strict=True)
    )
    return out, into


def joined(*parts: Records) -> Records:
    usd = tuple(r for part in parts for r in part[0])
    assets = tuple(r for part in parts for r in part[1])
    return usd, assets
