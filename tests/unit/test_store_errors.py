"""AWS errors are translated at the store boundary: transient ones become retryable."""

from __future__ import annotations

from typing import Any, cast

from botocore.exceptions import ClientError

from order_processor.exceptions import ServiceUnavailableException
from order_processor.store.dynamo import translate


def cancelled(*codes: str) -> ClientError:
    return ClientError(
        cast(
            Any,
            {
                "Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
                "CancellationReasons": [{"Code": code} for code in codes],
                "ResponseMetadata": {"HTTPStatusCode": 400},
            },
        ),
        "TransactWriteItems",
    )


def test_a_transaction_cancelled_by_a_conflict_is_retryable() -> None:
    translated = translate(cancelled("None", "TransactionConflict"))

    assert isinstance(translated, ServiceUnavailableException)
    assert translated.retryable


def test_a_transaction_cancelled_by_a_condition_stays_for_the_dao() -> None:
    error = cancelled("ConditionalCheckFailed", "None")

    assert translate(error) is error


def test_throttling_and_server_errors_are_retryable() -> None:
    throttled = ClientError(
        cast(
            Any,
            {"Error": {"Code": "ThrottlingException"}, "ResponseMetadata": {"HTTPStatusCode": 400}},
        ),
        "GetItem",
    )
    broken = ClientError(
        cast(
            Any, {"Error": {"Code": "InternalFailure"}, "ResponseMetadata": {"HTTPStatusCode": 500}}
        ),
        "Query",
    )

    assert isinstance(translate(throttled), ServiceUnavailableException)
    assert isinstance(translate(broken), ServiceUnavailableException)
