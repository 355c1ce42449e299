"""`order-processor template`: the CloudFormation template (README, "AWS with
CloudFormation")."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from order_processor.config import Settings
from order_processor.deployment.template import build_template, render


def register(verbs: Any) -> None:
    verb = verbs.add_parser(
        "template",
        help="print the CloudFormation template: tables, queues, topic, IAM roles, alarms",
    )
    verb.set_defaults(run=cmd_template)


def cmd_template(_: argparse.Namespace, __: Settings) -> int:
    sys.stdout.write(render(build_template()))
    return 0
