"""A loopback HTTP endpoint between the CLI and the emulator that answers chosen operations
with the error response AWS sends (access denied, throttling...) and forwards every other
request to the emulator: the conditions an emulator cannot produce on demand."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length"}


@dataclass(frozen=True)
class Fault:
    """An AWS JSON-protocol error response (DynamoDB's and SQS's protocol)."""

    error_type: str  # the body's __type, e.g. com.amazon.coral.service#AccessDeniedException
    message: str
    status: int = 400
    query_error: str | None = None  # SQS: the x-amzn-query-error header, "Code;Sender"

    def body(self) -> bytes:
        return json.dumps({"__type": self.error_type, "message": self.message}).encode()


@dataclass
class FaultProxy:
    upstream: str
    faults: dict[str, Fault] = field(default_factory=dict)  # X-Amz-Target -> its answer
    answered: list[str] = field(default_factory=list)  # the targets that got their fault

    def handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                target = self.headers.get("X-Amz-Target", "")
                fault = proxy.faults.get(target)
                if fault is None:
                    self._forward(body)
                    return
                proxy.answered.append(target)
                payload = fault.body()
                self.send_response(fault.status)
                self.send_header("Content-Type", "application/x-amz-json-1.0")
                self.send_header("x-amzn-RequestId", "proxy-request-1")
                if fault.query_error is not None:
                    self.send_header("x-amzn-query-error", fault.query_error)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _forward(self, body: bytes) -> None:
                parts = urlsplit(proxy.upstream)
                connection = http.client.HTTPConnection(parts.hostname or "", parts.port)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                try:
                    connection.request(self.command, self.path, body=body, headers=headers)
                    response = connection.getresponse()
                    payload = response.read()
                finally:
                    connection.close()
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in HOP_BY_HOP:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@contextmanager
def fault_proxy(upstream: str, faults: dict[str, Fault]) -> Iterator[tuple[str, FaultProxy]]:
    """(its endpoint URL, the proxy) while it serves."""
    proxy = FaultProxy(upstream, dict(faults))
    server = ThreadingHTTPServer(("127.0.0.1", 0), proxy.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", proxy
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
