"""Worker observability: Prometheus text metrics, liveness/readiness, JSON logs.

`Metrics` keeps counters, gauges and histograms in memory (a worker's own, no library);
`HealthServer` answers on one port: `/metrics` (Prometheus text format 0.0.4),
`/livez` (the process and its loop answer) and `/readyz` (clients open, queue resolved,
not shutting down). `configure_json_logs` turns every log line, the standard library's
included, into one JSON object carrying the context bound with structlog's contextvars
(message_id, username, command, order_id, step).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import structlog

Labels = tuple[tuple[str, str], ...]
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PREFIX = "order_processor_"
HELP = {
    "commands_processed_total": ("counter", "Commands handled to the end (acknowledged)."),
    "commands_rejected_total": ("counter", "Commands answered with command.rejected."),
    "commands_retried_total": ("counter", "Commands handed back for a later try."),
    "orders_failed_total": ("counter", "Orders that ended FAILED, by reason."),
    "lock_busy_total": (
        "counter",
        "Writes refused because another writer changed the user's books since the read.",
    ),
    "saga_step_seconds": ("histogram", "Time to commit a saga step and publish its event."),
    "messages_in_flight": ("gauge", "Messages received and not yet settled."),
    "aws_calls_total": ("counter", "AWS API calls made, by service and operation."),
    "orders_resumed_total": (
        "counter",
        "Orders found PENDING or PROCESSING by a command and taken on, by status found.",
    ),
    "orders_recovered_total": (
        "counter",
        "Orders the recovery job's ResumeOrder found mid-saga, by status found.",
    ),
    "orders_recovery_sent_total": (
        "counter",
        "Sweeper: ResumeOrder commands sent for stalled orders, by status.",
    ),
    "expiry_commands_sent_total": ("counter", "Sweeper: ExpireOrder commands sent."),
}


def _labels(values: dict[str, str]) -> Labels:
    return tuple(sorted(values.items()))


def _format(name: str, labels: Labels, value: float) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels)
    return f"{PREFIX}{name}{{{inner}}} {value:g}" if inner else f"{PREFIX}{name} {value:g}"


@dataclass
class Metrics:
    counters: dict[str, dict[Labels, float]] = field(default_factory=lambda: defaultdict(dict))
    histograms: dict[str, dict[Labels, list[float]]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    gauges: dict[str, Callable[[], float]] = field(default_factory=dict)
    levels: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        series = self.counters[name]
        key = _labels(labels)
        series[key] = series.get(key, 0) + amount

    def observe(self, name: str, seconds: float, **labels: str) -> None:
        # [bucket counts..., count, sum]
        series = self.histograms[name].setdefault(_labels(labels), [0.0] * (len(BUCKETS) + 2))
        for index, bound in enumerate(BUCKETS):
            if seconds <= bound:
                series[index] += 1
        series[-2] += 1
        series[-1] += seconds

    def gauge(self, name: str, read: Callable[[], float]) -> None:
        self.gauges[name] = read

    def add(self, name: str, delta: float) -> None:
        """An up/down gauge kept here (e.g. groups waiting for a lock)."""
        self.levels[name] += delta

    def value(self, name: str, **labels: str) -> float:
        return self.counters.get(name, {}).get(_labels(labels), 0)

    def render(self) -> str:
        lines: list[str] = []
        for name in sorted(HELP):
            kind, text = HELP[name]
            lines += [f"# HELP {PREFIX}{name} {text}", f"# TYPE {PREFIX}{name} {kind}"]
            if kind == "counter":
                lines += [
                    _format(name, k, v) for k, v in sorted(self.counters.get(name, {}).items())
                ]
            elif kind == "gauge":
                read = self.gauges.get(name)
                lines.append(_format(name, (), read() if read else self.levels.get(name, 0)))
            else:
                lines += self._render_histogram(name)
        return "\n".join(lines) + "\n"

    def _render_histogram(self, name: str) -> list[str]:
        lines = []
        for labels, series in sorted(self.histograms.get(name, {}).items()):
            for bound, count in zip(
                (*BUCKETS, "+Inf"), (*series[: len(BUCKETS)], series[-2]), strict=True
            ):
                lines.append(_format(f"{name}_bucket", (*labels, ("le", str(bound))), count))
            lines.append(_format(f"{name}_count", labels, series[-2]))
            lines.append(_format(f"{name}_sum", labels, series[-1]))
        return lines


def count_aws_calls(client: Any, metrics: Metrics) -> None:
    """Count every API call of a (aio)botocore client through its event hooks."""
    service = client.meta.service_model.service_name

    def counted(**kwargs: Any) -> None:
        model = kwargs.get("model")
        metrics.inc("aws_calls_total", service=service, operation=getattr(model, "name", "?"))

    client.meta.events.register("before-call.*.*", counted)


@dataclass
class HealthServer:
    metrics: Metrics
    ready: bool = False
    _server: asyncio.Server | None = None

    async def start(self, port: int, host: str = "0.0.0.0") -> int:
        self._server = await asyncio.start_server(self._answer, host, port)
        bound: int = self._server.sockets[0].getsockname()[1]
        return bound

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass
            path = request.split()[1].decode() if len(request.split()) > 1 else "/"
            status, body, kind = self._route(path)
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError, IndexError):
            pass
        finally:
            writer.close()

    def _route(self, path: str) -> tuple[str, bytes, str]:
        if path == "/metrics":
            return "200 OK", self.metrics.render().encode(), "text/plain; version=0.0.4"
        if path == "/livez":
            return "200 OK", b"alive\n", "text/plain"
        if path == "/readyz":
            if self.ready:
                return "200 OK", b"ready\n", "text/plain"
            return "503 Service Unavailable", b"not ready\n", "text/plain"
        return "404 Not Found", b"not found\n", "text/plain"


def configure_json_logs(
    level: int = logging.INFO, *, secrets: Sequence[str] = (), stream: TextIO | None = None
) -> None:
    """One JSON object per line on `stream` (standard error by default), for the worker
    programs only (never at import time): structlog's contextvars and a stdlib record's
    `extra` fields are merged into every record, and one redaction step (after the
    traceback is rendered, before the JSON) removes tokens, passwords and secrets whatever
    key or shape they come in, plus the literal `secrets` given (the JWT secret); see
    `order_processor.security.redaction`. Idempotent: the root logger's handlers are
    replaced, never added to, so a second call leaves one handler."""
    from order_processor.security.redaction import RedactingStreamHandler, Redactor

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.ExtraAdder(),
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            Redactor(secrets),
            structlog.processors.JSONRenderer(),
        ],
    )
    # The handler's error report never echoes a record's message or %-arguments.
    handler = RedactingStreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("botocore", "aiobotocore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
