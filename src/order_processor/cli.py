"""`order-processor ...`: the command line. Each verb is a small function over Settings."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from types import FrameType

from botocore.exceptions import (
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from order_processor.aws import sync_client
from order_processor.config import ConfigError, Settings
from order_processor.emulator import EmulatorError, running_emulator
from order_processor.provision import Provisioner, summarize
from order_processor.status import read_status

EXIT_USAGE = 2

Command = Callable[[argparse.Namespace, Settings], int]


def provision(settings: Settings) -> int:
    clients = (sync_client(settings, s) for s in ("dynamodb", "sqs", "sns"))
    changes = Provisioner(*clients).apply(settings.resources())
    for change in changes:
        print(change)
    print(summarize(changes))
    return 0


def cmd_provision(_: argparse.Namespace, settings: Settings) -> int:
    return provision(settings)


def cmd_status(_: argparse.Namespace, settings: Settings) -> int:
    status = read_status(
        settings.resources(), sync_client(settings, "dynamodb"), sync_client(settings, "sqs")
    )
    print(status.render())
    return 0


@contextlib.contextmanager
def endpoint_for(settings: Settings) -> Iterator[Settings]:
    """The configured endpoint if there is one, else a fresh embedded emulator."""
    if settings.endpoint_url is not None:
        yield settings
        return
    with running_emulator() as emulator:
        print(f"embedded emulator (MiniStack) at {emulator.endpoint}", flush=True)
        yield settings.with_endpoint(emulator.endpoint)


def cmd_emulator(args: argparse.Namespace, settings: Settings) -> int:
    with running_emulator() as emulator, _stop_on_sigterm():
        print(f"AWS_ENDPOINT_URL={emulator.endpoint}", flush=True)
        print(f"MiniStack pid {emulator.pid}", flush=True)
        if args.provision:
            provision(settings.with_endpoint(emulator.endpoint))
        print("serving; Ctrl-C stops it", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    return 0


def cmd_demo(_: argparse.Namespace, settings: Settings) -> int:
    with endpoint_for(settings) as live:
        provision(live)
        print()
        return cmd_status(argparse.Namespace(), live)


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="order-processor",
        description="Event-driven order processing on SQS, DynamoDB and SNS.",
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")
    verb = verbs.add_parser("emulator", help="run the embedded emulator in the foreground")
    verb.add_argument("--provision", action="store_true", help="also create every resource")
    verb.set_defaults(run=cmd_emulator)
    verbs.add_parser("provision", help="create every table, queue and topic (idempotent)")
    verbs.choices["provision"].set_defaults(run=cmd_provision)
    verbs.add_parser("status", help="queue depths and table item counts")
    verbs.choices["status"].set_defaults(run=cmd_status)
    verbs.add_parser("demo", help="the main job on the embedded emulator (make run)")
    verbs.choices["demo"].set_defaults(run=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        command: Command = args.run
        return command(args, settings)
    except ConfigError as exc:
        return _fail(str(exc))
    except EmulatorError as exc:
        return _fail(str(exc))
    except (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError) as exc:
        return _fail(f"cannot reach the AWS endpoint: {exc}")
    except NoCredentialsError:
        return _fail("no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile")


def _fail(message: str) -> int:
    print(f"order-processor: {message}", file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
