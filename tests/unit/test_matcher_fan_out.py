"""What the matcher does with many waiting orders on one price move: the trailing-stop
moves and the ExecuteOrder batches run several at a time, each exactly once, and a
failure of one is reported only after all the others were tried (over fake clients)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any, cast

import pytest
from botocore.exceptions import ClientError

from order_processor.domain.assets import Asset
from order_processor.domain.commands import AnyCommand
from order_processor.domain.orders import Order
from order_processor.domain.ports import PriceChange
from order_processor.domain.triggers import PriceMove
from order_processor.exceptions import ServiceUnavailableException
from order_processor.handlers.admission import Admission
from order_processor.handlers.prices import FIFO_SEND_IN_FLIGHT, SEND_IN_FLIGHT, PriceMatcher
from order_processor.handlers.trails import TRAIL_MOVES_IN_FLIGHT, move_trails
from order_processor.messaging.producer import CommandFactory, Producer, SendFailed, SendRefused
from order_processor.messaging.publisher import EventPublisher
from order_processor.security.audit import AuditLogger
from order_processor.security.tokens import TokenManager
from order_processor.store.dynamo import from_item
from order_processor.store.items import order_item
from order_processor.store.orders import OrderDAO
from tests.builders import a_trailing_stop

SECRET = "fan-out-secret-" + "f" * 32


class Gauge:
    """How many calls are running at once, at most."""

    def __init__(self) -> None:
        self.now = self.most = 0

    async def __aenter__(self) -> None:
        self.now += 1
        self.most = max(self.most, self.now)
        await asyncio.sleep(0)  # let the others start

    async def __aexit__(self, *_: object) -> None:
        self.now -= 1


class FakeSqs:
    def __init__(self, refuse_in: set[int] | None = None) -> None:
        self.batches: list[list[str]] = []
        self.gauge = Gauge()
        self.refuse_in = refuse_in or set()

    async def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> Any:
        async with self.gauge:
            number = len(self.batches)
            self.batches.append([e["MessageBody"] for e in Entries])
        if number in self.refuse_in:
            return {"Failed": [{"Id": "0", "Code": "Refused", "Message": "no"}]}
        return {"Successful": [{"Id": e["Id"]} for e in Entries]}


def deposits(count: int) -> list[AnyCommand]:
    factory = CommandFactory(TokenManager(SECRET))
    return [factory.deposit(f"user_{n:03d}", "1") for n in range(count)]


async def test_independent_commands_go_in_batches_of_ten_several_at_a_time_each_once() -> None:
    sqs, commands = FakeSqs(), deposits(95)

    ids = await Producer(cast(Any, sqs), "url", fifo=True).send_batch(commands, in_flight=4)

    assert ids == [c.command_id for c in commands]
    assert sorted(b for batch in sqs.batches for b in batch) == sorted(c.body() for c in commands)
    assert [len(b) for b in sqs.batches] == [10] * 9 + [5]
    assert 1 < sqs.gauge.most <= 4


async def test_by_default_batches_go_one_after_another_in_the_order_given() -> None:
    sqs, commands = FakeSqs(), deposits(25)

    await Producer(cast(Any, sqs), "url", fifo=True).send_batch(commands)

    assert [b for batch in sqs.batches for b in batch] == [c.body() for c in commands]
    assert sqs.gauge.most == 1


async def test_every_batch_is_tried_and_every_refused_command_reported() -> None:
    sqs, commands = FakeSqs(refuse_in={1, 3}), deposits(50)

    with pytest.raises(SendFailed) as refused:
        await Producer(cast(Any, sqs), "url", fifo=True).send_batch(commands, in_flight=8)

    assert len(sqs.batches) == 5
    refused_bodies = {sqs.batches[1][0], sqs.batches[3][0]}
    assert sorted(refused.value.failed) == sorted(
        c.command_id for c in commands if c.body() in refused_bodies
    )


class FlakySqs(FakeSqs):
    """Fails the first entry of each of its first `failing` calls, through no fault of the
    sender; or, with `ours`, as the sender's fault."""

    def __init__(self, failing: int, ours: bool = False) -> None:
        super().__init__()
        self.failing, self.ours = failing, ours

    async def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> Any:
        self.batches.append([e["MessageBody"] for e in Entries])
        if len(self.batches) > self.failing:
            return {"Successful": [{"Id": e["Id"]} for e in Entries]}
        failed = {"Id": Entries[0]["Id"], "Code": "InternalError", "SenderFault": self.ours}
        return {"Successful": [{"Id": e["Id"]} for e in Entries[1:]], "Failed": [failed]}


async def test_independent_commands_sqs_failed_are_sent_again_those_alone() -> None:
    sqs, commands = FlakySqs(failing=2), deposits(10)

    await Producer(cast(Any, sqs), "url", fifo=False).send_batch(commands, independent=True)

    first = commands[0].body()
    assert sqs.batches == [[c.body() for c in commands], [first], [first]]


async def test_commands_in_order_are_not_sent_again_past_the_ones_after_them() -> None:
    sqs, commands = FlakySqs(failing=1), deposits(3)

    with pytest.raises(SendFailed) as failed:
        await Producer(cast(Any, sqs), "url", fifo=True).send_batch(commands)

    assert failed.value.retryable
    assert failed.value.failed == [commands[0].command_id]
    assert len(sqs.batches) == 1


async def test_a_command_sqs_refuses_as_ours_is_never_sent_again() -> None:
    sqs, commands = FlakySqs(failing=5, ours=True), deposits(2)

    with pytest.raises(SendRefused) as refused:
        await Producer(cast(Any, sqs), "url", fifo=False).send_batch(commands, independent=True)

    assert not refused.value.retryable
    assert len(sqs.batches) == 1


