# codeq: `make run` serves on :8080 with the embedded store; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080
DATA ?= ./data
STAMP := $(VENV)/.installed

.PHONY: help install native browser run run-cluster test check bench proto docs clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip uninstall --quiet --yes codeq 2>/dev/null || true  # the distribution's name before codeq-queue
	$(BIN)/pip install --quiet -e '.[server,dev]'
	touch $(STAMP)

install: $(STAMP) native browser ## create .venv with the server and dev dependencies

# ADR 0010: the hot path compiled with mypyc, rebuilt only when a compiled source changed
# (about a minute); without a C compiler it says so and codeq runs from source.
native: $(STAMP) ## compile the hot path with mypyc (CODEQ_NATIVE=0 runs from source anyway)
	@$(BIN)/python -m codeq.native --if-stale

# The browser tests drive Debian's chromium (Playwright's own browser download is never used).
browser: ## install Debian's chromium for tests/browser (as root; skipped when present)
	@command -v chromium >/dev/null || [ "$$(id -u)" != 0 ] || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)
	@command -v chromium >/dev/null || echo "chromium is missing: run 'make browser' as root, or tests/browser skip"

run: $(STAMP) native ## serve on :8080 with the embedded store in ./data and the dev tokens
	$(BIN)/codeq serve --dev --host $(HOST) --port $(PORT) --data $(DATA)

run-cluster: $(STAMP) native ## three Raft nodes on loopback (ports in README), prints the leader; SHARDS=n
	$(BIN)/python -m codeq.cli.run_cluster --data ./data-cluster --shards $(or $(SHARDS),1)

test: $(STAMP) native browser ## run the whole test suite
	$(BIN)/pytest -q

check: $(STAMP) ## ruff, mypy and import-linter: zero findings
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP) native ## benchmarks (not part of make test); results go to docs/benchmarks.md by hand
	$(BIN)/python bench/run_all.py

proto: $(STAMP) ## regenerate src/codeq/wire/pb from proto/*.proto (commit the output)
	$(BIN)/python proto/generate.py

docs: $(STAMP) ## regenerate docs/configuration.md from the config key table (commit the output)
	$(BIN)/python -m codeq.config.reference > docs/configuration.md

clean: ## remove the virtualenv, caches and compiled modules
	[ ! -x $(BIN)/python ] || $(BIN)/python -m codeq.native --clean
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
