"""`order-processor ...`: the command line. Each verb is a small function over Settings."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from botocore.exceptions import (
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from pydantic import ValidationError

from order_processor.cli import admin, health, ops, trading
from order_processor.config import ConfigError, Settings
from order_processor.domain.commands import describe_errors
from order_processor.emulator import EmulatorError
from order_processor.exceptions import OrderProcessorError

EXIT_USAGE = 2

Command = Callable[[argparse.Namespace, Settings], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="order-processor",
        description="Event-driven order processing on SQS, DynamoDB and SNS.",
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")
    for module in (ops, health, trading, admin):
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
    except OrderProcessorError as exc:
        return fail(f"{exc.code}: {exc.message}", status=1)
    except (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError) as exc:
        return fail(f"cannot reach the AWS endpoint: {exc}")
    except NoCredentialsError:
        return fail("no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile")


def fail(message: str, status: int = EXIT_USAGE) -> int:
    print(f"order-processor: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
