"""The fault proxy in front of the emulator, driven by real boto3 clients with retries off:
each fault as botocore gives it to the caller (code, status, batch contents) and what the
emulator holds afterwards. DynamoDB's item-level faults: test_fault_proxy_dynamodb.py."""

from __future__ import annotations

import time
import urllib.request
from typing import Any

import pytest
from botocore.exceptions import ConnectionClosedError

from order_processor.faultproxy import FaultPlan, FaultProxyError, FaultProxyHandle
from tests.integration.proxied import client, create_table, faults, refused


@pytest.fixture
def table(proxy: FaultProxyHandle, prefix: str) -> str:
    return create_table(client(proxy.endpoint, "dynamodb"), f"{prefix}-items")


@pytest.fixture
def queue(proxy: FaultProxyHandle, prefix: str) -> str:
    url: str = client(proxy.endpoint, "sqs").create_queue(QueueName=f"{prefix}-q")["QueueUrl"]
    return url


def put(endpoint: str, table: str, pk: str) -> Any:
    return client(endpoint, "dynamodb").put_item(TableName=table, Item={"pk": {"S": pk}})


def stored(aws_endpoint: str, table: str, pk: str) -> bool:
    found = client(aws_endpoint, "dynamodb").get_item(TableName=table, Key={"pk": {"S": pk}})
    return "Item" in found


def bodies(aws_endpoint: str, queue: str) -> list[str]:
    answer = client(aws_endpoint, "sqs").receive_message(
        QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=0
    )
    return sorted(m["Body"] for m in answer.get("Messages", []))


def test_without_faults_calls_and_the_emulators_health_pass_through(
    proxy: FaultProxyHandle, aws_endpoint: str, table: str
) -> None:
    faults(proxy, "")
    put(proxy.endpoint, table, "a")
    with urllib.request.urlopen(proxy.endpoint + "/_ministack/health") as health:
        assert health.status == 200
    assert stored(aws_endpoint, table, "a")
    counted = proxy.stats()
    assert (counted.requests, counted.forwarded, counted.faults) == (2, 2, {})


@pytest.mark.parametrize(
    "code",
    ["ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"],
)
def test_a_throttled_dynamodb_write_is_refused_with_code_400_and_not_applied(
    proxy: FaultProxyHandle, aws_endpoint: str, table: str, code: str
) -> None:
    faults(proxy, f"throttle.PutItem=1,throttle-code={code}")
    assert refused(lambda: put(proxy.endpoint, table, "a"))[:2] == (code, 400)
    assert not stored(aws_endpoint, table, "a")
    assert proxy.stats().injected("throttle", "PutItem") == 1


def test_a_throttled_sqs_send_is_request_throttled_and_sends_nothing(
    proxy: FaultProxyHandle, aws_endpoint: str, queue: str
) -> None:
    faults(proxy, "throttle=1")
    sqs = client(proxy.endpoint, "sqs")
    code, status, error = refused(lambda: sqs.send_message(QueueUrl=queue, MessageBody="m"))
    assert (code, status, error["Error"]["Type"]) == ("RequestThrottled", 400, "Sender")
    assert bodies(aws_endpoint, queue) == []


def test_a_throttled_sns_publish_is_throttled_429(proxy: FaultProxyHandle, prefix: str) -> None:
    sns = client(proxy.endpoint, "sns")
    topic = sns.create_topic(Name=f"{prefix}-t")["TopicArn"]  # never faulted
    faults(proxy, "throttle=1")
    assert refused(lambda: sns.publish(TopicArn=topic, Message="m"))[:2] == ("Throttled", 429)


def test_a_5xx_is_each_services_internal_error_and_nothing_is_forwarded(
    proxy: FaultProxyHandle, aws_endpoint: str, table: str, queue: str, prefix: str
) -> None:
    sns = client(proxy.endpoint, "sns")
    topic = sns.create_topic(Name=f"{prefix}-t")["TopicArn"]
    faults(proxy, "5xx=1")
    sqs = client(proxy.endpoint, "sqs")
    answers = [
        refused(lambda: put(proxy.endpoint, table, "a"))[:2],
        refused(lambda: sqs.send_message(QueueUrl=queue, MessageBody="m"))[:2],
        refused(lambda: sns.publish(TopicArn=topic, Message="m"))[:2],
    ]
    assert answers == [("InternalServerError", 500), ("InternalError", 500), ("InternalError", 500)]
    assert not stored(aws_endpoint, table, "a")
    assert proxy.stats().forwarded == 0


