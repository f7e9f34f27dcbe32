# Two commands set Kassa up on a fresh machine that has Python 3.11+ and make:
#   make demo   - the main job on the embedded defaults
#   make test   - ruff, mypy --strict and pytest
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PACKAGES := engine protocols transports emulator benchmarks fuzz

.PHONY: demo test lint typecheck pytest browser screenshots bench fuzz clean

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

pytest: $(VENV)/.kassa-dev browser
	$(BIN)/pytest

# tests/browser drive Debian's Chromium through Playwright (a pip package that needs no browser
# download, which cannot work here). Install chromium where we may, as root with apt-get; where
# we may not, the browser tests skip with one line that says why.
CHROMIUM := /usr/bin/chromium
browser:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "make: installing Debian's chromium for the browser tests"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
	    || { apt-get update -qq >/dev/null 2>&1 \
	         && apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; } \
	    || echo "make: could not install chromium; the browser tests will skip"; \
	  else \
	    echo "make: no $(CHROMIUM), and no root apt-get to install it; the browser tests will skip"; \
	  fi; \
	fi

test: lint typecheck pytest

# The README's pictures of the cabinet: the browser tests, saving each main page they open.
screenshots: $(VENV)/.kassa-dev browser
	KASSA_SCREENSHOTS=docs/screenshots $(BIN)/pytest -q tests/browser

# Every benchmark, then the e2e search with the engine alone on a core (results/e2e-pin.json):
# together, every figure of the README's Performance section.
bench: $(VENV)/.kassa-dev
	$(BIN)/kassa bench all
	$(BIN)/kassa bench e2e --pin

# The long campaign: every target in turn (FUZZ_SECONDS each, one process); `make test` runs
# only the few-second smoke of tests/fuzz. Findings land in .fuzz/findings/TARGET.
FUZZ_SECONDS ?= 1800
fuzz: $(VENV)/.kassa-dev
	@for target in $$($(BIN)/kassa fuzz --list | cut -d' ' -f1); do \
	  $(BIN)/kassa fuzz $$target --time $(FUZZ_SECONDS) --runs 1000000 --json || exit 1; \
	done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .fuzz
