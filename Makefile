# The targets CI runs are exactly these: `make test` (.ci/run) and `make demo` (README).
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint typecheck layers unit unit-fast chromium java bench bench-env clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,spark]'
	# compile the numba kernels into their cache now, so the first analysis does not pay for it
	$(BIN)/carenet warmup
	@touch $(STAMP)

## make demo: set up .venv and analyse the shipped sample (data/sample) into out/demo
demo: $(STAMP)
	$(BIN)/carenet demo --out out/demo

## make test: set up .venv, then lint, type-check, check import layers and run every test
test: $(STAMP) lint typecheck layers unit

## make test-fast: the inner loop: lint, types, layers and the unit tests not marked slow
## (tests/unit and the doctests; under 3 minutes on 2 cores). make test stays the full suite.
test-fast: $(STAMP) lint typecheck layers unit-fast

unit-fast: $(STAMP)
	$(BIN)/pytest -n 2 --dist load -q -m "not slow" tests/unit carenet

lint: $(STAMP)
	$(BIN)/ruff check carenet tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

layers: $(STAMP)
	$(BIN)/lint-imports

unit: $(STAMP) chromium java
	# the CLI tests publish runs: to a store of their own, never the user's default one
	$(BIN)/pytest -n 2 --dist loadfile

## make chromium: the browser tests' Chromium (/usr/bin/chromium; apt-installed when root)
chromium:
	@scripts/ensure-chromium.sh

## make java: the Spark tests' Java runtime (apt-installs openjdk-17-jre-headless when root)
java:
	@scripts/ensure-java.sh

## make bench-env: a separate environment with carenet plus the peers it is measured against
benchmarks/.venv/.installed: pyproject.toml benchmarks/requirements-peers.txt
	$(PYTHON) -m venv benchmarks/.venv
	benchmarks/.venv/bin/python -m pip install --quiet --upgrade pip
	benchmarks/.venv/bin/python -m pip install --quiet -e . -r benchmarks/requirements-peers.txt
	@touch $@

bench-env: benchmarks/.venv/.installed

## make bench: run the benchmarks (slow; each prints a table and writes JSON to benchmarks/results)
bench: bench-env $(STAMP) chromium
	benchmarks/.venv/bin/python benchmarks/ingest.py
	benchmarks/.venv/bin/python benchmarks/measures.py
	benchmarks/.venv/bin/python benchmarks/diffusion.py
	$(BIN)/python benchmarks/api.py
	$(BIN)/python benchmarks/views.py

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
