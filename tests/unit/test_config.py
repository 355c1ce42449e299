from __future__ import annotations

from decimal import Decimal

import pytest

from order_processor.config import ConfigError, QueueKind, Settings


def test_defaults_follow_the_design() -> None:
    settings = Settings.from_env({})

    assert settings.endpoint_url is None
    assert settings.queue_kind is QueueKind.FIFO
    assert settings.prefix == "op"
    assert settings.max_order_value == Decimal("10000.00")
    assert settings.daily_withdraw_limit == Decimal("5000.00")
    assert settings.resources().commands_queue.name == "op-order-commands.fifo"


def test_values_are_read_from_their_variables() -> None:
    settings = Settings.from_env(
        {
            "AWS_ENDPOINT_URL": "http://localhost:4566/",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "ORDER_PROCESSOR_PREFIX": "blue",
            "ORDER_PROCESSOR_QUEUE_KIND": "standard",
            "ORDER_PROCESSOR_CONCURRENCY": "8",
            "ORDER_PROCESSOR_DAILY_DEPOSIT_LIMIT": "2500.50",
        }
    )

    assert settings.endpoint_url == "http://localhost:4566"
    assert settings.region == "eu-west-1"
    assert settings.concurrency == 8
    assert settings.daily_deposit_limit == Decimal("2500.50")
    assert settings.resources().commands_queue.name == "blue-order-commands"


def test_settings_cannot_be_changed_after_validation() -> None:
    settings = Settings.from_env({})

    with pytest.raises(ValueError, match="frozen"):
        settings.prefix = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ORDER_PROCESSOR_QUEUE_KIND", "lifo"),
        ("ORDER_PROCESSOR_CONCURRENCY", "0"),
        ("ORDER_PROCESSOR_CONCURRENCY", "many"),
        ("ORDER_PROCESSOR_VISIBILITY_TIMEOUT", "99999"),
        ("ORDER_PROCESSOR_PREFIX", "Has Spaces"),
        ("AWS_ENDPOINT_URL", "localhost:4566"),
        ("ORDER_PROCESSOR_MAX_ORDER_VALUE", "-5"),
        ("ORDER_PROCESSOR_MAX_ORDER_VALUE", "NaN"),
        ("ORDER_PROCESSOR_DAILY_WITHDRAW_LIMIT", "10.001"),
        ("ORDER_PROCESSOR_CACHE_TTL_SECONDS", "0"),
    ],
)
def test_a_wrong_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({variable: value})

    assert f"{variable}={value!r}" in str(raised.value)


def test_a_short_jwt_secret_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"ORDER_PROCESSOR_JWT_SECRET": "hunter2"})

    message = str(raised.value)
    assert "ORDER_PROCESSOR_JWT_SECRET=<hidden>" in message
    assert "at least 32 bytes" in message
    assert "hunter2" not in message


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"ORDER_PROCESSOR_CONCURRENCY": "0", "ORDER_PROCESSOR_PREFIX": "_"})

    assert "ORDER_PROCESSOR_CONCURRENCY" in str(raised.value)
    assert "ORDER_PROCESSOR_PREFIX" in str(raised.value)


def test_settings_pass_to_a_child_process_whole() -> None:
    settings = Settings(
        endpoint_url="http://127.0.0.1:1234",
        prefix="child-1",
        queue_kind=QueueKind.STANDARD,
        jwt_secret="s" * 40,
        max_order_value=Decimal("12.34"),
        recovery_age_seconds=7,
    )

    assert Settings.from_env(settings.to_env()) == settings


def test_the_stop_slippage_allowance_is_a_setting_from_0_to_100_percent() -> None:
    assert Settings.from_env({}).stop_slippage_percent == Decimal("5")
    assert Settings.from_env(
        {"ORDER_PROCESSOR_STOP_SLIPPAGE_PERCENT": "2.5"}
    ).stop_slippage_percent == Decimal("2.5")
    with pytest.raises(ConfigError, match="ORDER_PROCESSOR_STOP_SLIPPAGE_PERCENT"):
        Settings.from_env({"ORDER_PROCESSOR_STOP_SLIPPAGE_PERCENT": "150"})


def test_the_read_models_redis_is_a_secret_url_with_a_ttl_of_a_minute_by_default() -> None:
    settings = Settings.from_env({"REDIS_URL": "rediss://:pa55word@cache.example:6379/0"})

    assert settings.cache_ttl_seconds == 60
    assert settings.required_redis_url() == "rediss://:pa55word@cache.example:6379/0"
    assert "pa55word" not in repr(settings)
    assert Settings.from_env(settings.to_env()) == settings


def test_a_redis_url_of_another_scheme_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"REDIS_URL": "http://:pa55word@cache.example"})

    message = str(raised.value)
    assert "REDIS_URL=<hidden>" in message
    assert "redis://" in message
    assert "pa55word" not in message


def test_a_program_that_needs_redis_without_redis_url_is_told_which_variable() -> None:
    with pytest.raises(ConfigError, match="REDIS_URL is not set"):
        Settings.from_env({}).required_redis_url()


def test_the_read_models_redis_is_a_single_node_unless_cluster_mode_is_asked_for() -> None:
    url = "rediss://:pa55word@cache.example:6379"
    single = Settings.from_env({"REDIS_URL": url})
    cluster = Settings.from_env({"REDIS_URL": url, "ORDER_PROCESSOR_REDIS_CLUSTER": "true"})

    assert single.redis_cluster is False
    assert cluster.redis_cluster is True
    assert cluster.to_env()["ORDER_PROCESSOR_REDIS_CLUSTER"] == "true"
    assert Settings.from_env(cluster.to_env()) == cluster


@pytest.mark.parametrize(
    "url", ["redis://:pa55word@cache.example:6379/2", "unix://:pa55word@/run/redis.sock"]
)
def test_a_cluster_on_another_database_or_a_socket_is_refused_without_echoing_the_url(
    url: str,
) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"REDIS_URL": url, "ORDER_PROCESSOR_REDIS_CLUSTER": "yes"})

    message = str(raised.value)
    assert "ORDER_PROCESSOR_REDIS_CLUSTER='yes'" in message
    assert "database 0" in message
    assert "pa55word" not in message
