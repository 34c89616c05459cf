# Thin wrappers around the commands CI and developers run; `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
EKUIPER_VERSION ?= v2.4.0
EKUIPER_V1_VERSION ?= v1.14.7
# Lowest pynng the SDK supports; `make test` also runs the fast suites against it.
PYNNG_MIN ?= 0.8.0

BIN := $(VENV)/bin
MIN_VENV := .venv-pynng-$(PYNNG_MIN)

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  %-16s %s\n", $$1, $$2}'

$(BIN)/.installed: sdk/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e 'sdk[dev]'
	touch $@

.PHONY: venv
venv: $(BIN)/.installed ## Create .venv with the SDK (editable) and dev tools

.PHONY: lint
lint: venv ## ruff and mypy
	$(BIN)/ruff check sdk/src tests plugins
	cd sdk && ../$(BIN)/mypy

.PHONY: kuiperd
kuiperd: ## Build (or reuse the cached) kuiperd for EKUIPER_VERSION and EKUIPER_V1_VERSION
	scripts/kuiperd.sh $(EKUIPER_VERSION)
	scripts/kuiperd.sh $(EKUIPER_V1_VERSION)

.PHONY: test-fast
test-fast: venv ## Unit and protocol tests (no kuiperd needed)
	$(BIN)/pytest tests/unit tests/protocol

.PHONY: test-e2e
test-e2e: venv ## End-to-end tests against a real kuiperd
	$(BIN)/pytest tests/e2e

$(MIN_VENV)/.installed: sdk/pyproject.toml
	$(PYTHON) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/pip install -q -e 'sdk[dev]' 'pynng==$(PYNNG_MIN)'
	touch $@

.PHONY: test-pynng-min
test-pynng-min: $(MIN_VENV)/.installed ## Unit and protocol tests with the lowest supported pynng
	$(MIN_VENV)/bin/pytest -q tests/unit tests/protocol

.PHONY: test
test: lint ## Everything CI runs: lint, all tests (e2e included), lowest pynng
	$(BIN)/pytest tests
	$(MAKE) --no-print-directory test-pynng-min

.PHONY: clean
clean: ## Remove virtualenvs and caches (not the kuiperd cache)
	rm -rf $(VENV) $(MIN_VENV) .pytest_cache sdk/.mypy_cache .ruff_cache