def test_a_reset_connection_fails_the_call_before_anything_is_applied(
    proxy: FaultProxyHandle, aws_endpoint: str, table: str
) -> None:
    faults(proxy, "reset.PutItem=1")
    with pytest.raises(ConnectionClosedError):
        put(proxy.endpoint, table, "a")
    assert not stored(aws_endpoint, table, "a")


def test_a_lost_answer_fails_the_call_after_the_write_was_applied(
    proxy: FaultProxyHandle, aws_endpoint: str, table: str
) -> None:
    faults(proxy, "lost.PutItem=1")
    with pytest.raises(ConnectionClosedError):
        put(proxy.endpoint, table, "a")
    assert stored(aws_endpoint, table, "a")
    assert proxy.stats().injected("lost", "PutItem") == 1


def test_a_slow_answer_arrives_late_and_latency_delays_every_call(
    proxy: FaultProxyHandle, table: str
) -> None:
    faults(proxy, "slow.PutItem=1:400")
    began = time.monotonic()
    put(proxy.endpoint, table, "a")
    assert time.monotonic() - began >= 0.4
    proxy.set_plan(FaultPlan.latency(150))
    began = time.monotonic()
    client(proxy.endpoint, "dynamodb").describe_table(TableName=table)
    assert time.monotonic() - began >= 0.15


def test_control_plane_calls_are_never_faulted(
    proxy: FaultProxyHandle, prefix: str, table: str
) -> None:
    faults(proxy, "throttle=1,5xx=1,reset=1,lost=1")
    client(proxy.endpoint, "dynamodb").describe_table(TableName=table)
    client(proxy.endpoint, "sqs").create_queue(QueueName=f"{prefix}-other")
    client(proxy.endpoint, "sns").create_topic(Name=f"{prefix}-other")
    client(proxy.endpoint, "sts").get_caller_identity()
    assert proxy.stats().faults == {}


def test_sqs_send_batch_reports_withheld_entries_as_internal_errors_and_sends_the_rest(
    proxy: FaultProxyHandle, aws_endpoint: str, queue: str
) -> None:
    faults(proxy, "partial=0.5", seed=3)
    entries = [{"Id": f"e{n}", "MessageBody": f"body-{n}"} for n in range(8)]
    answer = client(proxy.endpoint, "sqs").send_message_batch(QueueUrl=queue, Entries=entries)
    failed = {entry["Id"]: entry for entry in answer["Failed"]}
    sent = {entry["Id"] for entry in answer["Successful"]}
    assert failed
    assert sent
    assert sent | set(failed) == {e["Id"] for e in entries}
    assert all(
        {k: v for k, v in entry.items() if k != "Message"}
        == {"Id": eid, "SenderFault": False, "Code": "InternalError"}
        for eid, entry in failed.items()
    )
    assert bodies(aws_endpoint, queue) == sorted(f"body-{i[1:]}" for i in sent)
    assert proxy.stats().injected("partial", "SendMessageBatch") == len(failed)


def test_sqs_delete_batch_with_stale_receipts_fails_them_and_deletes_nothing(
    proxy: FaultProxyHandle, aws_endpoint: str, queue: str
) -> None:
    faults(proxy, "")
    sqs = client(proxy.endpoint, "sqs")
    sqs.send_message(QueueUrl=queue, MessageBody="kept")
    [message] = sqs.receive_message(QueueUrl=queue, VisibilityTimeout=0)["Messages"]
    faults(proxy, "stale-receipt=1")
    entries = [{"Id": "d", "ReceiptHandle": message["ReceiptHandle"]}]
    answer = sqs.delete_message_batch(QueueUrl=queue, Entries=entries)
    assert answer.get("Successful", []) == []
    assert [(f["Id"], f["Code"], f["SenderFault"]) for f in answer["Failed"]] == [
        ("d", "ReceiptHandleIsInvalid", True)
    ]
    assert bodies(aws_endpoint, queue) == ["kept"]
    assert proxy.stats().forwarded == 0


