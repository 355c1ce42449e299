"""AWS errors are translated at the store boundary: transient ones become retryable."""

from __future__ import annotations

from typing import Any, cast

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ParamValidationError,
    ReadTimeoutError,
)

from order_processor.awserrors import is_transient
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


def answer(code: str, status: int) -> ClientError:
    return ClientError(
        cast(Any, {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}),
        "Operation",
    )


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        # A single-item write that met a transaction in flight: botocore does not retry it.
        (answer("TransactionConflictException", 400), True),
        (answer("ThrottlingException", 400), True),
        (answer("RequestThrottled", 400), True),  # SQS
        (answer("Throttled", 429), True),  # SNS: missing from botocore's throttling codes
        (answer("InternalError", 500), True),
        (answer("ExpiredTokenException", 400), True),
        (answer("ConditionalCheckFailedException", 400), False),
        (answer("AccessDeniedException", 400), False),
        (answer("ValidationException", 400), False),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), True),
        (ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), True),
        (ConnectionClosedError(endpoint_url="http://127.0.0.1:1"), True),
        (ParamValidationError(report="a bug of ours"), False),
    ],
)
def test_transient_is_what_another_attempt_a_moment_later_may_overcome(
    error: Exception, transient: bool
) -> None:
    assert is_transient(error) is transient


def test_a_single_write_that_met_a_transaction_is_retryable_at_the_store_boundary() -> None:
    translated = translate(answer("TransactionConflictException", 400))

    assert isinstance(translated, ServiceUnavailableException)
    assert translated.retryable
