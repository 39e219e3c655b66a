# Two commands do all setup: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install services run test lint audit format bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: install
	$(BIN)/python -m serve --config hypercorn.toml app:app

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# PostgreSQL, Redis and Debian's chromium (for tests/browser, through Playwright) for
# the tests that need them (apt, as root; they skip loudly otherwise).
services:
	sh scripts/install-services.sh

# Known vulnerabilities in the installed packages; says SKIPPED, and why, where
# no vulnerability data can be reached (see scripts/audit_deps.py).
audit: install
	$(BIN)/python scripts/audit_deps.py

test: lint audit services
	$(BIN)/python -m pytest -ra

bench: install
	$(BIN)/python bench/bench_stream.py

clean:
	rm -rf $(VENV) data/*.db* .pytest_cache
