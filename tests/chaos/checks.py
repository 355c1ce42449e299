"""The checks after the drain that compare the journal of what was sent with the books
(raw items) and with the events heard: every command answered, every order final (or an
open resting order), every deposit, withdrawal and conversion recorded as sent (in its
currency) exactly when its event says it applied, every order's last event its stored
state, duplicates executed once,
nothing in the dead-letter queue, conditional orders as requested and held, their trails
and executions on prices the path published, every resting order in its indexes; the
analytics views equal to their rebuild from the orders table, each final order counted
once."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from order_processor.analytics.views import Report as AnalyticsReport
from tests.chaos.books import (
    FINAL,
    IN_FLIGHT,
    ZERO,
    Books,
    StoredOrder,
    number,
    reaches,
    trail_stop,
    with_slippage,
)
from tests.chaos.findings import Finding, finding
from tests.chaos.load import (
    CancelIntent,
    ConvertIntent,
    FundsIntent,
    Journal,
    PlaceIntent,
    Plan,
    PriceIntent,
    RepeatIntent,
    Sent,
)
from tests.chaos.observe import StatusEvents
from tests.chaos.quoted import money_problems

# The rejections a command of the load may meet; anything else is a finding.
EXPECTED_REJECTIONS = {
    "PlaceOrder": frozenset(),
    "CancelOrder": frozenset({"ORDER_NOT_CANCELLABLE"}),
    "Deposit": frozenset({"LIMIT_EXCEEDED"}),
    "Withdraw": frozenset({"LIMIT_EXCEEDED", "INSUFFICIENT_BALANCE"}),
    # Never FX_RATE_MISSING or FX_RATE_STALE: the rates are seeded, then moved every few
    # seconds, and the run's deployment allows them more than its drain.
    "Convert": frozenset({"INSUFFICIENT_BALANCE", "CONVERSION_TOO_SMALL"}),
    "UpdatePrice": frozenset(),
    "UpdateRate": frozenset(),
}
# A QUEUED order due this long before the processes stopped should have been expired
# (the sweeper runs every second).
OVERDUE_MARGIN = timedelta(seconds=10)
SEED_PREFIX = "seed-"


# --- check 1: every command answered, every order settled --------------------------------


def waiting_findings(
    journal: Journal, books: Books, events: StatusEvents, due_before: datetime
) -> list[Finding]:
    """What the drain waits for: orders in flight, commands without an answer, QUEUED
    orders due before `due_before` (the drain waits for every due order; the final check
    allows the sweeper OVERDUE_MARGIN before the processes stopped)."""
    rejected = events.rejections()
    found = [_in_flight(o, books) for o in books.orders.values() if o.status in IN_FLIGHT]
    found += [
        finding("commands", "unanswered", (s.command.type.value, s.command_id), _describe(s))
        for s in journal.sent
        if s.repeat is None and not _answered(s, books, rejected)
    ]
    found += [
        finding(
            "commands",
            "overdue",
            o.order_id,
            f"QUEUED although it expired at {o.expires_at.isoformat()}",
        )
        for o in books.orders.values()
        if o.status == "QUEUED" and o.expires_at and o.expires_at < due_before
    ]
    return found


def _in_flight(order: StoredOrder, books: Books) -> Finding:
    labels = sorted(r.label for r in books.records_of(order.order_id))
    return finding(
        "commands",
        "in_flight",
        order.order_id,
        f"{order.order_type} {order.status} (step {order.step}, sequence {order.sequence}) "
        f"with records {labels}",
    )


def _describe(sent: Sent) -> str:
    return f"{sent.intent} sent at {sent.at:.1f}s has neither its effect nor a rejection"


def _answered(sent: Sent, books: Books, rejected: dict[str, set[str]]) -> bool:
    if sent.command_id in rejected:
        return True
    intent = sent.intent
    if isinstance(intent, PlaceIntent):
        return intent.order_id in books.orders  # one still in flight is reported as such
    if isinstance(intent, CancelIntent):
        order = books.orders.get(intent.order_id)
        return order is not None and order.status == "CANCELLED"
    if isinstance(intent, FundsIntent):
        return books.record(intent.username, sent.command_id) is not None
    if isinstance(intent, ConvertIntent):
        return books.record(intent.username, sold_record(sent.command_id)) is not None
    return True  # price and rate updates: the matcher answers them with ExecuteOrder commands


def sold_record(command_id: str) -> str:
    """A conversion's first record: its command id and '#sold' (the other, '#bought')."""
    return f"{command_id}#sold"


