# Two commands for a fresh machine with Python 3.11+: `make run` and `make test`.
# Each creates the virtual environment it needs in .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: run test lint typecheck migrate bench bench-subscriptions bench-scheduler clean lock

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@ $(VENV)/.installed-run

## Start the service on the embedded SQLite default (http://127.0.0.1:8000, docs at /docs).
run: $(VENV)/.installed-run
	$(BIN)/odeus-triggers serve

## Run the whole test suite (Postgres when TEST_DATABASE_URL is set, SQLite otherwise).
test: $(VENV)/.installed-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Lint src, tests, bench and .ci with ruff (settings in pyproject.toml; `ruff check --fix` fixes the safe ones).
lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench .ci

## Type-check the package with mypy (settings and the checked paths in pyproject.toml).
typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

migrate: $(VENV)/.installed-run
	$(BIN)/odeus-triggers migrate

clean:
	rm -rf $(VENV) odeus-triggers.db odeus-triggers.db-wal odeus-triggers.db-shm

## Benchmark against the reference ceilings (needs wrk and the local Postgres; not part of the tests).
bench: $(VENV)/.installed-test
	$(BIN)/python bench/run.py

## Subscription creates/s next to trigger creates/s, one service, same run (wrk and the local Postgres).
bench-subscriptions: $(VENV)/.installed-test
	$(BIN)/python bench/subscription_creates.py

## The scheduler's figures: overhead, bookkeeping, lag, claim cost, SQLite, memory (local Postgres; 15 to 20 minutes).
bench-scheduler: $(VENV)/.installed-test
	$(BIN)/python bench/scheduler.py

## Delivery: signed deliveries/s next to the raw HTTP client, latency at half of it, end to end (local Postgres; about 5 minutes).
.PHONY: bench-delivery
bench-delivery: $(VENV)/.installed-test
	$(BIN)/python bench/delivery.py

## Regenerate requirements.lock (the image's pinned, hash-checked dependencies) after changing
## [project].dependencies; pip-tools runs from a throwaway environment, never from .venv.
lock:
	rm -rf /tmp/odeus-pip-tools && $(PYTHON) -m venv /tmp/odeus-pip-tools
	/tmp/odeus-pip-tools/bin/pip install --quiet pip-tools
	/tmp/odeus-pip-tools/bin/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe \
	  --no-emit-index-url --no-emit-find-links --index-url https://pypi.org/simple \
	  -o requirements.lock pyproject.toml
