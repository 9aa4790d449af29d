# The two commands: `make demo` runs edge on its zero-config default, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# What running needs (the runtime dependencies), and everything the checks need besides.
RUNTIME := $(VENV)/.installed-runtime
STAMP := $(VENV)/.installed
# make demo's port: make demo PORT=8081 for another.
PORT ?= 8080
BROWSER_DEPS := tests/browser/node_modules/.package-lock.json
S3RVER_DEPS := tests/s3rver/node_modules/.package-lock.json
NODE_DEPS := $(BROWSER_DEPS) $(S3RVER_DEPS)
THUMBOR := $(VENV)/thumbor/bin/thumbor

.PHONY: install demo test lint bench bench-thumbor bench-log bench-instructions reliability clean

$(RUNTIME): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $(RUNTIME)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(RUNTIME) $(STAMP)

# playwright-core drives Debian's Chromium; it downloads no browser.
$(BROWSER_DEPS): tests/browser/package-lock.json
	npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error

# s3rver: a second S3 server for the storage client's tests, one that keeps connections alive.
$(S3RVER_DEPS): tests/s3rver/package-lock.json
	npm ci --prefix tests/s3rver --no-audit --no-fund --loglevel=error

install: $(STAMP) $(NODE_DEPS)

demo: $(RUNTIME)
	$(BIN)/edge demo --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint $(NODE_DEPS)
	$(BIN)/python -m pytest

# Load harness (wrk, nginx) and the signature micro-benchmark; results in bench/results/.
bench: $(STAMP) $(THUMBOR)
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m bench.micro_verify
	$(BIN)/python -m bench.load
	$(BIN)/python -m bench.transform_load

# thumbor, the transform scenarios' peer, in a virtualenv of its own: it pins its own Pillow.
$(THUMBOR):
	$(PYTHON) -m venv $(VENV)/thumbor
	$(VENV)/thumbor/bin/pip install -q --upgrade pip
	$(VENV)/thumbor/bin/pip install -q 'thumbor==7.8.0'

bench-thumbor: $(THUMBOR)

# The access log's wall-clock cost on a cached hit: log off / on edges in alternating pairs.
bench-log: $(STAMP)
	$(BIN)/python -m bench.log_cost

# Instructions per request under callgrind (valgrind): deterministic, several minutes.
bench-instructions: $(STAMP)
	$(BIN)/python -m bench.instructions

# Runs the reliability tests and regenerates docs/reliability.md from their figures.
reliability: $(STAMP) $(NODE_DEPS)
	$(BIN)/python -m tests.reliability_report

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
