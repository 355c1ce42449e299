"""ExchangeRateStore: each currency's rate against the base currency, one item each in
one partition (`RATES`), written only when the observation is newer than the stored one:
an out-of-order or replayed update never moves a rate back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from order_processor.domain.base import utc_now
from order_processor.domain.currencies import currency_code
from order_processor.domain.fx import ExchangeRate
from order_processor.domain.money import RATE_PLACES, parse_decimal
from order_processor.exceptions import StalePriceException
from order_processor.store import keys
from order_processor.store.dynamo import (
    call,
    from_item,
    is_condition_failure,
    old_item,
    to_attribute,
    without_keys,
)

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient


@dataclass(frozen=True)
class ExchangeRateStore:
    client: DynamoDBClient
    table: str  # the inventory table
    clock: Callable[[], datetime] = utc_now
    clock_skew: timedelta = timedelta(seconds=30)

    async def change_rate(
        self, currency: str, rate: Decimal | str, *, as_of: datetime, command_id: str
    ) -> ExchangeRate:
        """The rate observed at `as_of` by the update `command_id`, written only if it is
        newer than the stored one (or the same update's: its redelivery); else
        StalePriceException, whose `current` detail is the rate as stored. As the
        prices' rule: an observation dated beyond twice the clock skew ahead of this
        clock does not count as a time, and is replaced by any update."""
        code = currency_code(currency)
        checked = parse_decimal(rate, field="rate", places=RATE_PLACES)
        now = self.clock()
        written = ExchangeRate(
            currency=code, rate=checked, as_of=as_of, command_id=command_id, updated_at=now
        )
        values = {
            ":as_of": to_attribute(written.as_of),
            ":command_id": to_attribute(command_id),
            ":beyond_skew": to_attribute(now + 2 * self.clock_skew),
            ":currency": to_attribute(code),
            ":rate": to_attribute(checked),
            ":now": to_attribute(now),
        }
        try:
            await call(
                self.client,
                "update_item",
                TableName=self.table,
                Key=keys.rate_key(code),
                UpdateExpression="SET currency = :currency, rate = :rate, as_of = :as_of, "
                "command_id = :command_id, updated_at = :now",
                ConditionExpression="attribute_not_exists(as_of) OR as_of < :as_of"
                " OR (as_of = :as_of AND command_id = :command_id) OR as_of > :beyond_skew",
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                stored = old_item(exc)
                current = _rate(stored) if stored else None
                raise StalePriceException(
                    f"a newer {code} rate is stored", current=current
                ) from exc
            raise
        return written

    async def rates(self) -> dict[str, ExchangeRate]:
        """Every currency's rate, by currency: one Query of the rates' partition."""
        found: dict[str, ExchangeRate] = {}
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "PK = :pk",
            "ExpressionAttributeValues": {":pk": to_attribute(keys.RATES)},
        }
        while True:
            response = await call(self.client, "query", **request)
            for item in response.get("Items", []):
                rate = _rate(from_item(item))
                found[rate.currency] = rate
            last = response.get("LastEvaluatedKey")
            if not last:
                return found
            request["ExclusiveStartKey"] = last


def _rate(item: dict[str, Any]) -> ExchangeRate:
    return ExchangeRate.model_validate(without_keys(item))
