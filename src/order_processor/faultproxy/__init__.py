"""An AWS-faithful fault-injecting proxy between the programs and the emulator: AWS's
failures (throttling, 5xx, cut connections, lost answers, transaction conflicts,
unprocessed batch entries, duplicate deliveries, index lag, expired credentials) with
AWS's error documents, at seeded rates per operation. docs/fault-proxy.md tells each."""

from order_processor.faultproxy.process import FaultProxyError, FaultProxyHandle, fault_proxy
from order_processor.faultproxy.rates import AWS_BAD_DAY, FaultPlan, PlanError
from order_processor.faultproxy.stats import ProxyStats

__all__ = [
    "AWS_BAD_DAY",
    "FaultPlan",
    "FaultProxyError",
    "FaultProxyHandle",
    "PlanError",
    "ProxyStats",
    "fault_proxy",
]
