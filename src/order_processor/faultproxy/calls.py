"""What a request is: its service, operation and signing key, read from its headers (and
from the form body for the query protocol), and whether the proxy may fault it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

TARGET_PREFIXES = {"DynamoDB_20120810": "dynamodb", "AmazonSQS": "sqs"}
SIGNED_SCOPE = re.compile(r"Credential=([^/,\s]+)/[^/]+/([^/]+)/([^/]+)/")
# Only operations on items, messages and notifications are faulted; creating, describing
# and deleting resources (and STS, and anything else) always passes untouched.
DATA_PLANE = {
    "dynamodb": frozenset(
        {
            "GetItem",
            "PutItem",
            "UpdateItem",
            "DeleteItem",
            "Query",
            "Scan",
            "BatchGetItem",
            "BatchWriteItem",
            "TransactGetItems",
            "TransactWriteItems",
            "ExecuteStatement",
            "BatchExecuteStatement",
            "ExecuteTransaction",
        }
    ),
    "sqs": frozenset(
        {
            "SendMessage",
            "SendMessageBatch",
            "ReceiveMessage",
            "DeleteMessage",
            "DeleteMessageBatch",
            "ChangeMessageVisibility",
            "ChangeMessageVisibilityBatch",
        }
    ),
    "sns": frozenset({"Publish", "PublishBatch"}),
}


@dataclass(frozen=True)
class Call:
    service: str  # dynamodb, sqs, sns, sts, ... or "" when unknown
    operation: str
    access_key_id: str

    @property
    def faultable(self) -> bool:
        return self.operation in DATA_PLANE.get(self.service, ())


def identify(headers: Mapping[str, str], body: bytes) -> Call:
    found = SIGNED_SCOPE.search(headers.get("Authorization", ""))
    access_key_id, service = (found.group(1), found.group(3)) if found else ("", "")
    target = headers.get("X-Amz-Target", "")
    if target:
        prefix, _, operation = target.partition(".")
        return Call(TARGET_PREFIXES.get(prefix, service), operation, access_key_id)
    operation = ""
    if "x-www-form-urlencoded" in headers.get("Content-Type", ""):
        operation = dict(parse_qsl(body.decode("utf-8", "replace"))).get("Action", "")
    return Call(service, operation, access_key_id)