def command_findings(journal: Journal, books: Books, events: StatusEvents) -> list[Finding]:
    """Beyond waiting: statuses, orders nobody sent, cancels, funds records, rejections."""
    sent_orders = {intent.order_id for _, intent in journal.places()}
    found = [
        finding("commands", "order_not_sent", o.order_id, f"{o.order_type} {o.status}")
        for o in books.orders.values()
        if o.order_id not in sent_orders
    ]
    found += [
        finding("commands", "wrong_status", o.order_id, f"{o.order_type} is {o.status}")
        for o in books.orders.values()
        if o.status not in FINAL | IN_FLIGHT | {"QUEUED"} or (o.status == "QUEUED" and not o.rests)
    ]
    found += _cancel_findings(journal, books)
    found += _funds_findings(journal, books, events)
    found += _conversion_command_findings(journal, books, events)
    found += _rejection_findings(journal, events, set(books.orders))
    return found


def _cancel_findings(journal: Journal, books: Books) -> list[Finding]:
    cancelled = {intent.order_id for _, intent in journal.cancels()}
    return [
        finding("commands", "cancelled_unasked", o.order_id, "CANCELLED but no cancel was sent")
        for o in books.orders.values()
        if o.status == "CANCELLED" and o.order_id not in cancelled
    ]


def _funds_findings(journal: Journal, books: Books, events: StatusEvents) -> list[Finding]:
    found = []
    applied = events.funds_applied()
    for sent, intent in journal.funds():
        record = books.record(intent.username, sent.command_id)
        kind = "WITHDRAW" if intent.withdraw else "DEPOSIT"
        ids = (intent.username, sent.command_id)
        wanted = (kind, intent.currency, intent.amount, "COMPLETED")
        if record is not None and (
            (record.kind, record.asset_id, record.amount, record.status) != wanted
        ):
            detail = (
                f"recorded {record.kind} {record.asset_id} {record.amount} {record.status}, "
                f"sent {wanted}"
            )
            found.append(finding("commands", "funds_wrong_record", ids, detail))
        if (record is not None) != (sent.command_id in applied):
            detail = "a record but no applied event" if record else "an applied event, no record"
            found.append(finding("commands", "funds_event_disagrees", ids, detail))
    return found + _orphan_findings(journal, books)


def _conversion_command_findings(
    journal: Journal, books: Books, events: StatusEvents
) -> list[Finding]:
    """Each conversion sent: recorded as asked (what it sold, of what, for what) exactly
    when its balance.converted event says it applied, the event telling the records'
    amounts and rate."""
    found = []
    applied = events.conversions_applied()
    for sent, intent in journal.conversions():
        sold = books.record(intent.username, sold_record(sent.command_id))
        ids = (intent.username, sent.command_id)
        heard = applied.get(sent.command_id)
        if (sold is None) != (heard is None):
            detail = "records but no converted event" if sold else "a converted event, no records"
            found.append(finding("commands", "conversion_event_disagrees", ids, detail))
        if sold is None:
            continue
        asked = (intent.sell, intent.amount, intent.buy)
        if (sold.asset_id, sold.amount, sold.counter_currency) != asked:
            detail = f"sold {sold.amount} {sold.asset_id} for {sold.counter_currency}, sent {asked}"
            found.append(finding("commands", "conversion_wrong_record", ids, detail))
        told = (sold.amount, sold.counter_amount, sold.rate)
        if heard is not None and told != tuple(
            Decimal(str(heard.get(k))) for k in ("sold", "bought", "rate")
        ):
            detail = f"the event says {heard}, the records {told}"
            found.append(finding("commands", "conversion_event_differs", ids, detail))
    return found


def _orphan_findings(journal: Journal, books: Books) -> list[Finding]:
    """A record that is no order's must be a seed, a deposit/withdrawal or one of the two
    records of a conversion of the load."""
    known = {sent.command_id for sent, _ in journal.funds()}
    known |= {
        f"{sent.command_id}#{leg}"
        for sent, _ in journal.conversions()
        for leg in ("sold", "bought")
    }
    return [
        finding(
            "effects",
            "orphan_record",
            (record.username, record.record_id),
            f"{record.label} {record.amount} belongs to no command of the load",
        )
        for record in books.records
        if record.order_id is None
        and not _is_seed(record.record_id)
        and (record.ledger == "asset" or record.record_id not in known)
    ]


