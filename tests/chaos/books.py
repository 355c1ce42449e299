"""The recount: the books re-derived from raw DynamoDB items.

Plain Scan calls over the users, orders and inventory tables, items decoded with boto3's
TypeDeserializer and read by their PK/SK alone: no DAO, no `order_processor.ops.ledger_audit`, no
`tests/ledger.py`, and the effect of each transaction type and the rounding rules written
out again here, so a mistake in the project's own tables cannot hide itself.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext
from functools import cached_property
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from order_processor.deployment.resources import Resources
from tests.chaos.findings import Finding, finding
from tests.chaos.load import Plan

CENT = Decimal("0.01")
ZERO = Decimal(0)
MINOR_UNITS = {"USD": 2, "EUR": 2, "GBP": 2, "JPY": 0}  # ISO 4217
# (sign on available, sign on held) of each type's positive amount: a cash record's in its
# currency (USD when it names none), an asset record's in its asset.
CASH_EFFECTS = {
    "DEPOSIT": (1, 0),
    "WITHDRAW": (-1, 0),
    "ORDER_PAYMENT": (-1, 0),
    "ORDER_SALE": (1, 0),
    "ORDER_REFUND": (1, 0),
    "ORDER_HOLD": (-1, 1),
    "ORDER_RELEASE": (1, -1),
    "CONVERSION_OUT": (-1, 0),  # the currency sold, to the exchange's liquidity in it
    "CONVERSION_IN": (1, 0),  # the currency bought, from the exchange's liquidity in it
}
CONVERSIONS = frozenset({"CONVERSION_OUT", "CONVERSION_IN"})
# A market buy paid in another currency: its conversion's records are `<order id>#fx-sold`
# and `#fx-bought` (a Convert's, `<command id>#sold` and `#bought`).
PAID_IN = "fx-"
ASSET_EFFECTS = {
    "BUY": (1, 0),
    "SELL": (-1, 0),
    "REFUND": (1, 0),
    "HOLD": (-1, 1),
    "RELEASE": (1, -1),
}
FINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "EXPIRED"})
# Conditional orders (written out again, not imported from the domain): those a rise
# triggers; the others a fall.
RISING = frozenset({"STOP_BUY", "TAKE_PROFIT_SELL", "TRAILING_STOP_BUY"})
FALLING = frozenset({"STOP_SELL", "TAKE_PROFIT_BUY", "TRAILING_STOP_SELL"})
CONDITIONAL = RISING | FALLING
INDEX_KEYS = ("book_key", "stop_key", "trail_key", "expiry_shard", "in_flight_shard")
# The matcher's indexes: the asset, and the price at which a fall (a rise) reaches the order.
REACH_KEYS = ("fall_key", "rise_key")
REACH_PRICES = ("fall_price", "rise_price")
IN_FLIGHT = frozenset({"PENDING", "PROCESSING"})

_decode = TypeDeserializer().deserialize


def unit(currency: str) -> Decimal:
    """The currency's minor unit: 0.01, or 1 for the yen."""
    return Decimal(1).scaleb(-MINOR_UNITS[currency])


def buyer_pays(quantity: Decimal, price: Decimal, currency: str = "USD") -> Decimal:
    """Rounded up to the minor unit of the price's currency (the asset's quote)."""
    with localcontext() as context:
        context.prec = 60
        return (quantity * price).quantize(unit(currency), rounding=ROUND_CEILING)


def seller_gets(quantity: Decimal, price: Decimal, currency: str = "USD") -> Decimal:
    with localcontext() as context:
        context.prec = 60
        return (quantity * price).quantize(unit(currency), rounding=ROUND_FLOOR)


# --- raw items ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Balance:
    """A cash balance (asset_id: its currency, "USD", "EUR", ...) or an asset holding."""

    username: str
    asset_id: str
    available: Decimal
    held: Decimal


