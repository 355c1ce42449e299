"""`python -m tests.chaos`: a chaos run sized by flags, against AWS_ENDPOINT_URL or an
embedded emulator of its own. Prints a line per kill and a findings report; exit status 1
on any finding."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from order_processor.deployment.emulator import running_emulator
from tests.chaos.run import AWS_FAULTS, ChaosConfig, run_chaos


def parse(argv: list[str]) -> ChaosConfig:
    defaults = ChaosConfig()
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--users", type=int, default=defaults.users)
    parser.add_argument(
        "--orders",
        type=int,
        default=defaults.orders,
        help="orders, deposits, withdrawals and conversions",
    )
    parser.add_argument("--kills", type=int, default=defaults.kills)
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument("--seconds", type=float, default=defaults.seconds, help="load duration")
    parser.add_argument(
        "--armed-ratio",
        type=float,
        default=defaults.armed_ratio,
        help="share of restarts armed with crash-after=<random step>",
    )
    parser.add_argument("--drain-seconds", type=float, default=defaults.drain_seconds)
    parser.add_argument("--log-dir", type=Path, help="worker logs (default: a new temp dir)")
    parser.add_argument(
        "--aws-faults",
        action="store_true",
        help=f"the programs through the fault proxy at AWS's default failure rates: {AWS_FAULTS}",
    )
    parser.add_argument("--faults", default="", help="a fault plan of your own (see docs)")
    parser.add_argument(
        "--outage", type=float, default=0.0, help="seconds of endpoint outage mid-load"
    )
    args = parser.parse_args(argv)
    if args.log_dir:
        args.log_dir.mkdir(parents=True, exist_ok=True)
    return ChaosConfig(
        seed=args.seed,
        users=args.users,
        orders=args.orders,
        kills=args.kills,
        workers=args.workers,
        seconds=args.seconds,
        armed_ratio=args.armed_ratio,
        drain_seconds=args.drain_seconds,
        log_dir=args.log_dir,
        faults=args.faults or (AWS_FAULTS if args.aws_faults else ""),
        outage_seconds=args.outage,
    )


def say(line: str) -> None:
    print(line, flush=True)


def main(argv: list[str]) -> int:
    config = parse(argv)
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        report = asyncio.run(run_chaos(endpoint, config, say))
    else:
        with running_emulator() as emulator:
            say(f"embedded emulator at {emulator.endpoint}")
            report = asyncio.run(run_chaos(emulator.endpoint, config, say))
    print(report.text(), flush=True)
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
