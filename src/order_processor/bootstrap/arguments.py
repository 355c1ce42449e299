"""The worker programs' options, one parser per kind: each kind takes only what it uses
(the analytics worker refuses the sweeper's `--interval`). `order-processor worker KIND`
adds them as sub-commands, `python -m workers.KIND` parses one kind's alone. A value that
overrides a setting is checked by the settings (`Settings.overridden`), not a second time
here."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import datetime

KINDS = ("orders", "limit-matcher", "expiry-sweeper", "analytics", "cache")
# The options that override a setting of the same name.
OVERRIDES = ("concurrency", "metrics_port")


def _metrics(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metrics-port",
        type=int,
        help="serve /metrics, /livez, /readyz on this port (0: any free one; default: "
        "ORDER_PROCESSOR_METRICS_PORT, unset: none)",
    )


def _consumer(parser: argparse.ArgumentParser) -> None:
    _metrics(parser)
    parser.add_argument("--concurrency", type=int, help="messages in flight (default: setting)")
    parser.add_argument("--burst", action="store_true", help="drain the queue, then exit")


def _matcher(parser: argparse.ArgumentParser) -> None:
    _consumer(parser)
    parser.add_argument(
        "--rematch-interval",
        type=float,
        help="seconds between rematches of the book against current prices "
        "(default 60, 0: never; with --burst: one rematch after the drain)",
    )


def _sweeper(parser: argparse.ArgumentParser) -> None:
    _metrics(parser)
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between sweeps")
    parser.add_argument("--once", action="store_true", help="one sweep, then exit")
    parser.add_argument(
        "--now", type=datetime.fromisoformat, help="the time to sweep at (for tests)"
    )


ARGUMENTS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], str]] = {
    "orders": (_consumer, "the order worker: commands into the saga"),
    "limit-matcher": (_matcher, "price updates against the book of waiting orders"),
    "expiry-sweeper": (_sweeper, "due orders expired, stalled ones resumed"),
    "analytics": (_consumer, "order events into the analytics views"),
    "cache": (_consumer, "every event into the gateway's read model (Redis)"),
}


def add_worker_parsers(worker: argparse.ArgumentParser) -> None:
    """`worker KIND [options]`: a sub-command per kind, each with its own options."""
    kinds = worker.add_subparsers(dest="kind", required=True, metavar="KIND")
    for kind in KINDS:
        add, summary = ARGUMENTS[kind]
        add(kinds.add_parser(kind, help=summary, description=summary))


def worker_parser(kind: str) -> argparse.ArgumentParser:
    """`python -m workers.KIND [options]`: that kind's options alone."""
    add, summary = ARGUMENTS[kind]
    parser = argparse.ArgumentParser(
        prog=f"python -m workers.{kind.replace('-', '_')}", description=summary
    )
    add(parser)
    return parser


def overrides(args: argparse.Namespace) -> dict[str, object]:
    """The settings the options given replace."""
    given = {name: getattr(args, name, None) for name in OVERRIDES}
    return {name: value for name, value in given.items() if value is not None}


def port_number(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0 to 65535)")
    return port


def add_gateway_arguments(parser: argparse.ArgumentParser) -> None:
    """The gateway's options (here, apart from the server: the CLI builds its parser
    without importing FastAPI, uvicorn and Redis)."""
    parser.add_argument("--host", help="address to listen on (ORDER_PROCESSOR_GATEWAY_HOST)")
    parser.add_argument(
        "--port",
        type=port_number,
        help="port to listen on, 0: any free one (ORDER_PROCESSOR_GATEWAY_PORT)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        help="serve /metrics, /livez, /readyz on this port (ORDER_PROCESSOR_METRICS_PORT)",
    )