def _is_seed(record_id: str) -> bool:
    return record_id.startswith(SEED_PREFIX)


def _first_rejected(journal: Journal, order_id: str, rejected: dict[str, set[str]]) -> bool:
    """Whether the first PlaceOrder of the order was rejected (nothing stored)."""
    first = journal.by_key.get(order_id)
    return first is not None and first.command_id in rejected


def _rejection_findings(journal: Journal, events: StatusEvents, stored: set[str]) -> list[Finding]:
    by_id: dict[str, Sent] = {}
    for sent in journal.sent:
        by_id.setdefault(sent.command_id, sent)
    found = []
    rejections = events.rejections()
    for command_id, reasons in rejections.items():
        if command_id not in by_id:
            found.append(
                finding("commands", "system_command_rejected", command_id, f"{sorted(reasons)}")
            )
            continue
        sent = by_id[command_id]
        allowed = EXPECTED_REJECTIONS.get(sent.command.type.value, frozenset())
        if isinstance(sent.intent, PlaceIntent) and sent.intent.expires_in is not None:
            allowed = allowed | {"ALREADY_EXPIRED"}  # a short expiry passed before a worker came
        if isinstance(sent.intent, CancelIntent) and (
            sent.intent.order_id not in stored
            or _first_rejected(journal, sent.intent.order_id, rejections)
        ):
            # Its order was rejected ALREADY_EXPIRED (and perhaps placed by a conflicting
            # repeat since: see `duplicate_findings`).
            allowed = allowed | {"ORDER_NOT_FOUND"}
        if sent.repeat == "conflicting":
            allowed = frozenset({"CONFLICTING_DUPLICATE"})
            original = journal.by_key.get(_key(sent))
            if (
                original is not None
                and original.command_id in rejections
                and isinstance(original.intent, PlaceIntent)
                and original.intent.expires_in is not None
            ):
                # Nothing was stored: the repeat is a new request, its expiry as short.
                allowed = allowed | {"ALREADY_EXPIRED"}
        if not reasons <= allowed:
            detail = (
                f"{sent.command.type.value} rejected {sorted(reasons - allowed)}: {sent.intent}"
            )
            found.append(finding("commands", "unexpected_rejection", command_id, detail))
    return found


def both_ways_notes(journal: Journal, books: Books, events: StatusEvents) -> list[str]:
    """Funds commands and conversions both rejected and applied: possible when a copy of
    a rejected withdrawal or conversion arrives after the balance grew (a rejection is not
    remembered)."""
    rejected = events.rejections()
    applied: list[tuple[Sent, FundsIntent | ConvertIntent]] = [
        (sent, intent)
        for sent, intent in journal.funds()
        if books.record(intent.username, sent.command_id)
    ]
    applied += [
        (sent, intent)
        for sent, intent in journal.conversions()
        if books.record(intent.username, sold_record(sent.command_id))
    ]
    return [
        f"{sent.command.type.value} {sent.command_id} ({intent}) was rejected "
        f"{sorted(rejected[sent.command_id])} and also applied"
        for sent, intent in applied
        if sent.command_id in rejected
    ]


def placed_by_repeat_notes(journal: Journal, books: Books, events: StatusEvents) -> list[str]:
    """Orders whose first PlaceOrder was rejected and a conflicting repeat placed."""
    rejected = events.rejections()
    return [
        f"{sent.intent.key}: its first PlaceOrder was rejected "
        f"{sorted(rejected.get(journal.by_key[sent.intent.key].command_id, set()))}; "
        "a conflicting repeat placed it"
        for sent in journal.repeats("conflicting")
        if isinstance(sent.intent, RepeatIntent)
        and sent.intent.key in books.orders
        and sent.command_id not in rejected
        and _first_rejected(journal, sent.intent.key, rejected)
    ]


