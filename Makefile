# Two commands do all setup: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install services run test lint format bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: install
	$(BIN)/hypercorn --config hypercorn.toml app:app

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# PostgreSQL for the tests that need a real one (apt, as root; they skip loudly otherwise).
services:
	sh scripts/install-services.sh

test: lint services
	$(BIN)/python -m pytest -ra

bench: install
	$(BIN)/python bench/bench_stream.py

clean:
	rm -rf $(VENV) data/*.db* .pytest_cache
