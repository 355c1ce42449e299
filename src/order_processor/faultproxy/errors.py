"""AWS's error documents, as each protocol puts them on the wire.

- DynamoDB (JSON 1.0): the HTTP status and `{"__type": "<namespace>#<Code>", "message": ...}`;
  every answer carries `x-amz-crc32`, the CRC32 of its body, which botocore checks.
- SQS (JSON 1.0, awsQueryCompatible): the same body under `com.amazonaws.sqs#`, and the
  `x-amzn-query-error: <Code>;<Sender|Receiver>` header, from which botocore takes
  `Error.Code` (the code SQS's query protocol used).
- SNS (query): `<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/>`.
"""

from __future__ import annotations

import json
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

DYNAMODB_NAMESPACE = "com.amazonaws.dynamodb.v20120810"
CORAL_NAMESPACE = "com.amazon.coral.service"  # the errors every coral service shares
SQS_NAMESPACE = "com.amazonaws.sqs"
SNS_XMLNS = "http://sns.amazonaws.com/doc/2010-03-31/"
JSON_CONTENT = "application/x-amz-json-1.0"
EXPIRED_MESSAGE = "The security token included in the request is expired"
THROTTLE_MESSAGES = {
    "ProvisionedThroughputExceededException": (
        "Throughput exceeds the current capacity of your table or index. DynamoDB is "
        "automatically scaling your table or index so please try again shortly. If "
        "exceptions persist, check if you have a hot key: https://docs.aws.amazon.com/"
        "amazondynamodb/latest/developerguide/bp-partition-key-design.html"
    ),
    "ThrottlingException": "Rate of requests exceeds the allowed throughput.",
    "RequestLimitExceeded": "Throughput exceeds the current throughput limit for your account.",
}


@dataclass(frozen=True)
class Answer:
    """An HTTP answer, the upstream's or one the proxy makes."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body)


def request_id() -> str:
    return str(uuid.uuid4())


def dynamodb_answer(status: int, document: Mapping[str, Any]) -> Answer:
    body = json.dumps(document, separators=(",", ":")).encode()
    headers = {
        "Content-Type": JSON_CONTENT,
        "x-amzn-RequestId": request_id(),
        "x-amz-crc32": str(zlib.crc32(body) & 0xFFFFFFFF),
    }
    return Answer(status, body, headers)


def dynamodb_error(
    code: str,
    message: str,
    *,
    status: int = 400,
    namespace: str = DYNAMODB_NAMESPACE,
    message_key: str = "message",
    extra: Mapping[str, Any] | None = None,
) -> Answer:
    document = {"__type": f"{namespace}#{code}", message_key: message, **(extra or {})}
    return dynamodb_answer(status, document)


def sqs_answer(status: int, document: Mapping[str, Any]) -> Answer:
    body = json.dumps(document, separators=(",", ":")).encode()
    return Answer(status, body, {"Content-Type": JSON_CONTENT, "x-amzn-RequestId": request_id()})


def sqs_error(
    code: str,
    message: str,
    *,
    status: int = 400,
    namespace: str = SQS_NAMESPACE,
    query_code: str | None = None,
) -> Answer:
    fault = "Sender" if status < 500 else "Receiver"
    answer = sqs_answer(status, {"__type": f"{namespace}#{code}", "message": message})
    headers = {**answer.headers, "x-amzn-query-error": f"{query_code or code};{fault}"}
    return Answer(status, answer.body, headers)


def sns_error(code: str, message: str, *, status: int) -> Answer:
    fault = "Sender" if status < 500 else "Receiver"
    rid = request_id()
    body = (
        f'<ErrorResponse xmlns="{SNS_XMLNS}"><Error><Type>{fault}</Type>'
        f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
        f"<RequestId>{rid}</RequestId></ErrorResponse>"
    ).encode()
    return Answer(status, body, {"Content-Type": "text/xml", "x-amzn-RequestId": rid})


def throttled(service: str, *, dynamodb_code: str) -> Answer:
    if service == "dynamodb":
        return dynamodb_error(dynamodb_code, THROTTLE_MESSAGES[dynamodb_code])
    if service == "sqs":
        return sqs_error("RequestThrottled", "Request is throttled.")
    return sns_error("Throttled", "Rate exceeded", status=429)


def internal_error(service: str) -> Answer:
    if service == "dynamodb":
        return dynamodb_error("InternalServerError", "Internal server error", status=500)
    if service == "sqs":
        return sqs_error(
            "InternalError", "We encountered an internal error. Please try again.", status=500
        )
    return sns_error("InternalError", "Internal Error", status=500)


def expired_token(service: str) -> Answer:
    """DynamoDB answers 400 ExpiredTokenException; the services that spoke the query
    protocol answer 403 ExpiredToken (SQS still does, through its query-error header)."""
    if service == "dynamodb":
        return dynamodb_error("ExpiredTokenException", EXPIRED_MESSAGE, namespace=CORAL_NAMESPACE)
    if service == "sqs":
        return sqs_error(
            "ExpiredTokenException",
            EXPIRED_MESSAGE,
            status=403,
            namespace=CORAL_NAMESPACE,
            query_code="ExpiredToken",
        )
    return sns_error("ExpiredToken", EXPIRED_MESSAGE, status=403)


def with_document(answer: Answer, document: Mapping[str, Any]) -> Answer:
    """The answer with another JSON body (and, where it had one, the body's CRC32)."""
    body = json.dumps(document, separators=(",", ":")).encode()
    headers = {k: v for k, v in answer.headers.items() if k.lower() != "x-amz-crc32"}
    if len(headers) != len(answer.headers):
        headers["x-amz-crc32"] = str(zlib.crc32(body) & 0xFFFFFFFF)
    return Answer(answer.status, body, headers)