@dataclass(frozen=True)
class Record:
    """A cash transaction (ledger "cash", asset_id its currency) or an asset transaction
    (ledger "asset"). A conversion's records carry its terms too."""

    ledger: str
    username: str
    record_id: str
    asset_id: str
    kind: str
    amount: Decimal  # in the currency for cash records, the quantity for asset records
    status: str
    order_id: str | None
    counter_currency: str | None = None
    counter_amount: Decimal | None = None
    rate: Decimal | None = None
    spread_percent: Decimal | None = None

    @property
    def label(self) -> str:
        return f"{self.ledger}:{self.kind}"

    @property
    def is_conversion(self) -> bool:
        return self.ledger == "cash" and self.kind in CONVERSIONS

    def effect(self) -> tuple[Decimal, Decimal]:
        table = CASH_EFFECTS if self.ledger == "cash" else ASSET_EFFECTS
        on_available, on_held = table.get(self.kind, (0, 0))
        return self.amount * on_available, self.amount * on_held


@dataclass(frozen=True)
class StoredOrder:
    order_id: str
    username: str
    order_type: str
    asset_id: str
    quantity: Decimal
    limit_price: Decimal | None
    price: Decimal | None
    total_amount: Decimal | None
    status: str
    sequence: int
    step: str | None
    failure_reason: str | None
    expires_at: datetime | None
    stop_price: Decimal | None = None
    trail_amount: Decimal | None = None
    trail_percent: Decimal | None = None
    best_price: Decimal | None = None
    hold_price: Decimal | None = None
    updated_at: datetime | None = None
    index_keys: tuple[tuple[str, str], ...] = ()  # the sparse indexes' keys it carries
    # Its asset's quote currency (its prices, holds and total are in it) and, for a market
    # buy paid in another currency, what paid and at what rate (quote per unit of it).
    quote_currency: str = "USD"
    pay_currency: str | None = None
    paid_amount: Decimal | None = None
    pay_rate: Decimal | None = None
    pay_spread_percent: Decimal | None = None

    @property
    def is_buy(self) -> bool:
        return self.order_type.endswith("BUY")

    @property
    def is_limit(self) -> bool:
        return self.order_type.startswith("LIMIT")

    @property
    def is_conditional(self) -> bool:
        return self.order_type in CONDITIONAL

    @property
    def is_trailing(self) -> bool:
        return self.order_type.startswith("TRAILING_STOP")

    @property
    def paid_in(self) -> bool:
        """A buy paid from a balance in another currency than its quote (converted)."""
        return self.pay_currency is not None and self.pay_currency != self.quote_currency

    @property
    def rests(self) -> bool:
        """Waits QUEUED, holding, until executed, cancelled or expired."""
        return self.is_limit or self.is_conditional

    @property
    def triggers_on_rise(self) -> bool:
        return self.order_type in RISING

    def hold(self) -> Decimal:
        """What the order sets aside while QUEUED: its quote currency for a buy (quantity x
        its hold price: the limit, or a conditional buy's `hold_price`), the quantity for a
        sell."""
        if not self.is_buy:
            return self.quantity
        price = self.limit_price if self.is_limit else self.hold_price
        if price is None:
            return ZERO  # a conditional buy without its hold price: a finding of its own
        return buyer_pays(self.quantity, price, self.quote_currency)


@dataclass(frozen=True)
class Books:
    balances: dict[tuple[str, str], Balance]  # (username, currency or asset id)
    records: list[Record]
    orders: dict[str, StoredOrder]
    prices: dict[str, Decimal]
    # (username, currency): the exchange's liquidity part kept with the user
    liquidity: dict[tuple[str, str], Decimal] = field(default_factory=dict)

    def records_of(self, order_id: str) -> list[Record]:
        return self._by_order.get(order_id, [])

    def record(self, username: str, record_id: str) -> Record | None:
        return self._by_id.get((username, record_id))

    @cached_property
    def _by_order(self) -> dict[str, list[Record]]:
        found: dict[str, list[Record]] = defaultdict(list)
        for record in self.records:
            if record.order_id is not None:
                found[record.order_id].append(record)
        return found

    @cached_property
    def _by_id(self) -> dict[tuple[str, str], Record]:
        return {(r.username, r.record_id): r for r in self.records}