def test_sns_publish_batch_reports_withheld_entries_failed_and_publishes_the_rest(
    proxy: FaultProxyHandle, aws_endpoint: str, queue: str, prefix: str
) -> None:
    sns = client(proxy.endpoint, "sns")
    topic = sns.create_topic(Name=f"{prefix}-t")["TopicArn"]
    queue_arn = client(aws_endpoint, "sqs").get_queue_attributes(
        QueueUrl=queue, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    faults(proxy, "partial=0.5")
    entries = [{"Id": f"p{n}", "Message": f"note-{n}"} for n in range(6)]
    answer = sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=entries)
    published = {entry["Id"] for entry in answer["Successful"]}
    failed = {entry["Id"]: entry for entry in answer["Failed"]}
    assert failed
    assert published
    assert published | set(failed) == {e["Id"] for e in entries}
    assert {(f["Code"], f["SenderFault"]) for f in failed.values()} == {("InternalError", False)}
    assert bodies(aws_endpoint, queue) == sorted(f"note-{i[1:]}" for i in published)


def test_a_standard_queue_delivers_a_message_again_after_its_delete(
    proxy: FaultProxyHandle, queue: str, prefix: str
) -> None:
    faults(proxy, "duplicate=1")
    sqs = client(proxy.endpoint, "sqs")
    sqs.send_message(QueueUrl=queue, MessageBody="twice")
    [first] = sqs.receive_message(QueueUrl=queue)["Messages"]
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=first["ReceiptHandle"])
    [again] = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=5)["Messages"]
    same = ("MessageId", "Body", "MD5OfBody")
    assert [again[k] for k in same] == [first[k] for k in same]
    assert again["ReceiptHandle"] != first["ReceiptHandle"]
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=again["ReceiptHandle"])  # accepted
    assert sqs.receive_message(QueueUrl=queue).get("Messages", []) == []
    fifo = sqs.create_queue(
        QueueName=f"{prefix}.fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
    )["QueueUrl"]
    sqs.send_message(QueueUrl=fifo, MessageBody="once", MessageGroupId="g")
    [once] = sqs.receive_message(QueueUrl=fifo)["Messages"]
    sqs.delete_message(QueueUrl=fifo, ReceiptHandle=once["ReceiptHandle"])
    assert sqs.receive_message(QueueUrl=fifo).get("Messages", []) == []
    assert proxy.stats().injected("duplicate") == 1


def test_expired_credentials_refuse_their_key_in_each_services_words_and_pass_others(
    proxy: FaultProxyHandle, aws_endpoint: str, table: str, queue: str, prefix: str
) -> None:
    topic = client(aws_endpoint, "sns").create_topic(Name=f"{prefix}-t")["TopicArn"]
    faults(proxy, "")
    put(proxy.endpoint, table, "before")
    assert proxy.expire_credentials("AKIDEXPIRING") == ["AKIDEXPIRING"]
    old = {
        service: client(proxy.endpoint, service, key="AKIDEXPIRING")
        for service in ("dynamodb", "sqs", "sns", "sts")
    }
    answers = [
        refused(lambda: old["dynamodb"].get_item(TableName=table, Key={"pk": {"S": "before"}})),
        refused(lambda: old["sqs"].send_message(QueueUrl=queue, MessageBody="m")),
        refused(lambda: old["sns"].publish(TopicArn=topic, Message="m")),
    ]
    assert [answer[:2] for answer in answers] == [
        ("ExpiredTokenException", 400),
        ("ExpiredToken", 403),
        ("ExpiredToken", 403),
    ]
    assert (
        answers[0][2]["Error"]["Message"] == "The security token included in the request is expired"
    )
    old["sts"].get_caller_identity()  # STS is never refused
    put(proxy.endpoint, table, "other-key")


def test_the_key_in_use_expires_by_itself_when_the_plan_says_so(
    proxy: FaultProxyHandle, table: str
) -> None:
    faults(proxy, "expire-credentials-after=0.3")
    renewed = client(proxy.endpoint, "dynamodb", key="AKIDRENEWED")
    renewed.describe_table(TableName=table)
    time.sleep(0.4)
    assert refused(lambda: put(proxy.endpoint, table, "late"))[0] == "ExpiredTokenException"
    renewed.describe_table(TableName=table)  # another key: the renewed credentials work


def test_an_unreadable_plan_is_refused_and_the_old_one_kept(proxy: FaultProxyHandle) -> None:
    faults(proxy, "throttle=0.5")
    with pytest.raises(FaultProxyError, match="a rate is between 0 and 1"):
        proxy._call("POST", "/plan", {"faults": "throttle=2"})
    with urllib.request.urlopen(proxy.endpoint + "/_faultproxy/plan") as answer:
        assert b"throttle=0.5" in answer.read()
