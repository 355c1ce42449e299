"""`order-processor ...`: the command line. Each verb is a small function over Settings."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import version

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from order_processor.cli import (
    admin,
    analytics,
    conversion,
    dashboard,
    deploy,
    gateway,
    health,
    holdings,
    ops,
    rates,
    trading,
)
from order_processor.cli.failures import ExitStatus, explain
from order_processor.config import ConfigError, Settings
from order_processor.deployment.emulator import EmulatorError
from order_processor.domain.commands import describe_errors
from order_processor.exceptions import OrderProcessorError

Command = Callable[[argparse.Namespace, Settings], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="order-processor",
        description="Event-driven order processing on SQS, DynamoDB and SNS.",
        epilog="exit status: 0 ok, 1 the command failed, 2 usage or configuration, "
        "3 AWS endpoint unreachable, 4 not provisioned, 5 access denied or credentials, "
        "6 throttled or unavailable, 7 other AWS error",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {version('order-processor')}"
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")
    for module in (
        ops,
        health,
        trading,
        holdings,
        conversion,
        rates,
        admin,
        analytics,
        deploy,
        dashboard,
        gateway,
    ):
        module.register(verbs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        command: Command = args.run
        return command(args, settings)
    except (ConfigError, EmulatorError, argparse.ArgumentTypeError) as exc:
        return fail(str(exc))
    except ValidationError as exc:
        return fail(describe_errors(exc))
    except (OrderProcessorError, ClientError, BotoCoreError) as exc:
        failure = explain(exc)
        return fail(failure.message, failure.status)


def fail(message: str, status: int = ExitStatus.USAGE) -> int:
    print(f"order-processor: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
