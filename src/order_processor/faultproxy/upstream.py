"""The emulator behind the proxy, reached over one keep-alive aiohttp session."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from order_processor.faultproxy.errors import JSON_CONTENT, Answer

# Headers of one hop (RFC 9110 7.6.1), and those that describe a body the proxy may change.
NOT_FORWARDED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "content-md5",
        "x-amz-content-sha256",
    }
)
# What the proxy's own calls copy from the client's request that caused them: the
# emulator does not check signatures, but takes the account from the signing key.
SIGNING_HEADERS = ("Authorization", "X-Amz-Date", "X-Amz-Security-Token")


def signing(headers: Mapping[str, str]) -> dict[str, str]:
    """The signature headers of a request (looked up case-insensitively), by their names."""
    lowered = {k.lower(): v for k, v in headers.items()}
    return {name: lowered[name.lower()] for name in SIGNING_HEADERS if name.lower() in lowered}


def passed_on(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in NOT_FORWARDED}


class UpstreamError(RuntimeError):
    """The proxy's own call to the emulator was refused."""

    def __init__(self, operation: str, answer: Answer) -> None:
        super().__init__(f"{operation}: HTTP {answer.status} {answer.body[:300]!r}")
        self.answer = answer


@dataclass(frozen=True)
class Upstream:
    base: str
    session: aiohttp.ClientSession

    async def send(
        self, method: str, path_qs: str, headers: Mapping[str, str], body: bytes
    ) -> Answer:
        # Plain answers, which the proxy can read and merge.
        sent = {k: v for k, v in passed_on(headers).items() if k.lower() != "accept-encoding"}
        sent["Accept-Encoding"] = "identity"
        async with self.session.request(
            method, self.base + path_qs, data=body, headers=sent
        ) as answer:
            payload = await answer.read()
            return Answer(answer.status, payload, passed_on(answer.headers))

    async def dynamodb(
        self, operation: str, request: Mapping[str, Any], signed_as: Mapping[str, str]
    ) -> Any:
        """One DynamoDB call of the proxy's own; its parsed answer, or UpstreamError."""
        headers = signing(signed_as) | {
            "X-Amz-Target": f"DynamoDB_20120810.{operation}",
            "Content-Type": JSON_CONTENT,
        }
        answer = await self.send("POST", "/", headers, json.dumps(request).encode())
        if answer.status != 200:
            raise UpstreamError(operation, answer)
        return answer.json()
