"""What an operator sees of a running program: Prometheus metrics (`metrics`), liveness
and readiness over HTTP (`health`), JSON log lines (`logs`)."""

from order_processor.observability.health import Check, CheckResult, HealthServer, Readiness
from order_processor.observability.logs import configure_json_logs
from order_processor.observability.metrics import (
    ANALYTICS,
    CACHE,
    COMMON,
    GATEWAY,
    MATCHER,
    SWEEPER,
    WORKER,
    Metrics,
    count_aws_calls,
)

__all__ = [
    "ANALYTICS",
    "CACHE",
    "COMMON",
    "GATEWAY",
    "MATCHER",
    "SWEEPER",
    "WORKER",
    "Check",
    "CheckResult",
    "HealthServer",
    "Metrics",
    "Readiness",
    "configure_json_logs",
    "count_aws_calls",
]
