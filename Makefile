# Two commands do all setup: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# What running needs, and, separately, what testing adds: `make run` installs
# only the first.
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: install install-test services run test lint audit format bench clean

install: $(STAMP)

install-test: $(TEST_STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	# The sample third-party plugin, installed beside Quartet as an author's would be.
	$(BIN)/python -m pip install --quiet -e examples/quartet-weather
	touch $(TEST_STAMP)

run: install
	$(BIN)/python -m serve --config hypercorn.toml app:app

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

format: install-test
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# PostgreSQL, Redis and Debian's chromium (for tests/browser, through Playwright) for
# the tests that need them (apt, as root; they skip loudly otherwise).
services:
	sh scripts/install-services.sh

# Known vulnerabilities in the installed packages; says SKIPPED, and why, where
# no vulnerability data can be reached (see scripts/audit_deps.py).
audit: install-test
	$(BIN)/python scripts/audit_deps.py

test: lint audit services
	$(BIN)/python -m pytest -ra
	# The sample plugin's own tests, with nothing but quartet.testing.
	$(BIN)/python -m pytest -ra examples/quartet-weather

bench: install-test
	$(BIN)/python bench/bench_stream.py

clean:
	rm -rf $(VENV) data/*.db* .pytest_cache
