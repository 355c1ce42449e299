"""The checked-in OpenAPI document is the app's own, and documents every refusal."""

from __future__ import annotations

import json
from pathlib import Path

from order_processor.gateway.openapi import document

CHECKED_IN = Path(__file__).parents[3] / "docs" / "openapi.json"


def test_the_checked_in_document_is_the_apps_own() -> None:
    assert json.loads(CHECKED_IN.read_text()) == document(), "stale: run `make openapi`"


def test_every_error_answer_is_documented_as_a_problem() -> None:
    paths = document()["paths"]
    errors = [
        (path, method, status, list(response.get("content", {})))
        for path, operations in paths.items()
        for method, operation in operations.items()
        for status, response in operation["responses"].items()
        if int(status) >= 400
    ]

    assert errors
    assert {tuple(media) for *_, media in errors} == {("application/problem+json",)}
    assert all("500" in op["responses"] for ops in paths.values() for op in ops.values())


def test_the_orders_body_is_the_contracts_order_request() -> None:
    schema = document()
    body = schema["paths"]["/v1/orders"]["post"]["requestBody"]["content"]["application/json"]
    request = schema["components"]["schemas"][body["schema"]["$ref"].rsplit("/", 1)[-1]]

    assert request["additionalProperties"] is False
    assert set(request["properties"]) == {
        "order_type",
        "asset_id",
        "quantity",
        "limit_price",
        "stop_price",
        "trail_amount",
        "trail_percent",
        "expires_at",
        "pay_currency",
    }