def marketable_notes(books: Books) -> list[str]:
    """Open orders the final price triggers, and trailing stops whose best price is worse
    than the final price. Legitimate only in a narrow race (the order was queued just after
    the matcher's queries for the last price update: the rematch, every 60 s, catches up
    with a triggered one; nothing moves a trail until the next update); more often a sign
    of a lost ExecuteOrder or a missed trail move."""
    notes = []
    for o in books.orders.values():
        price = books.prices.get(o.asset_id)
        if o.status != "QUEUED" or price is None:
            continue
        if _triggers(o, price):
            at = f"limit {o.limit_price}" if o.is_limit else f"stop {o.stop_price}"
            notes.append(
                f"{o.order_id} {o.order_type} {at} is still QUEUED although the final "
                f"{o.asset_id} price {price} triggers it"
            )
        if o.is_trailing and o.best_price is not None and _improves(o, o.best_price, price):
            notes.append(
                f"{o.order_id} {o.order_type} best price {o.best_price} is worse than the "
                f"final {o.asset_id} price {price}, which came after it"
            )
    return notes


def _triggers(order: StoredOrder, price: Decimal) -> bool:
    if order.is_conditional:
        return order.stop_price is not None and reaches(order, price, order.stop_price)
    limit = order.limit_price
    if limit is None:
        return False
    return price <= limit if order.is_buy else price >= limit


def _improves(order: StoredOrder, best: Decimal, price: Decimal) -> bool:
    """Whether `price` is better than `best` for a trailing stop (a sell: higher)."""
    return price < best if order.is_buy else price > best


# --- check 7: conditional orders ------------------------------------------------------------


def conditional_findings(journal: Journal, books: Books, plan: Plan) -> list[Finding]:
    """Each stored conditional order as requested, its hold priced by the rules, a
    trailing stop's best a price the path published (before its execution) and its stop
    at the trail from it; an executed one's price published before its execution; and
    every resting order in exactly the sparse indexes its state puts it in."""
    requests = {intent.order_id: intent for _, intent in journal.places()}
    published = _publications(journal, plan)
    found: list[Finding] = []
    for order in books.orders.values():
        if order.status not in IN_FLIGHT:
            found += _index_findings(order)
        intent = requests.get(order.order_id)
        if not order.is_conditional or intent is None:
            continue
        problems = _request_problems(order, intent) + _hold_problems(order, plan)
        problems += _failure_problems(order, books)
        if order.is_trailing:
            problems += _trail_problems(order, plan, published)
        if order.status == "COMPLETED" and order.price is not None:
            problems += _published_problems(order, order.price, "execution price", published)
        found += [finding("conditional", kind, order.order_id, p) for kind, p in problems]
    return found


Problem = tuple[str, str]


def _publications(journal: Journal, plan: Plan) -> dict[tuple[str, Decimal], datetime]:
    """When each (asset, price) was first published: a listing price before anything, an
    update when the load issued it."""
    first: dict[tuple[str, Decimal], datetime] = {
        (x.asset_id, x.price): datetime.min.replace(tzinfo=UTC) for x in plan.listings
    }
    for sent in journal.sent:
        if isinstance(sent.intent, PriceIntent):
            key = (sent.intent.asset_id, sent.intent.price)
            first.setdefault(key, sent.command.issued_at)
    return first


def _published_problems(
    order: StoredOrder,
    price: Decimal,
    what: str,
    published: dict[tuple[str, Decimal], datetime],
) -> list[Problem]:
    when = published.get((order.asset_id, price))
    if when is None:
        return [("unpublished_price", f"{what} {price} was never published for {order.asset_id}")]
    if order.status == "COMPLETED" and order.updated_at and when > order.updated_at:
        detail = (
            f"{what} {price} was first published at {when.isoformat()}, after the execution "
            f"at {order.updated_at.isoformat()}"
        )
        return [("price_from_the_future", detail)]
    return []


def _request_problems(order: StoredOrder, intent: PlaceIntent) -> list[Problem]:
    # A trailing stop's stop is its own, moving: compared with its trail elsewhere.
    stop = None if order.is_trailing else order.stop_price
    stored = (order.order_type, stop, order.trail_amount, order.trail_percent)
    sent = (intent.order_type.value, intent.stop_price, intent.trail_amount, intent.trail_percent)
    if stored == sent:
        return []
    return [("not_as_requested", f"stored {stored}, requested {sent}")]


def _failure_problems(order: StoredOrder, books: Books) -> list[Problem]:
    """Failing after it was held (its hold released) is only a stop buy's, short of USD
    when the market ran past its hold."""
    if order.status != "FAILED" or not books.records_of(order.order_id):
        return []
    if (order.failure_reason, order.step) == ("INSUFFICIENT_BALANCE", "released"):
        return []
    detail = f"FAILED {order.failure_reason} at step {order.step} after it was held"
    return [("unexpected_failure", detail)]


