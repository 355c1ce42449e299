"""DynamoDB's item-level faults through the proxy, with real boto3 and aioboto3 clients:
transaction conflicts, request tokens over a lost answer, unprocessed batch keys and
items, index lag; each checked in what botocore returns and what the emulator holds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aioboto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

from order_processor.faultproxy import FaultProxyHandle
from tests.integration.proxied import REGION, client, create_table, faults, refused


@pytest.fixture
def table(proxy: FaultProxyHandle, prefix: str) -> str:
    return create_table(client(proxy.endpoint, "dynamodb"), f"{prefix}-items", index=True)


@asynccontextmanager
async def async_client(endpoint: str) -> AsyncIterator[Any]:
    config = Config(retries={"total_max_attempts": 1, "mode": "standard"})
    async with aioboto3.Session().client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=config,
    ) as dynamodb:
        yield dynamodb


def bump(table: str, pk: str) -> dict[str, Any]:
    return {
        "Update": {
            "TableName": table,
            "Key": {"pk": {"S": pk}},
            "UpdateExpression": "ADD n :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        }
    }


def count(aws_endpoint: str, table: str, pk: str) -> int | None:
    """The item's counter as the emulator holds it (None: no such item)."""
    found = client(aws_endpoint, "dynamodb").get_item(
        TableName=table, Key={"pk": {"S": pk}}, ConsistentRead=True
    )
    return int(found["Item"]["n"]["N"]) if "Item" in found else None