async def scan(dynamodb: Any, table: str) -> list[dict[str, Any]]:
    """Every item of a table, decoded, page by page."""
    items: list[dict[str, Any]] = []
    arguments: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = await dynamodb.scan(**arguments)
        items += [{k: _decode(v) for k, v in item.items()} for item in page.get("Items", [])]
        if "LastEvaluatedKey" not in page:
            return items
        arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]


async def load_books(dynamodb: Any, resources: Resources) -> Books:
    users = await scan(dynamodb, resources.users_table)
    orders = await scan(dynamodb, resources.orders_table)
    inventory = await scan(dynamodb, resources.inventory_table)
    balances = [b for b in (_balance(i) for i in users) if b is not None]
    return Books(
        balances={(b.username, b.asset_id): b for b in balances},
        records=[r for r in (_record(i) for i in users) if r is not None],
        orders={o.order_id: o for o in (_order(i) for i in orders if i["SK"] == "ORDER")},
        prices={i["SK"].removeprefix("ASSET#"): i["price"] for i in inventory if "price" in i},
        liquidity={
            (_username(i), str(i["SK"]).removeprefix("LIQUIDITY#")): i["amount"]
            for i in users
            if str(i["SK"]).startswith("LIQUIDITY#")
        },
    )


def _username(item: dict[str, Any]) -> str:
    return str(item["PK"]).removeprefix("USER#")


def _balance(item: dict[str, Any]) -> Balance | None:
    sk = str(item["SK"])
    if sk.startswith("BALANCE#"):
        currency = sk.removeprefix("BALANCE#")
        return Balance(_username(item), currency, item["available"], item["held"])
    if sk.startswith("ASSET#") and str(item["PK"]).startswith("USER#"):
        held = item.get("held", ZERO)
        return Balance(_username(item), sk.removeprefix("ASSET#"), item["available"], held)
    return None


def _record(item: dict[str, Any]) -> Record | None:
    sk = str(item["SK"])
    if sk.startswith("TX#"):
        record_id, kind = sk.removeprefix("TX#"), item["transaction_type"]
        return Record(
            "cash",
            _username(item),
            record_id,
            item.get("currency", "USD"),
            kind,
            item["amount"],
            item["status"],
            _order_of(record_id, item.get("reference_id"), kind),
            item.get("counter_currency"),
            item.get("counter_amount"),
            item.get("rate"),
            item.get("spread_percent"),
        )
    if sk.startswith("ATX#"):
        return Record(
            "asset",
            _username(item),
            sk.removeprefix("ATX#"),
            item["asset_id"],
            item["transaction_type"],
            item["quantity"],
            item["status"],
            item.get("order_id"),
        )
    return None


def _order_of(record_id: str, reference: str | None, kind: str) -> str | None:
    """A saga's cash record is `<order_id>#<kind>`, a buy's paid in another currency
    `<order_id>#fx-sold` and `#fx-bought` too; a deposit's or withdrawal's is its command
    id (no "#"). (A Convert's, `<command id>#sold` and `#bought`, is no order's.)"""
    if "#" in record_id:
        order_id, _, leg = record_id.partition("#")
        if kind in CONVERSIONS and not leg.startswith(PAID_IN):
            return None
        return order_id
    return None if reference == record_id else reference


