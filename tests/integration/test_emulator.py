from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from order_processor.deployment import emulator as emulator_module
from order_processor.deployment.emulator import (
    EmulatorError,
    free_port,
    is_healthy,
    running_emulator,
)


def test_emulator_starts_answers_and_stops_without_leaving_a_process() -> None:
    with running_emulator() as emulator:
        assert is_healthy(emulator.endpoint)
        assert emulator.endpoint.startswith("http://127.0.0.1:")
        pid = emulator.pid

    assert not is_healthy(emulator.endpoint)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_missing_emulator_venv_names_the_make_target(tmp_path: Path) -> None:
    with pytest.raises(EmulatorError, match="make emulator-venv"), running_emulator(tmp_path):
        pass


def test_a_port_taken_before_the_emulator_binds_it_is_given_up_for_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken])
        monkeypatch.setattr(emulator_module, "free_port", lambda: next(ports, free_port()))

        with running_emulator() as emulator:
            assert is_healthy(emulator.endpoint)
            assert emulator.endpoint != f"http://127.0.0.1:{taken}"


def test_an_emulator_that_cannot_start_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        monkeypatch.setattr(emulator_module, "free_port", lambda: taken)

        with pytest.raises(EmulatorError, match="already in use"), running_emulator():
            pass