async def test_of_two_concurrent_transactions_on_one_item_exactly_one_commits(
    proxy: FaultProxyHandle, aws_endpoint: str, table: str
) -> None:
    faults(proxy, "conflict=on,hold-ms=400")
    async with async_client(proxy.endpoint) as first, async_client(proxy.endpoint) as second:
        committing = asyncio.create_task(
            first.transact_write_items(TransactItems=[bump(table, "x"), bump(table, "a")])
        )
        await asyncio.sleep(0.15)
        with pytest.raises(ClientError) as cancelled:
            await second.transact_write_items(TransactItems=[bump(table, "b"), bump(table, "x")])
        await committing
    error = cancelled.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == (
        "TransactionCanceledException",
        400,
    )
    assert error["CancellationReasons"] == [
        {"Code": "None"},
        {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"},
    ]
    assert error["Error"]["Message"] == (
        "Transaction cancelled, please refer cancellation reasons for specific reasons "
        "[None, TransactionConflict]"
    )
    assert [count(aws_endpoint, table, pk) for pk in "xab"] == [1, 1, None]


async def test_concurrent_transactions_on_disjoint_items_both_commit(
    proxy: FaultProxyHandle, aws_endpoint: str, table: str
) -> None:
    faults(proxy, "conflict=on,hold-ms=300")
    async with async_client(proxy.endpoint) as first, async_client(proxy.endpoint) as second:
        await asyncio.gather(
            first.transact_write_items(TransactItems=[bump(table, "x")]),
            second.transact_write_items(TransactItems=[bump(table, "y")]),
        )
    assert [count(aws_endpoint, table, pk) for pk in "xy"] == [1, 1]
    assert proxy.stats().injected("conflict") == 0


async def test_a_write_to_an_item_a_transaction_holds_fails_with_transaction_conflict(
    proxy: FaultProxyHandle, aws_endpoint: str, table: str
) -> None:
    faults(proxy, "conflict=on,hold-ms=400")
    async with async_client(proxy.endpoint) as first, async_client(proxy.endpoint) as second:
        committing = asyncio.create_task(
            first.transact_write_items(TransactItems=[bump(table, "x")])
        )
        await asyncio.sleep(0.15)
        with pytest.raises(ClientError) as conflict:
            await second.put_item(TableName=table, Item={"pk": {"S": "x"}, "n": {"N": "50"}})
        await committing
    assert conflict.value.response["Error"]["Code"] == "TransactionConflictException"
    assert count(aws_endpoint, table, "x") == 1


async def test_a_transactional_read_of_an_item_a_transaction_writes_is_cancelled(
    proxy: FaultProxyHandle, table: str
) -> None:
    faults(proxy, "conflict=on,hold-ms=400")
    gets = [{"Get": {"TableName": table, "Key": {"pk": {"S": pk}}}} for pk in "yx"]
    async with async_client(proxy.endpoint) as first, async_client(proxy.endpoint) as second:
        committing = asyncio.create_task(
            first.transact_write_items(TransactItems=[bump(table, "x")])
        )
        await asyncio.sleep(0.15)
        with pytest.raises(ClientError) as cancelled:
            await second.transact_get_items(TransactItems=gets)
        await committing
    reasons = cancelled.value.response["CancellationReasons"]
    assert [reason["Code"] for reason in reasons] == ["None", "TransactionConflict"]


def test_with_conflicts_tracked_a_put_into_a_missing_table_gets_the_emulators_refusal(
    proxy: FaultProxyHandle, prefix: str
) -> None:
    faults(proxy, "conflict=on,lag-ms=100")
    dynamodb = client(proxy.endpoint, "dynamodb")
    missing = f"{prefix}-missing"
    code, status, _ = refused(lambda: dynamodb.put_item(TableName=missing, Item={"pk": {"S": "a"}}))
    assert (code, status) == ("ResourceNotFoundException", 400)


def test_a_transaction_whose_answer_is_lost_is_retried_and_applied_once(
    proxy: FaultProxyHandle, aws_endpoint: str, table: str
) -> None:
    # Seed 3's first two draws are 0.24 (lost) then 0.54 (answered).
    faults(proxy, "lost.TransactWriteItems=0.5", seed=3)
    retrying = client(proxy.endpoint, "dynamodb", attempts=3)
    answer = retrying.transact_write_items(TransactItems=[bump(table, "x")])
    assert answer["ResponseMetadata"]["RetryAttempts"] == 1
    assert count(aws_endpoint, table, "x") == 1
    counted = proxy.stats()
    assert (counted.injected("lost"), counted.injected("token-replay"), counted.forwarded) == (
        1,
        1,
        1,
    )


def test_a_token_reused_for_another_request_is_refused_and_changes_nothing(
    proxy: FaultProxyHandle, aws_endpoint: str, table: str
) -> None:
    faults(proxy, "")
    dynamodb = client(proxy.endpoint, "dynamodb")
    dynamodb.transact_write_items(TransactItems=[bump(table, "x")], ClientRequestToken="t-1")
    dynamodb.transact_write_items(TransactItems=[bump(table, "x")], ClientRequestToken="t-1")
    code, status, _ = refused(
        lambda: dynamodb.transact_write_items(
            TransactItems=[bump(table, "y")], ClientRequestToken="t-1"
        )
    )
    assert (code, status) == ("IdempotentParameterMismatchException", 400)
    assert [count(aws_endpoint, table, pk) for pk in "xy"] == [1, None]


def put_items(aws_endpoint: str, table: str, names: list[str]) -> None:
    dynamodb = client(aws_endpoint, "dynamodb")
    for name in names:
        dynamodb.put_item(TableName=table, Item={"pk": {"S": name}})


def test_batch_get_returns_withheld_keys_unprocessed_with_the_tables_options(
    proxy: FaultProxyHandle, aws_endpoint: str, table: str
) -> None:
    names = [f"k{n}" for n in range(10)]
    put_items(aws_endpoint, table, names)
    faults(proxy, "unprocessed=0.5")
    options = {
        "ConsistentRead": True,
        "ProjectionExpression": "#k",
        "ExpressionAttributeNames": {"#k": "pk"},
    }
    keys = [{"pk": {"S": name}} for name in names]
    answer = client(proxy.endpoint, "dynamodb").batch_get_item(
        RequestItems={table: {"Keys": keys, **options}}
    )
    read = {item["pk"]["S"] for item in answer["Responses"][table]}
    unprocessed = answer["UnprocessedKeys"][table]
    withheld = {key["pk"]["S"] for key in unprocessed["Keys"]}
    assert read
    assert withheld
    assert not read & withheld
    assert read | withheld == set(names)
    assert {k: v for k, v in unprocessed.items() if k != "Keys"} == options
    assert proxy.stats().injected("unprocessed", "BatchGetItem") == len(withheld)


def test_a_batch_get_none_of_whose_keys_is_processed_is_throughput_exceeded(
    proxy: FaultProxyHandle, aws_endpoint: str, table: str
) -> None:
    put_items(aws_endpoint, table, ["k"])
    faults(proxy, "unprocessed=1")
    dynamodb = client(proxy.endpoint, "dynamodb")
    code, status, _ = refused(
        lambda: dynamodb.batch_get_item(RequestItems={table: {"Keys": [{"pk": {"S": "k"}}]}})
    )
    assert (code, status) == ("ProvisionedThroughputExceededException", 400)
    assert proxy.stats().forwarded == 0


def test_batch_write_returns_withheld_items_unprocessed_and_writes_only_the_rest(
    proxy: FaultProxyHandle, aws_endpoint: str, table: str
) -> None:
    faults(proxy, "unprocessed=0.5")
    requests = [{"PutRequest": {"Item": {"pk": {"S": f"w{n}"}}}} for n in range(10)]
    answer = client(proxy.endpoint, "dynamodb").batch_write_item(RequestItems={table: requests})
    unprocessed = answer["UnprocessedItems"][table]
    assert unprocessed
    assert len(unprocessed) < len(requests)
    assert all(entry in requests for entry in unprocessed)
    withheld = {entry["PutRequest"]["Item"]["pk"]["S"] for entry in unprocessed}
    scanned = client(aws_endpoint, "dynamodb").scan(TableName=table, ConsistentRead=True)
    written = {item["pk"]["S"] for item in scanned["Items"]}
    assert written == {f"w{n}" for n in range(10)} - withheld


def index_holds(endpoint: str, table: str, pk: str) -> bool:
    answer = client(endpoint, "dynamodb").query(
        TableName=table,
        IndexName="by-status",
        KeyConditionExpression="#s = :open",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":open": {"S": "open"}},
    )
    return pk in {item["pk"]["S"] for item in answer["Items"]}


