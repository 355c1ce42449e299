from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from importlib.metadata import version

from order_processor.config import Settings
from order_processor.deployment.emulator import is_healthy
from tests.support import CLI, Clients, cli_env, destroy, run_cli


def test_status_shows_queue_depths_and_table_counts(
    provisioned: Settings, clients: Clients
) -> None:
    resources = provisioned.resources()
    commands = clients.queue_url(resources.commands_queue.name)
    clients.sqs.send_message(QueueUrl=commands, MessageBody="{}", MessageGroupId="alice")
    clients.sqs.send_message(QueueUrl=commands, MessageBody="[]", MessageGroupId="bob")
    clients.dynamodb.put_item(
        TableName=resources.inventory_table, Item={"PK": {"S": "ASSET#BTC"}, "SK": {"S": "ASSET"}}
    )

    result = run_cli("status", env=cli_env(provisioned))

    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines() if line}
    assert rows[resources.commands_queue.name] == ["2", "0", "0"]
    assert rows[resources.order_status_queue.name] == ["0", "0", "-"]
    assert rows[resources.inventory_table] == ["1"]
    assert rows[resources.users_table] == ["0"]


def test_status_names_missing_resources(settings: Settings) -> None:
    result = run_cli("status", env=cli_env(settings))

    assert result.returncode == 0, result.stderr
    assert f"{settings.prefix}-order-commands.fifo" in result.stdout
    assert "missing resources: run `order-processor provision`" in result.stdout


def test_provision_command_is_idempotent(settings: Settings) -> None:
    try:
        first = run_cli("provision", env=cli_env(settings))
        second = run_cli("provision", env=cli_env(settings))
    finally:
        destroy(settings)

    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[-1] == "21 created, 0 updated, 0 unchanged"
    assert second.stdout.splitlines()[-1] == "nothing to change: all 21 resources are as specified"


def test_provision_json_lists_what_it_created_and_then_that_nothing_changed(
    settings: Settings,
) -> None:
    try:
        first = run_cli("provision", "--output", "json", env=cli_env(settings))
        second = run_cli("provision", "--output", "json", env=cli_env(settings))
    finally:
        destroy(settings)

    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    created = json.loads(first.stdout)
    again = json.loads(second.stdout)
    assert created["counts"] == {"created": 21, "updated": 0, "unchanged": 0}
    assert {
        "action": "created",
        "kind": "table",
        "name": f"{settings.prefix}-users",
        "detail": "",
    } in created["changes"]
    assert again == {"changes": [], "counts": {"created": 0, "updated": 0, "unchanged": 21}}


def test_status_json_gives_queue_depths_table_counts_and_the_topic(
    provisioned: Settings, clients: Clients
) -> None:
    resources = provisioned.resources()
    commands = clients.queue_url(resources.commands_queue.name)
    clients.sqs.send_message(QueueUrl=commands, MessageBody="{}", MessageGroupId="alice")

    result = run_cli("status", "--output", "json", env=cli_env(provisioned))

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    queues = {q["name"]: q for q in report["queues"]}
    assert queues[resources.commands_queue.name] == {
        "name": resources.commands_queue.name,
        "visible": 1,
        "in_flight": 0,
        "dead_letters": 0,
    }
    assert queues[resources.order_status_queue.name]["dead_letters"] is None  # it has no DLQ
    assert {t["name"]: t["items"] for t in report["tables"]}[resources.users_table] == 0
    assert report["topics"] == [{"name": resources.events_topic, "exists": True}]
    assert (report["missing"], report["orders_by_status"]) == ([], {})


def test_status_json_of_a_deployment_not_provisioned_lists_every_resource_missing(
    settings: Settings,
) -> None:
    result = run_cli("status", "--output", "json", env=cli_env(settings))

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    resources = settings.resources()
    p = settings.prefix
    assert report["missing"] == [  # the DLQs are counted with their queues
        f"{p}-order-commands.fifo",
        f"{p}-price-updates",
        f"{p}-order-status",
        f"{p}-order-analytics",
        f"{p}-order-cache",
        f"{p}-users",
        f"{p}-orders",
        f"{p}-inventory",
        f"{p}-analytics",
        resources.events_topic,
    ]
    assert {t["items"] for t in report["tables"]} == {None}
    assert report["orders_by_status"] is None


def test_version_is_the_installed_package_version() -> None:
    result = run_cli("--version")

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"order-processor {version('order-processor')}\n"


def test_wrong_setting_names_the_variable() -> None:
    result = run_cli("status", env={"ORDER_PROCESSOR_QUEUE_KIND": "lifo"})

    assert result.returncode == 2
    assert "ORDER_PROCESSOR_QUEUE_KIND='lifo'" in result.stderr


def test_missing_emulator_says_which_make_target_installs_it() -> None:
    result = run_cli("demo", env={"ORDER_PROCESSOR_EMULATOR_VENV": "/nonexistent-venv"})

    assert result.returncode == 2
    assert "make emulator-venv" in result.stderr


def test_emulator_command_serves_until_sigterm_and_leaves_no_process() -> None:
    environment = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}
    with subprocess.Popen(
        [CLI, "emulator", "--provision"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**environment, "ORDER_PROCESSOR_PREFIX": "cli-emulator"},
    ) as process:
        try:
            assert process.stdout is not None
            endpoint = process.stdout.readline().strip().removeprefix("AWS_ENDPOINT_URL=")
            emulator_pid = int(process.stdout.readline().strip().removeprefix("MiniStack pid "))
            provisioned = [
                line for line in iter(process.stdout.readline, "serving; Ctrl-C stops it\n")
            ]
            assert is_healthy(endpoint)
            with urllib.request.urlopen(endpoint + "/_ministack/health", timeout=5) as response:
                assert json.load(response)["services"]["dynamodb"] == "available"
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()

    assert provisioned[-1] == "21 created, 0 updated, 0 unchanged\n"
    assert not is_healthy(endpoint)
    assert not _process_exists(emulator_pid)


def _process_exists(pid: int) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        time.sleep(0.1)
    return True