def _order(item: dict[str, Any]) -> StoredOrder:
    expires = item.get("expires_at")
    return StoredOrder(
        order_id=item["order_id"],
        username=item["username"],
        order_type=item["order_type"],
        asset_id=item["asset_id"],
        quantity=item["quantity"],
        limit_price=item.get("limit_price"),
        price=item.get("price"),
        total_amount=item.get("total_amount"),
        status=item["status"],
        sequence=int(item["sequence"]),
        step=item.get("step"),
        failure_reason=item.get("failure_reason"),
        expires_at=datetime.fromisoformat(expires) if expires else None,
        stop_price=item.get("stop_price"),
        trail_amount=item.get("trail_amount"),
        trail_percent=item.get("trail_percent"),
        best_price=item.get("best_price"),
        hold_price=item.get("hold_price"),
        updated_at=datetime.fromisoformat(item["updated_at"]) if "updated_at" in item else None,
        quote_currency=item.get("quote_currency", "USD"),
        pay_currency=item.get("pay_currency"),
        paid_amount=item.get("paid_amount"),
        pay_rate=item.get("pay_rate"),
        pay_spread_percent=item.get("pay_spread_percent"),
        index_keys=tuple(
            (k, number(item[k]) if k in REACH_PRICES else str(item[k]))
            for k in (*INDEX_KEYS, *REACH_KEYS, *REACH_PRICES)
            if k in item
        ),
    )


def number(value: Decimal) -> str:
    """A price as text, whatever its trailing zeros (95 and 95.00000000 alike)."""
    return format(Decimal(value).normalize(), "f")


# --- check 2: each order has exactly its effects ------------------------------------------

NONE: frozenset[str] = frozenset()


def _labels(*labels: str) -> frozenset[str]:
    return frozenset(labels)


def _expected() -> dict[tuple[str, str], tuple[frozenset[str], ...]]:
    pay, sale, refund = "cash:ORDER_PAYMENT", "cash:ORDER_SALE", "cash:ORDER_REFUND"
    hold, release = "cash:ORDER_HOLD", "cash:ORDER_RELEASE"
    a_hold, a_release = "asset:HOLD", "asset:RELEASE"
    table = {
        ("MARKET_BUY", "COMPLETED"): (_labels(pay, "asset:BUY"),),
        ("MARKET_BUY", "FAILED"): (NONE, _labels(pay, refund)),
        ("MARKET_SELL", "COMPLETED"): (_labels("asset:SELL", sale),),
        ("MARKET_SELL", "FAILED"): (NONE, _labels("asset:SELL", "asset:REFUND")),
        ("LIMIT_BUY", "QUEUED"): (_labels(hold),),
        ("LIMIT_BUY", "COMPLETED"): (_labels(hold, release, pay, "asset:BUY"),),
        ("LIMIT_BUY", "FAILED"): (NONE, _labels(hold, release, pay, refund)),
        ("LIMIT_SELL", "QUEUED"): (_labels(a_hold),),
        ("LIMIT_SELL", "COMPLETED"): (_labels(a_hold, a_release, "asset:SELL", sale),),
        ("LIMIT_SELL", "FAILED"): (NONE, _labels(a_hold, a_release, "asset:SELL", "asset:REFUND")),
    }
    for kind, held in (("LIMIT_BUY", (hold, release)), ("LIMIT_SELL", (a_hold, a_release))):
        for status in ("CANCELLED", "EXPIRED"):
            table[(kind, status)] = (_labels(*held),)
    # Conditional orders rest like limit orders. One more ending: a stop buy (fixed or
    # trailing) whose market price ran past its hold and what is available fails at
    # execution, its hold released. Nothing else can refuse an execution in this load.
    for kind in sorted(CONDITIONAL):
        buy = kind.endswith("BUY")
        held = (hold, release) if buy else (a_hold, a_release)
        paid = (pay, "asset:BUY") if buy else ("asset:SELL", sale)
        table[(kind, "QUEUED")] = (_labels(held[0]),)
        table[(kind, "COMPLETED")] = (_labels(*held, *paid),)
        table[(kind, "FAILED")] = (NONE, _labels(*held)) if kind in TOPPED_UP else (NONE,)
        for status in ("CANCELLED", "EXPIRED"):
            table[(kind, status)] = (_labels(*held),)
    return table


# The buys that pay the market price above what they hold, topping the hold up (or failing).
TOPPED_UP = frozenset({"STOP_BUY", "TRAILING_STOP_BUY"})