def test_an_index_query_sees_the_table_as_it_was_up_to_the_lag_before(
    proxy: FaultProxyHandle, aws_endpoint: str, table: str
) -> None:
    # Seed 7 delays the two copies into the lagging index by 480 and 225 ms.
    faults(proxy, "lag-ms=1500")
    dynamodb = client(proxy.endpoint, "dynamodb")
    assert not index_holds(proxy.endpoint, table, "o")  # the index starts lagging here
    dynamodb.put_item(TableName=table, Item={"pk": {"S": "o"}, "status": {"S": "open"}})
    assert not index_holds(proxy.endpoint, table, "o")
    time.sleep(1.6)
    assert index_holds(proxy.endpoint, table, "o")
    dynamodb.update_item(
        TableName=table,
        Key={"pk": {"S": "o"}},
        UpdateExpression="REMOVE #s",
        ExpressionAttributeNames={"#s": "status"},
    )
    assert index_holds(proxy.endpoint, table, "o")  # left the sparse index a moment ago
    time.sleep(1.6)
    assert not index_holds(proxy.endpoint, table, "o")
    emulator = client(aws_endpoint, "dynamodb")
    emulator.describe_table(TableName=f"{table}--lagged")
    dynamodb.delete_table(TableName=table)  # and the lagging copy goes with it
    gone = refused(lambda: emulator.describe_table(TableName=f"{table}--lagged"))
    assert gone[0] == "ResourceNotFoundException"


async def test_aioboto3_sees_a_reset_as_no_connection_and_a_lost_answer_as_a_closed_one(
    proxy: FaultProxyHandle, aws_endpoint: str, table: str
) -> None:
    item = {"pk": {"S": "a"}}
    async with async_client(proxy.endpoint) as dynamodb:
        faults(proxy, "reset.PutItem=1")
        with pytest.raises(EndpointConnectionError):
            await dynamodb.put_item(TableName=table, Item=item)
        assert count(aws_endpoint, table, "a") is None
        faults(proxy, "lost.PutItem=1")
        with pytest.raises(ConnectionClosedError):
            await dynamodb.put_item(TableName=table, Item={**item, "n": {"N": "1"}})
    assert count(aws_endpoint, table, "a") == 1
