"""How the CLI classifies errors that the stores wrap: a domain error stays the command's
own failure even when an AWS condition check caused it; the resource a request names."""

from __future__ import annotations

from typing import Any, cast

from botocore.exceptions import ClientError

from order_processor.cli.failures import ExitStatus, describe_resource, explain
from order_processor.exceptions import EntityAlreadyExistsException, ServiceUnavailableException


def client_error(code: str, operation: str, **extra: object) -> ClientError:
    response = {
        "Error": {"Code": code, "Message": "m"},
        "ResponseMetadata": {"HTTPStatusCode": 400},
    }
    return ClientError(cast(Any, {**response, **extra}), operation)


def test_a_domain_error_raised_from_a_failed_condition_stays_the_commands_own_failure() -> None:
    try:
        try:
            raise client_error("ConditionalCheckFailedException", "PutItem")
        except ClientError as exc:
            raise EntityAlreadyExistsException("asset BTC already exists") from exc
    except EntityAlreadyExistsException as exc:
        failure = explain(exc)

    assert failure.status is ExitStatus.FAILED
    assert failure.message == "ALREADY_EXISTS: asset BTC already exists"


def test_a_transaction_conflict_the_store_calls_unavailable_says_try_again() -> None:
    try:
        try:
            raise client_error("TransactionCanceledException", "TransactWriteItems")
        except ClientError as exc:
            raise ServiceUnavailableException(
                "a concurrent transaction touched the same items"
            ) from exc
    except ServiceUnavailableException as exc:
        failure = explain(exc)

    assert failure.status is ExitStatus.THROTTLED
    assert failure.message == (
        "AWS is busy: a concurrent transaction touched the same items: try again in a moment"
    )


def test_the_resource_of_a_request_is_its_queue_topic_table_index_or_tables() -> None:
    transaction = {
        "TransactItems": [
            {"Put": {"TableName": "op-orders", "Item": {}}},
            {"Update": {"TableName": "op-users", "Key": {}}},
            {"ConditionCheck": {"TableName": "op-users", "Key": {}}},
        ]
    }

    assert describe_resource(transaction) == "tables op-orders, op-users"
    assert describe_resource({"RequestItems": {"op-users": {}}}) == "table op-users"
    assert (
        describe_resource({"TableName": "op-orders", "IndexName": "ExpiryIndex"})
        == "index ExpiryIndex of table op-orders"
    )
    assert (
        describe_resource({"QueueUrl": "http://127.0.0.1:4566/000000000000/op-price-updates"})
        == "queue op-price-updates"
    )
    assert (
        describe_resource({"TopicArn": "arn:aws:sns:us-east-1:000000000000:op-order-events"})
        == "topic op-order-events"
    )
    assert describe_resource({}) is None


def test_a_missing_queue_from_a_client_the_cli_did_not_annotate_still_says_provision() -> None:
    # The workers' clients come from bootstrap: their errors carry no resource.
    error = client_error("AWS.SimpleQueueService.NonExistentQueue", "GetQueueUrl")

    failure = explain(error)

    assert failure.status is ExitStatus.NOT_PROVISIONED
    assert failure.message == (
        "not provisioned: GetQueueUrl (AWS.SimpleQueueService.NonExistentQueue): run "
        "`order-processor provision` (or check ORDER_PROCESSOR_PREFIX and AWS_REGION)"
    )