EXPECTED_EFFECTS = _expected()


def effect_findings(books: Books, plan: Plan) -> list[Finding]:
    findings = _orphans(books)
    for order in books.orders.values():
        if order.status in IN_FLIGHT:
            continue  # reported by the commands check, with its records
        findings += _order_effects(order, books.records_of(order.order_id), plan)
    return findings


def _orphans(books: Books) -> list[Finding]:
    """Records naming an order that does not exist, or kept under another account."""
    return [f for f in (_orphan(r, books) for r in books.records if r.order_id) if f]


def _orphan(record: Record, books: Books) -> Finding | None:
    ids = (record.username, record.record_id)
    order = books.orders.get(record.order_id or "")
    if order is None:
        detail = f"{record.label} {record.amount} names order {record.order_id}: no such order"
        return finding("effects", "record_without_order", ids, detail)
    if record.username == order.username and record.asset_id in _accounts(order):
        return None
    detail = (
        f"{record.label} of order {order.order_id} under {record.username}/{record.asset_id}, "
        f"but the order is {order.username}'s {order.asset_id}"
    )
    return finding("effects", "record_of_another_account", ids, detail)


def _accounts(order: StoredOrder) -> set[str]:
    """What an order's records may move: its asset, its quote currency, what it paid in."""
    return {order.asset_id, order.quote_currency, order.pay_currency or order.quote_currency}


def _allowed(order: StoredOrder) -> tuple[frozenset[str], ...]:
    """The sets of records an order's type and status allow; a buy paid in another
    currency has its conversion's two wherever it paid."""
    allowed = EXPECTED_EFFECTS.get((order.order_type, order.status), ())
    if not order.paid_in:
        return allowed
    return tuple(a | CONVERSION_LABELS if "cash:ORDER_PAYMENT" in a else a for a in allowed)


CONVERSION_LABELS = frozenset(f"cash:{kind}" for kind in CONVERSIONS)


def _order_effects(order: StoredOrder, records: list[Record], plan: Plan) -> list[Finding]:
    found = []
    counts = Counter(r.label for r in records)
    twice = sorted(label for label, n in counts.items() if n > 1)
    if twice:
        found.append(
            finding("effects", "record_twice", order.order_id, f"{twice} recorded more than once")
        )
    allowed = _allowed(order)
    if frozenset(counts) not in allowed:
        expected = " or ".join(str(sorted(a)) for a in allowed) or "nothing known"
        found.append(
            finding(
                "effects",
                "wrong_records",
                order.order_id,
                f"{order.order_type} {order.status} has {sorted(counts)}; expected {expected}",
            )
        )
    found += _amount_findings(order, records)
    if counts.get("cash:ORDER_PAYMENT") or counts.get("asset:SELL"):
        found += _execution_findings(order, plan)
    return found


def _expected_amount(order: StoredOrder, record: Record) -> tuple[Decimal | None, str]:
    """A record's amount and what it is of: an asset record the quantity of the asset; a
    hold at the hold price, the conversion's sold side what the order paid in its pay
    currency, the others the total, in the quote currency."""
    if record.ledger == "asset":
        return order.quantity, order.asset_id
    if record.kind in {"ORDER_HOLD", "ORDER_RELEASE"}:
        return (order.hold() if order.rests else None), order.quote_currency
    if record.kind == "CONVERSION_OUT":
        return order.paid_amount, str(order.pay_currency)
    return order.total_amount, order.quote_currency


def _amount_findings(order: StoredOrder, records: Iterable[Record]) -> list[Finding]:
    found = []
    for record in records:
        amount, of = _expected_amount(order, record)
        if (record.amount, record.asset_id, record.status) != (amount, of, "COMPLETED"):
            found.append(
                finding(
                    "effects",
                    "wrong_amount",
                    (order.order_id, record.record_id),
                    f"{record.label} {record.amount} {record.asset_id} ({record.status}); "
                    f"expected {amount} {of} COMPLETED",
                )
            )
        if record.is_conversion and (record.rate, record.spread_percent) != (
            order.pay_rate,
            order.pay_spread_percent,
        ):
            detail = (
                f"{record.label} at {record.rate} (spread {record.spread_percent}), the "
                f"order's {order.pay_rate} ({order.pay_spread_percent})"
            )
            found.append(
                finding("effects", "wrong_pay_rate", (order.order_id, record.record_id), detail)
            )
    return found


