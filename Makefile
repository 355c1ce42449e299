# Every target bootstraps what it needs: .venv (the project, editable, with dev extras)
# and .venv-emu (MiniStack, the embedded AWS emulator, kept apart because it pins botocore).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
EMU_VENV := .venv-emu
MINISTACK_VERSION := 1.5.33
PIP_FLAGS := --quiet --disable-pip-version-check

.PHONY: run test lint format bench chaos clean venv emulator-venv

venv: $(VENV)/.installed
emulator-venv: $(EMU_VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_FLAGS) -e '.[dev]'
	touch $@

$(EMU_VENV)/.installed: Makefile
	$(PYTHON) -m venv $(EMU_VENV)
	$(EMU_VENV)/bin/pip install $(PIP_FLAGS) 'ministack==$(MINISTACK_VERSION)'
	touch $@

run: venv emulator-venv
	$(VENV)/bin/order-processor demo

# The suite waits on processes and queues more than it computes: three pytest workers
# (each with its own emulator) halve its time on two cores.
TEST_WORKERS ?= 3

test: venv emulator-venv
	$(VENV)/bin/pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: venv emulator-venv
	$(VENV)/bin/python -m bench.run $(BENCH_ARGS)

# A longer chaos run: e.g. CHAOS_ARGS="--seed 3 --users 40 --orders 1000 --kills 40 --seconds 120"
chaos: venv emulator-venv
	$(VENV)/bin/python -m tests.chaos $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) $(EMU_VENV) .pytest_cache .mypy_cache .ruff_cache
