"""Clients through the fault proxy, as a program has them but with retries off unless
asked for, and clients straight to the emulator, to see what it holds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from order_processor.faultproxy import FaultPlan, FaultProxyHandle

REGION = "us-east-1"


def client(endpoint: str, service: str, *, key: str = "test", attempts: int = 1) -> Any:
    config = Config(retries={"total_max_attempts": attempts, "mode": "standard"})
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=key,
        aws_secret_access_key="test",
        config=config,
    )


def faults(proxy: FaultProxyHandle, plan: str, seed: int = 7) -> None:
    proxy.set_plan(FaultPlan.parse(plan), seed)
    proxy.reset_stats()


def refused(call: Callable[[], Any]) -> tuple[str, int, dict[str, Any]]:
    """(Error.Code, HTTP status, the whole parsed error) of a call that must fail."""
    try:
        call()
    except ClientError as error:
        response = cast(dict[str, Any], error.response)
        return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"], response
    raise AssertionError("the call succeeded")


def create_table(dynamodb: Any, name: str, *, index: bool = False) -> str:
    """pk (S) and, with `index`, a sparse global index on `status`."""
    definitions = [{"AttributeName": "pk", "AttributeType": "S"}]
    extra: dict[str, Any] = {}
    if index:
        definitions.append({"AttributeName": "status", "AttributeType": "S"})
        extra["GlobalSecondaryIndexes"] = [
            {
                "IndexName": "by-status",
                "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ]
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=definitions,
        BillingMode="PAY_PER_REQUEST",
        **extra,
    )
    return name