def trailing_sell(best: str) -> Order:
    return a_trailing_stop(best=best, trail="1")


def client_error(code: str) -> ClientError:
    return ClientError(
        cast(Any, {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": 400}}),
        "UpdateItem",
    )


class FakeDynamo:
    """Holds `orders` (sells); UpdateItem records each move,
    refusing the ids in `moved_meanwhile` by their condition and failing on `broken`."""

    def __init__(
        self,
        orders: list[Order],
        moved_meanwhile: set[str],
        broken: set[str],
        answer_lost: frozenset[str] = frozenset(),
    ) -> None:
        self.items = {o.order_id: order_item(o) for o in orders}
        self.moved_meanwhile, self.broken, self.answer_lost = moved_meanwhile, broken, answer_lost
        self.updates: list[str] = []
        self.gauge = Gauge()

    async def update_item(self, **request: Any) -> Any:
        order_id = from_item(request["Key"])["PK"].split("#", 1)[1]
        async with self.gauge:
            self.updates.append(order_id)
        if order_id in self.moved_meanwhile:
            raise client_error("ConditionalCheckFailedException")
        if order_id in self.broken:
            raise client_error("InternalServerError")
        values = request["ExpressionAttributeValues"]
        item = dict(self.items[order_id])
        item |= {"best_price": values[":best"], "stop_price": values[":stop"]}
        item |= {"updated_at": values[":now"]}
        item["sequence"] = {"N": str(int(item["sequence"]["N"]) + 1)}  # ADD #sequence :one
        self.items[order_id] = item
        if order_id in self.answer_lost:
            # Committed, its answer lost; botocore's retry met it: refused, with the item.
            error = client_error("ConditionalCheckFailedException")
            cast(dict[str, Any], error.response)["Item"] = item
            raise error
        return {"Attributes": item}


async def test_a_move_whose_answer_was_lost_is_announced_as_it_stands() -> None:
    """The move committed, its answer was lost, and botocore's retry was refused by the
    move's own condition: it is the move's own state, announced (found in the chaos run
    with AWS's failures: that state's event was never published)."""
    orders = [trailing_sell("5"), trailing_sell("6")]
    lost = frozenset({orders[0].order_id})
    dynamo = FakeDynamo(orders, moved_meanwhile=set(), broken=set(), answer_lost=lost)

    moved = await move_trails(OrderDAO(cast(Any, dynamo), "orders"), orders, Decimal("10"))

    assert sorted(o.order_id for o in moved) == sorted(o.order_id for o in orders)
    assert {(o.best_price, o.sequence) for o in moved} == {(Decimal("10"), orders[0].sequence + 1)}


async def test_every_trail_a_price_improves_on_is_moved_once_several_at_a_time() -> None:
    orders = [trailing_sell(f"{5 + n / 100:.2f}") for n in range(100)]
    skipped = {orders[7].order_id, orders[42].order_id}
    dynamo = FakeDynamo(orders, moved_meanwhile=skipped, broken=set())

    moved = await move_trails(OrderDAO(cast(Any, dynamo), "orders"), orders, Decimal("10"))

    assert sorted(dynamo.updates) == sorted(o.order_id for o in orders)
    assert [o.order_id for o in moved] == [o.order_id for o in orders if o.order_id not in skipped]
    assert {(o.best_price, o.stop_price) for o in moved} == {(Decimal("10"), Decimal("9"))}
    assert {o.sequence for o in moved} == {orders[0].sequence + 1}
    assert 1 < dynamo.gauge.most <= TRAIL_MOVES_IN_FLIGHT


async def test_a_failed_trail_move_is_raised_after_every_other_move_was_tried() -> None:
    orders = [trailing_sell("5") for _ in range(40)]
    dynamo = FakeDynamo(orders, moved_meanwhile=set(), broken={orders[3].order_id})

    with pytest.raises(ServiceUnavailableException):
        await move_trails(OrderDAO(cast(Any, dynamo), "orders"), orders, Decimal("10"))

    assert sorted(dynamo.updates) == sorted(o.order_id for o in orders)


class FakeAssets:
    """The price falls from 10 to whatever is written."""

    async def change_price(
        self, asset_id: str, price: Decimal, *, as_of: Any, command_id: str
    ) -> PriceChange:
        before = Asset(asset_id=asset_id, name="Coin", price=Decimal("10"))
        return PriceChange(before, before.model_copy(update={"price": price}))


class FakeOrders:
    def __init__(self, triggered: list[Order]) -> None:
        self.triggered = triggered

    async def reached(self, asset_id: str, price: Decimal, move: PriceMove) -> list[Order]:
        return self.triggered if move is PriceMove.FALL else []


@pytest.mark.parametrize(
    ("fifo", "in_flight"), [(True, FIFO_SEND_IN_FLIGHT), (False, SEND_IN_FLIGHT)]
)
async def test_the_matcher_sends_one_execute_order_per_triggered_order_batches_at_once(
    fifo: bool, in_flight: int
) -> None:
    tokens = TokenManager(SECRET)
    triggered = [trailing_sell("5") for _ in range(205)]
    sqs = FakeSqs()
    matcher = PriceMatcher(
        assets=cast(Any, FakeAssets()),
        orders=cast(Any, FakeOrders(triggered)),
        commands=Producer(cast(Any, sqs), "url", fifo=fifo),
        admission=Admission(tokens),
        publisher=cast(EventPublisher, None),
        audit=AuditLogger(),
    )

    sent = await matcher.apply(CommandFactory(tokens).update_price("BTC", "4"))

    assert sorted(c.payload.order_id for c in sent) == sorted(o.order_id for o in triggered)
    assert sorted(b for batch in sqs.batches for b in batch) == sorted(c.body() for c in sent)
    assert 1 < sqs.gauge.most <= in_flight
