"""The producer: build, validate and send commands (one or in batches of 10).

`Producer` (asyncio, aioboto3) and `SyncProducer` (boto3) share the envelope building; a
plain boto3 `send_message` with a body that follows the schema works just as well, this
only saves writing the envelope. On a FIFO queue the group is the user (one user's
commands apply in the order sent); deduplication is the queue's content-based one (a hash
of the body, which holds a token with a random id): a deduplication id chosen from the
command id would be predictable, and anyone able to send to the queue could have SQS drop
a user's command by sending first under that id.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from order_processor.domain.base import new_id, utc_now
from order_processor.domain.commands import (
    AnyCommand,
    CancelOrder,
    Convert,
    ConvertPayload,
    Deposit,
    ExecuteOrder,
    ExpireOrder,
    FundsPayload,
    OrderReference,
    PlaceOrder,
    PlaceOrderPayload,
    PricePayload,
    RatePayload,
    ResumeOrder,
    ServiceName,
    UpdatePrice,
    UpdateRate,
    Withdraw,
    command_digest,
)
from order_processor.domain.currencies import BASE_CURRENCY
from order_processor.domain.orders import OrderCreate
from order_processor.exceptions import OrderProcessorError, ServiceUnavailableException
from order_processor.security.tokens import TokenManager

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient
    from types_aiobotocore_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

BATCH = 10
SEND_ATTEMPTS = 5
SEND_PAUSE_SECONDS = 0.05


class SendFailed(ServiceUnavailableException):
    """SQS failed some messages of a batch, through no fault of the sender (another try
    later may take them); `failed` are their command ids."""

    def __init__(self, failed: list[str], reasons: list[str]) -> None:
        super().__init__(f"SQS refused {len(failed)} command(s): {'; '.join(reasons)}")
        self.failed = failed
        self.reasons = reasons


class SendRefused(OrderProcessorError):
    """SQS refused a message as the sender's fault (too large, a bad attribute): a bug,
    never tried again."""


def reference_of(command: AnyCommand) -> str:
    return command.payload.order_id if isinstance(command, PlaceOrder) else command.command_id


def sqs_entry(index: int, command: AnyCommand, fifo: bool) -> SendMessageBatchRequestEntryTypeDef:
    entry: SendMessageBatchRequestEntryTypeDef = {"Id": str(index), "MessageBody": command.body()}
    if fifo:
        entry["MessageGroupId"] = command.username
    return entry


UNSIGNED = "unsigned"  # a placeholder until the service token for the command is minted
C = TypeVar("C", Deposit, UpdatePrice, UpdateRate, ExecuteOrder, ExpireOrder, ResumeOrder)
U = TypeVar("U", PlaceOrder, CancelOrder, Withdraw, Convert)


def signed_by(tokens: TokenManager, service: ServiceName, command: C) -> C:
    """`command` signed by `service` with a token minted for it alone."""
    token = tokens.create_access_token(service, role="service", command=command_digest(command))
    return command.model_copy(update={"auth": token})


@dataclass(frozen=True)
class CommandFactory:
    """Envelopes for a user. With no token given, each command is signed with a token
    minted for it alone (the user's for their own commands, a service's for the others),
    so a token lifted from a message on the queue can only replay that message."""

    tokens: TokenManager | None = None

    def _signed_as_user(self, command: U, token: str | None) -> U:
        if token is not None:
            return command.model_copy(update={"auth": token})
        if self.tokens is None:
            raise ValueError("no token given and no TokenManager to issue one")
        bound = self.tokens.create_access_token(command.username, command=command_digest(command))
        return command.model_copy(update={"auth": bound})

    def place_order(
        self,
        username: str,
        request: OrderCreate,
        *,
        order_id: str | None = None,
        token: str | None = None,
    ) -> PlaceOrder:
        fields = request.model_dump(exclude_none=True)
        payload = PlaceOrderPayload(**fields, order_id=order_id or new_id())
        order = PlaceOrder(command_id=new_id(), username=username, auth=UNSIGNED, payload=payload)
        return self._signed_as_user(order, token)

    def cancel(self, username: str, order_id: str, *, token: str | None = None) -> CancelOrder:
        payload = OrderReference(order_id=order_id)
        cancel = CancelOrder(command_id=new_id(), username=username, auth=UNSIGNED, payload=payload)
        return self._signed_as_user(cancel, token)

    def update_price(
        self, asset_id: str, price: Decimal | str, *, token: str | None = None
    ) -> UpdatePrice:
        """A system command: signed by the price feed (a service token)."""
        payload = PricePayload.model_validate({"asset_id": asset_id, "price": price})
        update = UpdatePrice(
            command_id=new_id(), username="price_feed", auth=UNSIGNED, payload=payload
        )
        return self._signed(update, ServiceName.PRICE_FEED, token)

    def update_rate(
        self,
        currency: str,
        rate: Decimal | str,
        *,
        observed_at: datetime | None = None,
        token: str | None = None,
    ) -> UpdateRate:
        """A currency's rate against the base currency: signed by the price feed, dated
        by its observation (now, unless a source dates it: the ECB's reference date)."""
        payload = RatePayload.model_validate({"currency": currency, "rate": rate})
        update = UpdateRate(
            command_id=new_id(),
            username="price_feed",
            auth=UNSIGNED,
            payload=payload,
            issued_at=observed_at or utc_now(),
        )
        return self._signed(update, ServiceName.PRICE_FEED, token)

    def deposit(
        self,
        username: str,
        amount: Decimal | str,
        *,
        currency: str = BASE_CURRENCY,
        token: str | None = None,
    ) -> Deposit:
        """Money from outside the exchange: signed by the payments service, not the user."""
        payload = FundsPayload.model_validate({"amount": amount, "currency": currency})
        deposit = Deposit(command_id=new_id(), username=username, auth=UNSIGNED, payload=payload)
        return self._signed(deposit, ServiceName.PAYMENTS, token)

    def _signed(self, command: C, service: ServiceName, token: str | None) -> C:
        if token is not None:
            return command.model_copy(update={"auth": token})
        if self.tokens is None:
            raise ValueError("no TokenManager to issue a service token")
        return signed_by(self.tokens, service, command)

    def convert(
        self,
        username: str,
        amount: Decimal | str,
        sell: str,
        buy: str,
        *,
        token: str | None = None,
    ) -> Convert:
        """Sell `amount` of `sell` for `buy` at the rate of the moment."""
        payload = ConvertPayload.model_validate({"amount": amount, "sell": sell, "buy": buy})
        conversion = Convert(command_id=new_id(), username=username, auth=UNSIGNED, payload=payload)
        return self._signed_as_user(conversion, token)

    def withdraw(
        self,
        username: str,
        amount: Decimal | str,
        *,
        currency: str = BASE_CURRENCY,
        token: str | None = None,
    ) -> Withdraw:
        payload = FundsPayload.model_validate({"amount": amount, "currency": currency})
        withdrawal = Withdraw(
            command_id=new_id(), username=username, auth=UNSIGNED, payload=payload
        )
        return self._signed_as_user(withdrawal, token)


@dataclass(frozen=True)
class Producer:
    sqs: SQSClient  # an aioboto3 SQS client
    queue_url: str
    fifo: bool = True

    async def send(self, command: AnyCommand) -> str:
        """Returns the order id of a PlaceOrder, the command id of anything else."""
        await self.send_batch([command])
        return reference_of(command)

    async def send_batch(
        self, commands: Sequence[AnyCommand], *, in_flight: int = 1, independent: bool = False
    ) -> list[str]:
        """In batches of 10, one batch after another: a user's commands reach the queue
        in the order given, and a partial failure raises SendFailed (sending a failed
        command again, after others of its batch, would reorder them). `independent`
        commands (the matcher's ExecuteOrders, the sweeper's: each is re-checked on its
        own under the user's lock) have the entries SQS failed sent again, those alone, a
        few times; with `in_flight` > 1, that many batches at once. Every batch is tried,
        then SendFailed lists the commands of every batch that still failed."""
        chunks = [commands[s : s + BATCH] for s in range(0, len(commands), BATCH)]
        attempts = SEND_ATTEMPTS if independent else 1
        if in_flight <= 1:
            for chunk in chunks:
                await self._send_chunk(chunk, attempts)
            return [c.command_id for c in commands]
        limit = asyncio.Semaphore(in_flight)

        async def send(chunk: Sequence[AnyCommand]) -> None:
            async with limit:
                await self._send_chunk(chunk, attempts)

        outcomes = await asyncio.gather(*(send(c) for c in chunks), return_exceptions=True)
        refused = [o for o in outcomes if isinstance(o, SendFailed)]
        other = [
            o for o in outcomes if isinstance(o, BaseException) and not isinstance(o, SendFailed)
        ]
        if other:
            raise other[0]
        if refused:
            raise SendFailed(
                [i for o in refused for i in o.failed], [r for o in refused for r in o.reasons]
            )
        return [c.command_id for c in commands]

    async def _send_chunk(self, chunk: Sequence[AnyCommand], attempts: int) -> None:
        pending = list(chunk)
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(SEND_PAUSE_SECONDS * 2**attempt * random.uniform(0.5, 1))  # noqa: S311
            entries = [sqs_entry(i, c, self.fifo) for i, c in enumerate(pending)]
            response = await self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            failed = _failed_entries(pending, entries, response)
            if not failed or attempt == attempts - 1:
                _raise_on_failures(pending, entries, response)
                return
            pending = failed


@dataclass(frozen=True)
class SyncProducer:
    sqs: Any  # a boto3 SQS client
    queue_url: str
    fifo: bool = True

    def send(self, command: AnyCommand) -> str:
        """Returns the order id of a PlaceOrder, the command id of anything else."""
        self.send_batch([command])
        return reference_of(command)

    def send_batch(self, commands: Sequence[AnyCommand]) -> list[str]:
        for start in range(0, len(commands), BATCH):
            chunk = commands[start : start + BATCH]
            entries = [sqs_entry(i, c, self.fifo) for i, c in enumerate(chunk)]
            response = self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            _raise_on_failures(chunk, entries, response)
        return [c.command_id for c in commands]


def _failed_entries(
    chunk: Sequence[AnyCommand],
    entries: Sequence[SendMessageBatchRequestEntryTypeDef],
    response: Mapping[str, Any],
) -> list[AnyCommand]:
    """The commands of the entries SQS failed through no fault of ours (to send again)."""
    failures = response.get("Failed", [])
    if any(f.get("SenderFault") for f in failures):
        return []  # refused as ours: _raise_on_failures says so
    failed = {str(f["Id"]) for f in failures}
    return [c for e, c in zip(entries, chunk, strict=True) if e["Id"] in failed]


def _raise_on_failures(
    chunk: Sequence[AnyCommand],
    entries: Sequence[SendMessageBatchRequestEntryTypeDef],
    response: Mapping[str, Any],
) -> None:
    failures = response.get("Failed", [])
    ours = [f for f in failures if f.get("SenderFault")]
    if ours:
        raise SendRefused(f"SQS refused a command as ours: {ours[0]}")
    if failures:
        by_entry = {e["Id"]: c.command_id for e, c in zip(entries, chunk, strict=True)}
        raise SendFailed(
            [by_entry.get(f["Id"], f["Id"]) for f in failures],
            [f"{f.get('Code')}: {f.get('Message')}" for f in failures],
        )