def _hold_problems(order: StoredOrder, plan: Plan) -> list[Problem]:
    """A sell holds its quantity (no hold price); a take-profit buy holds at its target, a
    stop buy at its stop plus the slippage, a trailing buy at its first stop (the trail
    from the price at placement, a price of the path) plus the slippage."""
    held_at, stop = order.hold_price, order.stop_price
    if not order.is_buy:
        return [] if held_at is None else [("wrong_hold_price", f"a sell with {held_at}")]
    if held_at is None or stop is None:
        return [("wrong_hold_price", f"hold price {held_at}, stop {stop}")]
    if order.order_type == "TAKE_PROFIT_BUY":
        wanted = {stop}
    elif order.order_type == "STOP_BUY":
        wanted = {with_slippage(stop)}
    else:
        wanted = {with_slippage(trail_stop(order, p)) for p in plan.prices_of(order.asset_id)}
        if held_at < with_slippage(stop):
            return [("wrong_hold_price", f"{held_at} is below the stop {stop} plus slippage")]
    if held_at in wanted:
        return []
    detail = f"hold price {held_at}" + (f", expected {min(wanted)}" if len(wanted) == 1 else "")
    return [("wrong_hold_price", detail + f" (stop {stop})")]


def _trail_problems(
    order: StoredOrder, plan: Plan, published: dict[tuple[str, Decimal], datetime]
) -> list[Problem]:
    best, stop = order.best_price, order.stop_price
    if best is None or stop is None:
        return [("trail_lost", f"best price {best}, stop {stop}")]
    problems = _published_problems(order, best, "best price", published)
    if stop != trail_stop(order, best):
        detail = f"stop {stop} is not at the trail from its best {best}: {trail_stop(order, best)}"
        problems.append(("stop_off_the_trail", detail))
    return problems


def _reach(order: StoredOrder) -> dict[str, Decimal | None]:
    """Where a fall and a rise reach a resting order (FallTriggers, RiseTriggers): its
    limit or stop on the side that triggers it, a trailing stop's best on the other."""
    if order.is_limit:
        return {"fall" if order.is_buy else "rise": order.limit_price}
    trigger, other = ("rise", "fall") if order.triggers_on_rise else ("fall", "rise")
    reach = {trigger: order.stop_price}
    if order.is_trailing:
        reach[other] = order.best_price
    return reach


def _index_findings(order: StoredOrder) -> list[Finding]:
    """A QUEUED order is in its book (limit) or the stop index (conditional; a trailing
    stop also in the trails index), in the matcher's reach indexes at the prices that
    reach it, and in the expiry index; a final one in none."""
    wanted: dict[str, str] = {}
    side = "BUY" if order.is_buy else "SELL"
    if order.status == "QUEUED" and order.rests:
        if order.is_limit:
            wanted["book_key"] = f"{order.asset_id}#{side}"
        else:
            rise = "RISE" if order.triggers_on_rise else "FALL"
            wanted["stop_key"] = f"{order.asset_id}#{rise}"
        if order.is_trailing:
            wanted["trail_key"] = f"{order.asset_id}#{side}"
        if order.expires_at is not None:
            wanted["expiry_shard"] = "EXPIRING"
        for move, at in _reach(order).items():
            wanted[f"{move}_key"] = order.asset_id
            wanted[f"{move}_price"] = "None" if at is None else number(at)
    stored = dict(order.index_keys)
    if stored == wanted:
        return []
    detail = f"{order.order_type} {order.status} carries {stored}, expected {wanted}"
    return [finding("conditional", "wrong_index_keys", order.order_id, detail)]


# --- check 4: every order's last event is its stored state -------------------------------


def event_findings(books: Books, events: StatusEvents) -> list[Finding]:
    found: list[Finding] = []
    heard = events.of_orders()
    for order in books.orders.values():
        found += _last_event(order, heard.get(order.order_id, []))
    found += [
        finding("events", "event_without_order", order_id, f"{len(bodies)} event(s)")
        for order_id, bodies in heard.items()
        if order_id not in books.orders
    ]
    return found + _duplicate_events(events)


