"""`order-processor health`: the same readiness checks as the programs' /readyz, once."""

from __future__ import annotations

import json

from order_processor.config import Settings
from tests.support import Clients, cli_env, run_cli


def test_every_program_is_ready_on_a_provisioned_deployment(provisioned: Settings) -> None:
    for program in ("orders", "limit-matcher", "expiry-sweeper"):
        result = run_cli("health", "--program", program, env=cli_env(provisioned))

        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.splitlines()[-1] == f"{program}: ready"


def test_a_missing_queue_makes_the_worker_unready_and_is_named(
    provisioned: Settings, clients: Clients
) -> None:
    dead_letters = provisioned.resources().commands_queue.dead_letter
    assert dead_letters is not None
    clients.sqs.delete_queue(QueueUrl=clients.queue_url(dead_letters.name))

    result = run_cli("health", "--program", "orders", "--output", "json", env=cli_env(provisioned))

    assert result.returncode == 1
    document = json.loads(result.stdout)
    failing = [check["name"] for check in document["checks"] if not check["ok"]]
    assert document["ready"] is False
    assert failing == [f"queue {dead_letters.name}"]


def test_the_sweeper_needs_no_topic_and_the_matcher_no_users_table(provisioned: Settings) -> None:
    sweeper = run_cli(
        "health", "--program", "expiry-sweeper", "--output", "json", env=cli_env(provisioned)
    )
    matcher = run_cli(
        "health", "--program", "limit-matcher", "--output", "json", env=cli_env(provisioned)
    )

    resources = provisioned.resources()
    assert [c["name"] for c in json.loads(sweeper.stdout)["checks"]] == [
        f"table {resources.orders_table}",
        f"queue {resources.commands_queue.name}",
    ]
    assert f"table {resources.users_table}" not in [
        c["name"] for c in json.loads(matcher.stdout)["checks"]
    ]
