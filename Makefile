# Two commands set Kassa up on a fresh machine that has Python 3.11+ and make:
#   make demo   - the main job on the embedded defaults
#   make test   - ruff, mypy --strict and pytest
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PACKAGES := engine protocols transports emulator benchmarks

.PHONY: demo test lint typecheck pytest bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamps: reinstall when pyproject.toml changes.
$(VENV)/.kassa-base: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.kassa-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.kassa-base

demo: $(VENV)/.kassa-base
	$(BIN)/kassa demo

lint: $(VENV)/.kassa-dev
	$(BIN)/ruff check $(PACKAGES) tests
	$(BIN)/ruff format --check $(PACKAGES) tests

typecheck: $(VENV)/.kassa-dev
	$(BIN)/mypy $(PACKAGES)

pytest: $(VENV)/.kassa-dev
	$(BIN)/pytest

test: lint typecheck pytest

bench: $(VENV)/.kassa-dev
	$(BIN)/kassa bench all

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
