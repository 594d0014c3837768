# Tether: `make run` to try it, `make test` to run every test.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Keep compiled bytecode even where the environment asks not to: without it every test process
# and every server or agent a test starts compiles Tether (and pytest rewrites every test) again.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: run test test-fast lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

## Set up and run the server with a local agent on SQLite (prints URL and sign-in).
run: $(VENV)/.installed
	$(BIN)/flask --app wsgi dev

## Every test (tests/run_all.py), five passes two at a time: SQLite under gevent (everything), SQLite
## under eventlet (the tests that start the server) and PostgreSQL (all but the browser tests).
test: $(VENV)/.installed
	$(BIN)/python -m tests.run_all

## The unit tests: every test that starts no process (no server, agent, Claude Code, flask or
## Chromium), in three workers (their waits overlap), one reused app per worker and a fifth of the
## property tests' examples (tests/fuzzing.py); about 30 s on two idle cores (984 tests).
test-fast: $(VENV)/.installed
	TETHER_FUZZ_SCALE=0.2 $(BIN)/pytest -q -n 3 -m "not integration and not browser"

lint: $(VENV)/.installed
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: $(VENV)/.installed
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) instance .pytest_cache
