"""Operating verbs: emulator, provision, status, demo, worker."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any

from order_processor.bootstrap import (
    AwsClients,
    get_asset_dao,
    get_dead_letters,
    get_order_dao,
)
from order_processor.bootstrap.arguments import add_worker_parsers
from order_processor.bootstrap.programs import check_required, run_worker
from order_processor.cli.common import add_output_argument, cli_clients, print_json, with_clients
from order_processor.config import Settings
from order_processor.dashboard.app import DEFAULT_PORT
from order_processor.demo.load import DemoPlan
from order_processor.demo.run import run_demo
from order_processor.deployment.emulator import running_emulator
from order_processor.deployment.provision import Action, Change, Provisioner, summarize
from order_processor.ops.insight import every_book, gather_insight, status_document
from order_processor.ops.ledger_audit import LedgerAuditor
from order_processor.ops.status import read_status
from order_processor.store.backfill import backfill_reach_keys


def register(verbs: Any) -> None:
    verb = verbs.add_parser("emulator", help="run the embedded emulator in the foreground")
    verb.add_argument("--provision", action="store_true", help="also create every resource")
    verb.set_defaults(run=cmd_emulator)
    verb = verbs.add_parser("provision", help="create every table, queue and topic (idempotent)")
    add_output_argument(verb)
    verb.set_defaults(run=cmd_provision)
    verb = verbs.add_parser("status", help="queue depths and table item counts")
    add_output_argument(verb)
    verb.set_defaults(run=cmd_status)
    demo = verbs.add_parser("demo", help="the main job on the embedded emulator (make run)")
    demo.add_argument("--users", type=int, default=DemoPlan.users)
    demo.add_argument("--orders", type=int, default=DemoPlan.orders, help="commands to send")
    demo.add_argument("--seconds", type=float, default=DemoPlan.seconds, help="spread over")
    demo.add_argument("--seed", type=int, default=DemoPlan.seed)
    demo.add_argument(
        "--dashboard-port",
        type=int,
        default=DEFAULT_PORT,
        help=f"the dashboard's (default {DEFAULT_PORT}, or a free one if it is taken)",
    )
    demo.add_argument(
        "--keep-dashboard",
        action="store_true",
        help="keep the dashboard up after the demo, until Ctrl-C",
    )
    demo.set_defaults(run=cmd_demo)
    dlq = verbs.add_parser("dlq", help="the commands' (or the analytics') dead-letter queue")
    which = dlq.add_subparsers(dest="which", required=True)
    listing = which.add_parser("list", help="summaries of dead letters (they stay in the DLQ)")
    listing.add_argument("--limit", type=int, default=100)
    redrive = which.add_parser("redrive", help="send dead letters back to their queue")
    redrive.add_argument("--limit", type=int)
    purge = which.add_parser("purge", help="delete every dead letter")
    purge.add_argument("--yes", action="store_true", help="yes, delete them")
    for verb in (listing, redrive, purge):
        verb.add_argument(
            "--queue",
            choices=["commands", "analytics"],
            default="commands",
            help="whose dead letters (default: the commands')",
        )
        verb.set_defaults(run=cmd_dlq)
    audit = verbs.add_parser("audit", help="reconcile balances, transactions and orders")
    audit.add_argument(
        "--allow-in-flight", action="store_true", help="PENDING/PROCESSING orders are not errors"
    )
    add_output_argument(audit)
    audit.set_defaults(run=cmd_audit)
    backfill = verbs.add_parser(
        "backfill-triggers",
        help="give the QUEUED orders of an older version the matcher's index keys (once)",
    )
    backfill.set_defaults(run=cmd_backfill_triggers)
    worker = verbs.add_parser("worker", help="run a worker process")
    add_worker_parsers(worker)
    worker.set_defaults(run=cmd_worker)


def provision(settings: Settings, output: str = "text") -> int:
    clients = cli_clients(settings, "dynamodb", "sqs", "sns")
    changes = Provisioner(*clients).apply(settings.resources())
    if output == "json":
        print_json(provision_report(changes))
        return 0
    for change in changes:
        print(change)
    print(summarize(changes))
    return 0


def provision_report(changes: list[Change]) -> dict[str, Any]:
    """`provision --output json`: what was created or updated, and how many of each."""
    return {
        "changes": [
            {"action": c.action.value, "kind": c.kind, "name": c.name, "detail": c.detail}
            for c in changes
            if c.action is not Action.UNCHANGED
        ],
        "counts": {a.value: sum(1 for c in changes if c.action is a) for a in Action},
    }


def cmd_provision(args: argparse.Namespace, settings: Settings) -> int:
    return provision(settings, args.output)


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    status = read_status(
        settings.resources(),
        *cli_clients(settings, "dynamodb", "sqs", "sns"),
    )
    if args.output == "text":
        print(status.render())
    if status.missing:
        if args.output == "json":
            print_json(status_document(status, None))
        return 0

    async def action(clients: AwsClients) -> int:
        insight = await gather_insight(
            clients.dynamodb,
            clients.resources.orders_table,
            await every_book(get_asset_dao(clients), get_order_dao(clients)),
            await get_dead_letters(clients),
        )
        if args.output == "json":
            print_json(status_document(status, insight))
        else:
            print()
            print(insight.render())
        return 0

    return with_clients(settings, action)


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
        # Inside the suppress before saying so: a SIGTERM right after the line must not
        # escape as KeyboardInterrupt (the process would die of SIGINT).
        with contextlib.suppress(KeyboardInterrupt):
            print("serving; Ctrl-C stops it", flush=True)
            while True:
                time.sleep(3600)
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    plan = DemoPlan(users=args.users, orders=args.orders, seconds=args.seconds, seed=args.seed)
    with endpoint_for(settings) as live:
        return asyncio.run(
            run_demo(
                live,
                plan,
                dashboard_port=args.dashboard_port,
                keep_dashboard=args.keep_dashboard,
            )
        )


def cmd_dlq(args: argparse.Namespace, settings: Settings) -> int:
    if args.which == "purge" and not args.yes:
        print("order-processor: dlq purge deletes every dead letter; add --yes", file=sys.stderr)
        return 2

    async def action(clients: AwsClients) -> int:
        letters = await get_dead_letters(clients, args.queue)
        if args.which == "list":
            for letter in await letters.list(args.limit):
                print(json.dumps(letter.summary()))
        elif args.which == "redrive":
            print(f"redriven: {await letters.redrive(args.limit)}")
        else:
            print(f"purged: {await letters.purge()}")
        return 0

    return with_clients(settings, action)


def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    async def action(clients: AwsClients) -> int:
        auditor = LedgerAuditor(
            clients.dynamodb, clients.resources.users_table, get_order_dao(clients)
        )
        report = await auditor.run(allow_in_flight=args.allow_in_flight)
        if args.output == "json":
            print_json(report.as_dict())
            return 0 if report.passed else 1
        for mismatch in report.mismatches:
            print(mismatch)
        for line in report.currency_lines():
            print(line)
        print(report.summary())
        return 0 if report.passed else 1

    return with_clients(settings, action)


def cmd_backfill_triggers(args: argparse.Namespace, settings: Settings) -> int:
    async def action(clients: AwsClients) -> int:
        done = await backfill_reach_keys(clients.dynamodb, clients.resources.orders_table)
        print(
            f"backfill-triggers: {done.written} QUEUED order(s) given their keys, "
            f"{done.changed} changed meanwhile (passed over)"
        )
        return 0

    return with_clients(settings, action)


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    check_required(args.kind, settings)  # before connecting
    return run_worker(args.kind, args, settings)


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