def _execution_findings(order: StoredOrder, plan: Plan) -> list[Finding]:
    """An executed order: priced at a price the asset had, never worse than its limit,
    its total rounded by the house's rule."""
    price, total = order.price, order.total_amount
    if price is None or total is None:
        return [finding("effects", "unpriced", order.order_id, "money moved but no price/total")]
    problems = []
    if price not in plan.prices_of(order.asset_id):
        problems.append(f"price {price} was never a price of {order.asset_id}")
    rule = buyer_pays if order.is_buy else seller_gets
    if total != rule(order.quantity, price, order.quote_currency):
        problems.append(
            f"total {total} != {order.quantity} x {price} rounded for the house to the "
            f"{order.quote_currency} minor unit"
        )
    problems += _payment_problems(order, total)
    if order.limit_price is not None and (
        price > order.limit_price if order.is_buy else price < order.limit_price
    ):
        problems.append(f"price {price} is worse than the limit {order.limit_price}")
    if order.is_conditional:
        problems += _trigger_problems(order, price)
    return [finding("effects", "wrong_execution", order.order_id, p) for p in problems]


def _payment_problems(order: StoredOrder, total: Decimal) -> list[str]:
    """A buy paid in another currency sold exactly what the total costs at its pay rate,
    rounded up to the pay currency's minor unit; any other buy paid nothing else."""
    if not order.paid_in:
        return [] if order.paid_amount is None else [f"paid {order.paid_amount}, not paid in"]
    pay, rate, paid = str(order.pay_currency), order.pay_rate, order.paid_amount
    if rate is None or paid is None:
        return [f"paid in {pay} without a paid amount ({paid}) or a rate ({rate})"]
    with localcontext() as context:
        context.prec = 60
        owed = (total / rate).quantize(unit(pay), rounding=ROUND_CEILING)
    if paid == owed:
        return []
    return [f"paid {paid} {pay} for {total} {order.quote_currency} at {rate}; it costs {owed}"]


def _trigger_problems(order: StoredOrder, price: Decimal) -> list[str]:
    """A conditional order executes only at a price that reaches its stop: a stop or a
    take-profit its own; a trailing stop the one at its trail from its best price (that
    the best price is one the path published is checked with the other trail rules)."""
    stop = order.stop_price
    if stop is None:
        return ["executed without a stop price"]
    problems = []
    if order.is_trailing:
        if order.best_price is None:
            return ["a trailing stop executed without a best price"]
        at_trail = trail_stop(order, order.best_price)
        if stop != at_trail:
            problems.append(f"stop {stop} is not at the trail from its best, {at_trail}")
    if not reaches(order, price, stop):
        side = "below" if order.triggers_on_rise else "above"
        problems.append(f"executed at {price}, {side} its stop {stop}: never triggered")
    return problems


def reaches(order: StoredOrder, price: Decimal, stop: Decimal) -> bool:
    """Whether `price` triggers a conditional order whose stop is `stop`."""
    return price >= stop if order.triggers_on_rise else price <= stop


PRICE_TICK = Decimal("1e-8")  # the smallest price
SLIPPAGE = Decimal(5)  # a stop buy holds its stop plus 5 %


def trail_stop(order: StoredOrder, best: Decimal) -> Decimal:
    """The stop at the trail's distance from `best`: a sell's below, rounded down; a buy's
    above, rounded up; never below the smallest price."""
    with localcontext() as context:
        context.prec = 60
        if order.trail_amount is not None:
            distance = order.trail_amount
        else:
            assert order.trail_percent is not None
            distance = best * order.trail_percent / 100
        if order.is_buy:
            stop = (best + distance).quantize(PRICE_TICK, rounding=ROUND_CEILING)
        else:
            stop = (best - distance).quantize(PRICE_TICK, rounding=ROUND_FLOOR)
    return max(stop, PRICE_TICK)


