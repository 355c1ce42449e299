"""Each program's Prometheus metrics, with prometheus_client.

A program declares what it counts up front (`WORKER`, `MATCHER`, `SWEEPER`, `ANALYTICS`,
`CACHE`, each with the `COMMON` ones) in its own registry, together with the process collector
(CPU seconds, resident memory, open file descriptors). Counting a metric that was not
declared, or with other labels, raises at once: nothing is silently dropped. `Metrics` is
the saga's and the handlers' `MetricsSink`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

NAMESPACE = "order_processor"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class Spec:
    kind: Literal["counter", "gauge", "histogram"]
    help: str
    labels: tuple[str, ...] = ()


COMMON = {
    "aws_calls_total": Spec(
        "counter", "AWS API calls made, by operation and service.", ("operation", "service")
    ),
    "aws_requests_total": Spec(
        "counter",
        "HTTP requests sent to AWS (the calls and botocore's retries of them), by operation "
        "and service.",
        ("operation", "service"),
    ),
    "messages_in_flight": Spec("gauge", "Messages received and not yet settled."),
    "commands_rejected_total": Spec(
        "counter", "Commands answered with command.rejected, by reason.", ("reason",)
    ),
}
WORKER = COMMON | {
    "commands_processed_total": Spec(
        "counter", "Commands handled to the end (acknowledged), by type.", ("type",)
    ),
    "commands_retried_total": Spec(
        "counter", "Commands handed back for a later try, by type.", ("type",)
    ),
    "commands_failed_total": Spec(
        "counter",
        "Unforeseen failures of commands (a bug, a permission), each spending the command's "
        "failure budget, by type.",
        ("type",),
    ),
    "commands_transient_retries_total": Spec(
        "counter",
        "Commands tried again in place after a transient failure (throttling, a conflict, "
        "a partial publish), by its code.",
        ("reason",),
    ),
    "commands_handed_back_total": Spec(
        "counter",
        "Commands handed back to the queue after transient failures outlived their retries "
        "in place, by the last failure's code.",
        ("reason",),
    ),
    "orders_failed_total": Spec("counter", "Orders that ended FAILED, by reason.", ("reason",)),
    "group_commits_total": Spec(
        "counter",
        "Batches of one user's commands decided together: written in one transaction "
        "(committed), or left to be carried out one by one (one_by_one: the books changed "
        "since the read, or a call failed).",
        ("outcome",),
    ),
    "lock_busy_total": Spec(
        "counter", "Writes refused because another writer changed the user's books since the read."
    ),
    "saga_step_seconds": Spec(
        "histogram", "Time to decide, commit and publish a saga step, by step.", ("step",)
    ),
    "orders_resumed_total": Spec(
        "counter",
        "Orders found PENDING or PROCESSING by a command and taken on, by status found.",
        ("status",),
    ),
    "orders_recovered_total": Spec(
        "counter",
        "Orders the recovery job's ResumeOrder found mid-saga, by status found.",
        ("status",),
    ),
}
MATCHER = COMMON | {
    "price_updates_total": Spec("counter", "Price updates applied to the inventory."),
    "rate_updates_total": Spec("counter", "Exchange rate updates applied."),
    "rate_updates_stale_total": Spec(
        "counter", "Exchange rate updates older than the stored rate, ignored."
    ),
    "price_updates_stale_total": Spec(
        "counter", "Price updates ignored: older than the stored price."
    ),
    "trailing_stops_moved_total": Spec(
        "counter", "Trailing stops whose best price and stop a price update moved."
    ),
    "orders_triggered_total": Spec(
        "counter", "ExecuteOrder commands sent for orders a price triggers, by cause.", ("cause",)
    ),
}
SWEEPER = COMMON | {
    "orders_expired_total": Spec("counter", "ExpireOrder commands sent for due limit orders."),
    "orders_recovery_sent_total": Spec(
        "counter", "ResumeOrder commands sent for stalled orders, by status.", ("status",)
    ),
    "sweeps_total": Spec("counter", "Sweeps finished (expiry and recovery)."),
    "sweeps_failed_total": Spec(
        "counter", "Sweeps that failed (AWS away, a bug); the next one tries again."
    ),
}
ANALYTICS = COMMON | {
    "analytics_events_total": Spec(
        "counter",
        "Events read by the analytics worker, by outcome (applied, copy, ignored, malformed).",
        ("outcome",),
    ),
}
CACHE = COMMON | {
    "cache_events_total": Spec(
        "counter",
        "Events read by the cache worker, by outcome "
        "(applied, duplicate, ignored, malformed, unavailable).",
        ("outcome",),
    ),
    "cache_apply_seconds": Spec("histogram", "Time to apply one event to the read model."),
}

GATEWAY = COMMON | {
    "gateway_requests_total": Spec(
        "counter",
        "HTTP requests answered, by method, route and status.",
        ("method", "route", "status"),
    ),
    "gateway_request_seconds": Spec(
        "histogram", "Time to answer an HTTP request (a stream: to its end), by route.", ("route",)
    ),
    "gateway_streams_open": Spec("gauge", "Event streams open."),
}


class Metrics:
    """One program's metrics in its own registry (tests and several programs in one process
    never share counters)."""

    def __init__(self, specs: dict[str, Spec] | None = None) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self._metrics: dict[str, Any] = {}
        for name, spec in (WORKER if specs is None else specs).items():
            self._metrics[name] = _build(name, spec, self.registry)
        # Each series once found is kept: prometheus_client checks the label names and
        # looks the series up under a lock at every `labels()`, a dozen times an order.
        self._found: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        self._series(name, labels).inc(amount)

    def observe(self, name: str, seconds: float, **labels: str) -> None:
        self._series(name, labels).observe(seconds)

    def gauge(self, name: str, read: Callable[[], float]) -> None:
        """A gauge read at each scrape (e.g. messages in flight)."""
        self._metrics[name].set_function(read)

    def value(self, name: str, **labels: str) -> float:
        sample = self.registry.get_sample_value(f"{NAMESPACE}_{name}", labels)
        return 0.0 if sample is None else sample

    def names(self) -> Iterable[str]:
        return self._metrics.keys()

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def _series(self, name: str, labels: dict[str, str]) -> Any:
        key = (name, tuple(labels.items()))
        series = self._found.get(key)
        if series is None:
            metric = self._metrics[name]  # KeyError: a metric the program never declared
            series = metric.labels(**labels) if labels else metric
            self._found[key] = series
        return series


def _build(name: str, spec: Spec, registry: CollectorRegistry) -> Any:
    common: dict[str, Any] = {
        "namespace": NAMESPACE,
        "labelnames": spec.labels,
        "registry": registry,
    }
    if spec.kind == "counter":
        return Counter(name.removesuffix("_total"), spec.help, **common)
    if spec.kind == "gauge":
        return Gauge(name, spec.help, **common)
    return Histogram(name, spec.help, buckets=BUCKETS, **common)


def count_aws_calls(client: Any, metrics: Metrics) -> None:
    """Count every API call of a (aio)botocore client through its event hooks, and every
    HTTP request it sent for them (botocore's own retries of throttling, 5xx, cut
    connections included): what AWS bills and throttles is the second."""
    service = client.meta.service_model.service_name

    def counted(**kwargs: Any) -> None:
        model = kwargs.get("model")
        metrics.inc("aws_calls_total", service=service, operation=getattr(model, "name", "?"))

    def sent(event_name: str, **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]  # before-send.<service>.<operation>
        metrics.inc("aws_requests_total", service=service, operation=operation)

    client.meta.events.register("before-call.*.*", counted)
    client.meta.events.register("before-send.*.*", sent)
