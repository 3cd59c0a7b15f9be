# Two commands for a fresh machine with Python 3.11: `make up` and `make test`. `make bench` for the figures.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up test bench mutation install requirements clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

## Start the embedded database, the API on :5000 and Airflow on :8080 with demo data; Ctrl-C stops all.
up: $(STAMP)
	$(BIN)/fieldpipe up

## The whole test suite against a throwaway PostgreSQL.
test: $(STAMP)
	$(BIN)/python -m pytest

## Benchmarks; writes bench/results/latest.json.
bench: $(STAMP)
	$(BIN)/python -m bench.run

## Mutation testing with mutmut (never part of `make test`; docs/testing.md): PART=<part> runs one part of the core
## modules (`python -m mutation.run --list`), PART=known-bugs the hand-made bugs of issue 12, no PART everything (hours).
mutation: $(STAMP)
ifeq ($(PART),known-bugs)
	nice -n 10 $(BIN)/python -m mutation.known_bugs
else
	nice -n 10 $(BIN)/python -m mutation.run $(or $(PART),all)
endif

## Re-pin requirements.txt from the hand-written requirements.in.
requirements: $(STAMP)
	$(BIN)/pip-compile --quiet --strip-extras --no-header --output-file requirements.txt requirements.in

clean:
	rm -rf $(VENV) var