def _last_event(order: StoredOrder, bodies: list[dict[str, Any]]) -> list[Finding]:
    if not bodies:
        return [finding("events", "no_event", order.order_id, f"stored {order.status}")]
    last = max(bodies, key=lambda b: int(b.get("sequence", 0)))
    heard = (last.get("status"), int(last.get("sequence", 0)))
    if heard == (order.status, order.sequence):
        return [
            finding("events", "last_event_money_differs", order.order_id, problem)
            for problem in money_problems(order, last)
        ]
    return [
        finding(
            "events",
            "last_event_differs",
            order.order_id,
            f"last event {heard[0]} #{heard[1]}, stored {order.status} #{order.sequence}",
        )
    ]


RESTAMPED_FIELDS = frozenset({"occurred_at", "data.message_id"})


def _duplicate_events(events: StatusEvents) -> list[Finding]:
    """Copies of one event_id must carry identical content. What differs is classified:
    `duplicate_restamped` (only the publish time or the SQS message id),
    `duplicate_reformatted` (only the spelling of equal decimals, "6.385" vs "6.3850"),
    `duplicate_differs` (anything else: state). A `command.rejected` event is the one kind
    that answers no stored state: its copies may differ in time and in the SQS message
    that carried the command (an exact duplicate is another message), nothing else."""
    found = []
    for event_id, copies in events.by_event_id().items():
        flat = [_flatten(c) for c in copies]
        differing = sorted(
            k for k in set().union(*flat) if any(f.get(k) != flat[0].get(k) for f in flat)
        )
        rejection = flat[0].get("event_type") == "command.rejected"
        if not differing or (rejection and set(differing) <= RESTAMPED_FIELDS):
            continue
        values = [f"{k}={sorted({str(f.get(k)) for f in flat})}" for k in differing]
        kind = "duplicate_differs"
        if set(differing) <= RESTAMPED_FIELDS:
            kind = "duplicate_restamped"
        elif all(_same_number(f.get(k) for f in flat) for k in differing):
            kind = "duplicate_reformatted"
        found.append(finding("events", kind, event_id, f"{len(copies)} copies: {values}"))
    return found


def _same_number(values: Iterable[Any]) -> bool:
    try:
        return len({Decimal(str(v)) for v in values}) == 1
    except ArithmeticError:
        return False


def _flatten(body: dict[str, Any]) -> dict[str, Any]:
    data = {f"data.{k}": v for k, v in body.get("data", {}).items()}
    return {**{k: v for k, v in body.items() if k != "data"}, **data}


# --- check 5: duplicates executed once, conflicts never ----------------------------------


def duplicate_findings(journal: Journal, books: Books, events: StatusEvents) -> list[Finding]:
    rejected = events.rejections()
    found = []
    for sent in journal.repeats("conflicting") + journal.repeats("exact"):
        original = journal.by_key.get(_key(sent))
        if original is None or not isinstance(original.intent, PlaceIntent):
            continue  # a repeated funds command: its balance effect is checked once
        order = books.orders.get(original.intent.order_id)
        conflicting = "CONFLICTING_DUPLICATE" in rejected.get(sent.command_id, set())
        repeat = sent.intent
        if (
            original.command_id in rejected
            and isinstance(repeat, RepeatIntent)
            and repeat.conflicting_quantity is not None
            and not conflicting
        ):
            # The first request was rejected (ALREADY_EXPIRED), which is not remembered:
            # the conflicting repeat is a new order, stored as it asked.
            if order is not None and order.quantity != repeat.conflicting_quantity:
                detail = (
                    f"stored quantity {order.quantity}, placed by a repeat with "
                    f"{repeat.conflicting_quantity}"
                )
                found.append(finding("duplicates", "request_replaced", order.order_id, detail))
            continue
        if sent.repeat == "exact" and original.command_id in rejected:
            # A copy of a rejected first request (rejected alike: its very body): what is
            # stored, if anything, a conflicting repeat placed (checked above).
            continue
        if order is not None and order.quantity != original.intent.quantity:
            detail = f"stored quantity {order.quantity}, first request {original.intent.quantity}"
            found.append(finding("duplicates", "request_replaced", order.order_id, detail))
        if sent.repeat == "conflicting" and not conflicting:
            detail = "a conflicting request was not rejected CONFLICTING_DUPLICATE"
            found.append(finding("duplicates", "conflict_accepted", sent.command_id, detail))
        if sent.repeat == "exact" and conflicting:
            detail = "an exact copy was rejected as a conflict"
            found.append(finding("duplicates", "copy_called_conflict", sent.command_id, detail))
    return found


