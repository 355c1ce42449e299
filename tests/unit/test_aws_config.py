"""How clients are configured: retries from the standard variables, a pool sized to the
work, and an emulator's credentials only when the default chain has none."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from botocore.exceptions import NoCredentialsError

from order_processor.aws import (
    CLI_ATTEMPTS,
    PROGRAM_ATTEMPTS,
    aio_session,
    client_config,
    refresh_windows,
    sync_session,
)
from order_processor.config import Settings

ENDPOINT = Settings(endpoint_url="http://127.0.0.1:4566", concurrency=64)


def test_programs_retry_more_than_the_cli_in_standard_mode() -> None:
    cli = client_config(ENDPOINT, environ={})
    program = client_config(ENDPOINT, long_running=True, environ={})

    assert cast(Any, cli).retries == {"total_max_attempts": CLI_ATTEMPTS, "mode": "standard"}
    assert cast(Any, program).retries == {
        "total_max_attempts": PROGRAM_ATTEMPTS,
        "mode": "standard",
    }
    assert PROGRAM_ATTEMPTS > CLI_ATTEMPTS


def test_aws_max_attempts_and_retry_mode_are_left_to_botocore_when_set() -> None:
    config = client_config(
        ENDPOINT, long_running=True, environ={"AWS_MAX_ATTEMPTS": "9", "AWS_RETRY_MODE": "adaptive"}
    )

    assert cast(Any, config).retries == {}


def test_a_workers_pool_is_sized_from_its_concurrency() -> None:
    assert (
        cast(Any, client_config(ENDPOINT, long_running=True, environ={})).max_pool_connections == 74
    )
    assert cast(Any, client_config(ENDPOINT, environ={})).max_pool_connections == 10


def test_assumed_credentials_are_renewed_well_before_they_expire() -> None:
    assert refresh_windows(3600) == (900, 600)  # botocore's own windows for an hour
    assert refresh_windows(900) == (300, 150)  # not on every call for 15 minutes
    assert refresh_windows(9) == (3, 1)


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", f"{tmp_path}/none")
    monkeypatch.setenv("AWS_CONFIG_FILE", f"{tmp_path}/none")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.usefixtures("no_credentials")
async def test_an_emulator_gets_test_credentials_only_when_the_chain_finds_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    empty_sync = sync_session(ENDPOINT).get_credentials()
    empty_aio = await (await aio_session(ENDPOINT))._session.get_credentials()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFROMTHECHAIN")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    chained_sync = sync_session(ENDPOINT).get_credentials()
    chained_aio = await (await aio_session(ENDPOINT))._session.get_credentials()

    assert (empty_sync.access_key, empty_aio.access_key) == ("test", "test")
    assert (chained_sync.access_key, chained_aio.access_key) == ("AKIAFROMTHECHAIN",) * 2


@pytest.mark.usefixtures("no_credentials")
def test_without_an_endpoint_no_credentials_are_made_up() -> None:
    assert sync_session(Settings()).get_credentials() is None


@pytest.mark.usefixtures("no_credentials")
def test_the_profiles_max_attempts_and_retry_mode_are_left_to_botocore(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    config.write_text("[default]\nmax_attempts = 10\nretry_mode = adaptive\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    for name in ("AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE"):
        monkeypatch.delenv(name, raising=False)

    assert cast(Any, client_config(ENDPOINT, long_running=True)).retries == {}


@pytest.mark.usefixtures("no_credentials")
async def test_a_role_with_nothing_to_assume_it_with_says_no_credentials() -> None:
    role = Settings(role_arn="arn:aws:iam::123456789012:role/op-order-worker")

    with pytest.raises(NoCredentialsError):
        sync_session(role)
    with pytest.raises(NoCredentialsError):
        await aio_session(role)
