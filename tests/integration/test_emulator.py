from __future__ import annotations

import os
from pathlib import Path

import pytest

from order_processor.emulator import EmulatorError, is_healthy, running_emulator


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