def _key(sent: Sent) -> str:
    intent = sent.intent
    return str(getattr(intent, "key", getattr(intent, "order_id", "")))


# --- check 6: the dead-letter queue -------------------------------------------------------


def dead_letter_findings(letters: list[dict[str, Any]], journal: Journal) -> list[Finding]:
    """Every command the load or the system sends is good: a dead letter is a finding."""
    sent = {s.command_id for s in journal.sent}
    return [
        finding(
            "dlq",
            "dead_letter",
            (str(letter.get("type")), str(letter.get("command_id"))),
            f"{letter.get('username')} "
            f"{'sent by the load' if letter.get('command_id') in sent else 'sent by the system'}: "
            f"{letter.get('payload')}",
        )
        for letter in letters
    ]


def funds_by_account(journal: Journal, events: StatusEvents) -> dict[tuple[str, str], Decimal]:
    """Signed sum of the deposits and withdrawals announced as applied, per user and
    currency."""
    applied = events.funds_applied()
    totals: dict[tuple[str, str], Decimal] = {}
    for sent, intent in journal.funds():
        if sent.command_id in applied:
            sign = -1 if intent.withdraw else 1
            account = (intent.username, intent.currency)
            totals[account] = totals.get(account, ZERO) + sign * intent.amount
    return totals


def converted_by_account(journal: Journal, events: StatusEvents) -> dict[tuple[str, str], Decimal]:
    """What the conversions announced as applied moved each user's balance by, per
    currency: less what they sold, plus what they bought (as their events say)."""
    applied = events.conversions_applied()
    totals: dict[tuple[str, str], Decimal] = {}
    for sent, intent in journal.conversions():
        data = applied.get(sent.command_id)
        if data is None:
            continue
        for currency, amount in (
            (data["sell"], -Decimal(data["sold"])),
            (data["buy"], Decimal(data["bought"])),
        ):
            account = (intent.username, str(currency))
            totals[account] = totals.get(account, ZERO) + amount
    return totals


# --- check 7: the analytics views ---------------------------------------------------------


def analytics_findings(
    stored: AnalyticsReport,
    rebuilt: AnalyticsReport,
    counted: dict[str, str],
    books: Books,
    letters: list[dict[str, Any]],
    left: int,
    *,
    drained: bool = True,
) -> list[Finding]:
    """The analytics worker's views once its queue drained (`drained`: it went quiet
    before the processes were stopped; `left`: messages still in it or in flight at the
    end): equal to their rebuild from the orders table; each order final in the table
    counted once, with its final status (`counted`: order id -> the status of its final
    marker), no other; nothing in its dead-letter queue."""
    found = [
        finding("analytics", "differs_from_rebuild", key, f"stored {detail} rebuilt")
        for key, _, detail in (line.partition(": ") for line in stored.differences(rebuilt))
    ]
    finals = {o.order_id: o.status for o in books.orders.values() if o.status in FINAL}
    totals = [sum(stored.statuses.values()), len(counted), sum(rebuilt.statuses.values())]
    if totals != [len(finals)] * 3:
        detail = (
            f"{len(finals)} final orders in the table; the views count {totals[0]}, "
            f"{totals[1]} final markers, the rebuild {totals[2]}"
        )
        found.append(finding("analytics", "final_count", "views", detail))
    for order_id in sorted(set(finals) | set(counted)):
        stored_status, marked = finals.get(order_id), counted.get(order_id)
        if marked is None:
            found.append(finding("analytics", "not_counted", order_id, f"{stored_status}"))
        elif stored_status is None:
            status = books.orders[order_id].status if order_id in books.orders else "no order"
            found.append(finding("analytics", "counted_not_final", order_id, f"{status}"))
        elif marked.upper() != stored_status:
            detail = f"counted {marked}, stored {stored_status}"
            found.append(finding("analytics", "counted_other_status", order_id, detail))
    found += [
        finding(
            "analytics",
            "dead_letter",
            (str(letter.get("event_type")), str(letter.get("event_id"))),
            json.dumps(letter, sort_keys=True)[:300],
        )
        for letter in letters
    ]
    if not drained:
        detail = "the analytics queue never stayed empty while its worker ran"
        found.append(finding("analytics", "drain_gave_up", "queue", detail))
    if left:
        detail = f"{left} message(s) still in the analytics queue or in flight"
        found.append(finding("analytics", "not_drained", "queue", detail))
    return found
