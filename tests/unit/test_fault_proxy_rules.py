"""The fault proxy's rules that need no server: DynamoDB's transaction conflicts and
request tokens, SNS batch entries, SQS redeliveries, reading a request's service."""

from __future__ import annotations

from order_processor.faultproxy.calls import identify
from order_processor.faultproxy.conflicts import (
    ItemRef,
    ItemsInFlight,
    cancellation_message,
    cancellation_reasons,
)
from order_processor.faultproxy.errors import Answer
from order_processor.faultproxy.redelivery import Redeliveries
from order_processor.faultproxy.sns import parse_entries, renumbered
from order_processor.faultproxy.tokens import (
    Fresh,
    InProgress,
    Mismatch,
    Replay,
    RequestTokens,
    request_digest,
)

X = ItemRef.of("orders", {"pk": {"S": "x"}})
Y = ItemRef.of("orders", {"pk": {"S": "y"}})


def test_an_items_key_names_it_whatever_the_order_of_its_attributes() -> None:
    both = {"pk": {"S": "x"}, "sk": {"N": "1"}}
    assert ItemRef.of("t", both) == ItemRef.of("t", dict(reversed(both.items())))


def test_a_transaction_conflicts_only_with_transactions_and_a_read_with_any_write() -> None:
    in_flight = ItemsInFlight()
    write = in_flight.hold([X], transactional=False)
    assert in_flight.held_by_transaction([X, Y]) == [False, False]
    assert in_flight.held_by_any_write([X, Y]) == [True, False]
    transaction = in_flight.hold([Y], transactional=True)
    assert in_flight.held_by_transaction([X, Y]) == [False, True]
    in_flight.release(write)
    in_flight.release(transaction)
    assert len(in_flight) == 0


def test_cancellation_reasons_name_the_conflicting_items_in_request_order() -> None:
    reasons = cancellation_reasons([False, True])
    assert reasons == [
        {"Code": "None"},
        {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"},
    ]
    assert cancellation_message(reasons).endswith("specific reasons [None, TransactionConflict]")


def test_a_token_names_one_request_for_ten_minutes() -> None:
    tokens, ok = RequestTokens(), Answer(200, b"{}")
    digest = request_digest({"TransactItems": [1], "ClientRequestToken": "t"})
    assert digest == request_digest({"TransactItems": [1]})
    assert tokens.claim("t", digest, now=0) == Fresh()
    assert tokens.claim("t", digest, now=1) == InProgress()
    tokens.settle("t", ok)
    assert tokens.claim("t", digest, now=2) == Replay(ok)
    assert tokens.claim("t", "another", now=3) == Mismatch()
    assert tokens.claim("t", "another", now=601) == Fresh()


def test_a_token_whose_request_failed_can_be_used_again() -> None:
    tokens = RequestTokens()
    tokens.claim("t", "d", now=0)
    tokens.settle("t", Answer(400, b"{}"))
    assert tokens.claim("t", "other", now=1) == Fresh()


def test_publish_batch_entries_are_read_in_order_and_renumbered_from_one() -> None:
    form = (
        "Action=PublishBatch&TopicArn=arn"
        "&PublishBatchRequestEntries.member.2.Id=b&PublishBatchRequestEntries.member.2.Message=B"
        "&PublishBatchRequestEntries.member.1.Id=a&PublishBatchRequestEntries.member.1.Message=A"
    )
    common, entries = parse_entries(form)
    assert common == [("Action", "PublishBatch"), ("TopicArn", "arn")]
    assert entries == [[("Id", "a"), ("Message", "A")], [("Id", "b"), ("Message", "B")]]
    assert renumbered(entries[1:]) == [
        ("PublishBatchRequestEntries.member.1.Id", "b"),
        ("PublishBatchRequestEntries.member.1.Message", "B"),
    ]


def test_a_message_delivered_again_keeps_its_content_with_a_handle_of_its_own() -> None:
    redeliveries = Redeliveries()
    message = {
        "MessageId": "m",
        "ReceiptHandle": "h",
        "Attributes": {"ApproximateReceiveCount": "1"},
    }
    redeliveries.remember("q", message)
    assert redeliveries.take("other", 10) == []
    [again] = redeliveries.take("q", 10)
    assert again["MessageId"] == "m"
    assert again["ReceiptHandle"] != "h"
    assert again["Attributes"]["ApproximateReceiveCount"] == "2"
    assert redeliveries.issued(again["ReceiptHandle"])
    assert not redeliveries.waiting("q")
    assert message["ReceiptHandle"] == "h"


def test_a_request_is_known_by_its_target_or_by_its_signature_and_action() -> None:
    signed = "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/{}/aws4_request, Signed..."
    dynamodb = identify(
        {"Authorization": signed.format("dynamodb"), "X-Amz-Target": "DynamoDB_20120810.Query"}, b""
    )
    form = {
        "Authorization": signed.format("sts"),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    sts = identify(form, b"Action=AssumeRole&Version=2011-06-15")
    assert (dynamodb.service, dynamodb.operation, dynamodb.access_key_id) == (
        "dynamodb",
        "Query",
        "AKID",
    )
    assert (sts.service, sts.operation, sts.faultable) == ("sts", "AssumeRole", False)
    assert dynamodb.faultable
