"""`python -m order_processor.faultproxy --upstream URL --port P [--faults PLAN] [--seed N]`:
the fault proxy in front of an emulator (MiniStack, LocalStack) until SIGTERM or Ctrl-C.
Point the programs' AWS_ENDPOINT_URL at it."""

from __future__ import annotations

import argparse
import sys

from aiohttp import web

from order_processor.faultproxy.proxy import build_app
from order_processor.faultproxy.rates import PLAN_VARIABLE, FaultPlan, PlanError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m order_processor.faultproxy")
    parser.add_argument("--upstream", required=True, help="the emulator's endpoint URL")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--faults", default=None, help=f"the fault plan (default: ${PLAN_VARIABLE}, else none)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds the dice (default 0)")
    args = parser.parse_args(argv)
    try:
        plan = FaultPlan.from_env() if args.faults is None else FaultPlan.parse(args.faults)
    except PlanError as wrong:
        print(f"fault plan: {wrong}", file=sys.stderr)
        return 2
    app = build_app(args.upstream, plan, args.seed)
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