def with_slippage(stop: Decimal) -> Decimal:
    with localcontext() as context:
        context.prec = 60
        return (stop * (100 + SLIPPAGE) / 100).quantize(PRICE_TICK, rounding=ROUND_CEILING)


# --- check 3: balances equal their records, and what the plan implies --------------------


def ledger_findings(books: Books) -> list[Finding]:
    """Each balance item against the sum of its COMPLETED records; none negative."""
    sums: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    found = []
    for record in books.records:
        if record.status != "COMPLETED":
            continue
        on_available, on_held = record.effect()
        total = sums[(record.username, record.asset_id)]
        total[0] += on_available
        total[1] += on_held
    for key in sorted(set(sums) | set(books.balances)):
        found += _compare(
            "ledger_mismatch", key, books.balances.get(key), tuple(sums[key]), "its records sum to"
        )
    found += [
        finding("balances", "negative", key, f"available {b.available}, held {b.held}")
        for key, b in books.balances.items()
        if b.available < 0 or b.held < 0
    ]
    found += [
        finding("balances", "unknown_type", (r.username, r.record_id), f"{r.label}")
        for r in books.records
        if r.kind not in (CASH_EFFECTS if r.ledger == "cash" else ASSET_EFFECTS)
    ]
    return found


def _compare(
    kind: str,
    key: tuple[str, str],
    balance: Balance | None,
    expected: tuple[Decimal, ...],
    source: str,
) -> list[Finding]:
    stored = (balance.available, balance.held) if balance else (ZERO, ZERO)
    if stored == expected:
        return []
    return [
        finding(
            "balances",
            kind,
            key,
            f"stored available/held {stored[0]}/{stored[1]}, {source} {expected[0]}/{expected[1]}",
        )
    ]


def implied_findings(
    books: Books, plan: Plan, moved: dict[tuple[str, str], Decimal], order_ids: set[str]
) -> list[Finding]:
    """Each balance against the plan: starting cash (each currency) and holdings, plus
    the funds commands and conversions that were applied (`moved`: signed amount per
    user and currency), plus completed orders; held = the holds of the open limit
    orders. Only orders the load sent count."""
    implied: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for trader in plan.traders:
        implied[(trader.username, "USD")][0] += trader.usd
        for currency, amount in trader.cash:
            implied[(trader.username, currency)][0] += amount
        for asset_id, quantity in trader.holdings:
            implied[(trader.username, asset_id)][0] += quantity
    for account, amount in moved.items():
        implied[account][0] += amount
    for order in (o for o in books.orders.values() if o.order_id in order_ids):
        _apply_order(implied, order)
    keys = sorted(set(implied) | set(books.balances))
    return [
        f
        for key in keys
        for f in _compare(
            "plan_mismatch", key, books.balances.get(key), tuple(implied[key]), "the plan implies"
        )
    ]


def _apply_order(implied: dict[tuple[str, str], list[Decimal]], order: StoredOrder) -> None:
    """Its quote currency and its asset; a buy paid in another currency pays what it paid
    from that currency (the conversion's amount bought is its total, spent at once)."""
    cash = implied[(order.username, order.quote_currency)]
    asset = implied[(order.username, order.asset_id)]
    if order.status == "COMPLETED" and order.total_amount is not None:
        sign = -1 if order.is_buy else 1
        if order.paid_in and order.paid_amount is not None:
            implied[(order.username, str(order.pay_currency))][0] -= order.paid_amount
        else:
            cash[0] += sign * order.total_amount
        asset[0] -= sign * order.quantity
    if order.status == "QUEUED" and order.rests:
        side = cash if order.is_buy else asset
        side[0] -= order.hold()
        side[1] += order.hold()
