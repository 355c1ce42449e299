"""The redis-server runner: a server on its own port and directory, stopped by PID and
started again on the same port (what a test that takes Redis away needs), a one-node
cluster serving every slot across a restart, and a clear word when redis-server is not
installed."""

from __future__ import annotations

import pytest

from order_processor.deployment.redis_server import (
    RedisServer,
    RedisServerError,
    answers_ping,
    ask,
    cluster_ok,
    running_redis,
)


def test_a_server_stopped_and_started_again_answers_on_the_same_port() -> None:
    with running_redis() as server:
        port, pid = server.port, server.process and server.process.pid
        assert answers_ping(port)
        assert (server.directory / "redis.log").exists()

        server.stop()
        assert not answers_ping(port)
        server.start()

        assert answers_ping(server.port)
        assert server.port == port
        assert server.process is not None
        assert server.process.pid != pid
        directory = server.directory
    assert not directory.exists()


def test_a_cluster_node_serves_every_slot_again_after_a_restart_and_refuses_select() -> None:
    with running_redis(cluster=True) as server:
        assert server.url == f"redis://127.0.0.1:{server.port}"
        assert cluster_ok(server.port)
        assert b"cluster_slots_assigned:16384" in ask(server.port, "CLUSTER INFO")
        assert ask(server.port, "SELECT 1").startswith(b"-ERR SELECT is not allowed")

        server.stop()
        assert not cluster_ok(server.port)
        server.start()

        assert cluster_ok(server.port)
        assert server.nodes_path.exists()


def test_without_redis_server_installed_the_runner_says_to_run_make_redis(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    server = RedisServer()
    try:
        with pytest.raises(RedisServerError, match="run `make redis`"):
            server.start()
    finally:
        server.remove()


def test_a_cluster_node_is_never_given_a_port_whose_bus_port_cannot_exist() -> None:
    """redis-server refuses a cluster port above 55535 (its bus is port + 10000)."""
    nodes = [RedisServer(port=60000 + n, cluster=True) for n in range(3)]
    single = RedisServer(port=60000)
    try:
        assert all(0 < node.port <= 55535 for node in nodes)
        assert single.port == 60000  # a single node may use any port
    finally:
        single.remove()
        for node in nodes:
            node.remove()
