# Thin wrappers around the commands CI and developers run; `make help` lists them.
SHELL := /bin/bash
comma := ,
PYTHON ?= python3
VENV ?= .venv
EKUIPER_VERSION ?= v2.4.2
EKUIPER_V1_VERSION ?= v1.14.7
# The e2e suite runs against these: `EKUIPER_VERSION=v2.4.0 make test-e2e`.
export EKUIPER_VERSION EKUIPER_V1_VERSION
# Lowest pynng the SDK supports; `make test` also runs the fast suites against it.
PYNNG_MIN ?= 0.8.0

# The slim-python image. Base images are pinned tags; where they cannot be pulled,
# `make image` builds local stand-ins (scripts/base-images.sh) and uses them.
EKUIPER_IMAGE ?= lfedge/ekuiper:$(EKUIPER_VERSION:v%=%)-slim
PYTHON_IMAGE ?= python:3.11-slim-bookworm
PYTHON_VERSION ?= 3.11
# linux/amd64 or linux/arm64 (a foreign one runs here under qemu-user-static); its image
# tag ends in -<arch>. Several at once (comma-separated) need buildx and a registry.
NATIVE_PLATFORM := $(shell scripts/platform.sh)
PLATFORM ?= $(NATIVE_PLATFORM)
ARCH_SUFFIX := $(if $(filter $(NATIVE_PLATFORM),$(PLATFORM)),,$(if $(findstring $(comma),$(PLATFORM)),,-$(word 2,$(subst /, ,$(PLATFORM)))))
IMAGE ?= ekuiper-slim-python:$(EKUIPER_VERSION:v%=%)$(ARCH_SUFFIX)
# Debian's docker.io has no buildx, so the classic builder is the default.
DOCKER_BUILDKIT ?= 0
SDK_VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' sdk/src/ekuiper/__init__.py)
PYNNG_VERSION := $(shell sed -n 's/^pynng==\([^ ]*\).*/\1/p' images/requirements.lock)

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
	$(BIN)/ruff check sdk/src tests plugins images examples bench scripts
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
test-pynng-min: $(MIN_VENV)/.installed ## Unit and protocol tests on the pynng transport, lowest supported pynng
	EKUIPER_TRANSPORT=pynng $(MIN_VENV)/bin/pytest -q tests/unit tests/protocol

.PHONY: test
test: lint ## Everything CI runs: lint, all tests (e2e included), lowest pynng
	$(BIN)/pytest tests
	$(MAKE) --no-print-directory test-pynng-min

.PHONY: soak
soak: venv ## The 10-minute soak (20 rules, churn, a plugin update); make test runs 40 s of it
	SOAK_SECONDS=$${SOAK_SECONDS:-600} $(BIN)/pytest -s tests/e2e/test_soak.py

.PHONY: wheelhouse
wheelhouse: ## Fill build/wheelhouse: the SDK wheel and the hash-locked dependencies
	PYTHON=$(PYTHON) scripts/wheelhouse.sh $(PYTHON_VERSION) $(if $(findstring $(comma),$(PLATFORM)),,$(PLATFORM))

.PHONY: image
image: wheelhouse ## Build the slim-python image IMAGE; builds local base images where none can be pulled
	IMAGE=$(IMAGE) EKUIPER_IMAGE=$(EKUIPER_IMAGE) PYTHON_IMAGE=$(PYTHON_IMAGE) \
	  EKUIPER_VERSION=$(EKUIPER_VERSION) SDK_VERSION=$(SDK_VERSION) PYTHON_VERSION=$(PYTHON_VERSION) \
	  PYNNG_VERSION=$(PYNNG_VERSION) DOCKER_BUILDKIT=$(DOCKER_BUILDKIT) PLATFORM=$(PLATFORM) \
	  scripts/image.sh

.PHONY: local-bases
local-bases: ## Build local stand-ins for the base images of PLATFORM (no registry)
	scripts/base-images.sh $(EKUIPER_VERSION) $(PLATFORM)

# The slim-python image with plugin folders baked in, for Kubernetes (deploy/README.md).
PLUGINS ?= plugins
PLUGINS_IMAGE ?= ekuiper-slim-python-plugins:$(EKUIPER_VERSION:v%=%)

.PHONY: plugins-image
plugins-image: ## Build PLUGINS_IMAGE: IMAGE with the plugin folders under PLUGINS baked in
	@docker image inspect $(IMAGE) >/dev/null 2>&1 || $(MAKE) --no-print-directory image
	DOCKER_BUILDKIT=$(DOCKER_BUILDKIT) docker build -f deploy/Dockerfile.plugins \
	  --build-arg BASE_IMAGE=$(IMAGE) --build-arg PLUGINS=$(PLUGINS) -t $(PLUGINS_IMAGE) .

.PHONY: helm-template
helm-template: ## Print eKuiper's Helm chart rendered with our values and PLUGINS_IMAGE
	@helm="$$(scripts/helm.sh)" && chart="$$(scripts/helm.sh chart $(EKUIPER_VERSION))" && \
	  image='$(PLUGINS_IMAGE)' && "$$helm" template ekuiper "$$chart" -f deploy/helm/values-slim-python.yaml \
	    --set image.repository="$${image%:*}" --set image.tag="$${image##*:}"

.PHONY: test-deploy
test-deploy: venv ## Kubernetes manifests and the chart with our values: rendered, linted, pods run in Docker
	$(BIN)/pytest -q tests/deploy

.PHONY: up
up: ## docker compose up -d (builds the image first if missing)
	@docker compose version >/dev/null 2>&1 || { echo "make up: Compose v2 ('docker compose') is missing: install Docker's compose plugin (docker-compose-plugin), or run scripts/compose.sh, which builds it with Go" >&2; exit 1; }
	@docker image inspect $(IMAGE) >/dev/null 2>&1 || $(MAKE) --no-print-directory image
	SLIM_PYTHON_IMAGE=$(IMAGE) docker compose up -d

.PHONY: down
down: ## docker compose down
	docker compose down

.PHONY: logs
logs: ## Follow eKuiper's log (the demo rule prints reversed strings there)
	docker compose logs -f ekuiper

.PHONY: clean
clean: ## Remove virtualenvs and caches (not the kuiperd cache)
	rm -rf $(VENV) $(MIN_VENV) build .pytest_cache sdk/.mypy_cache .ruff_cache

.PHONY: bench
bench: venv ## Benchmarks vs the official and Go SDKs (not part of make test)
	$(BIN)/python -m bench.run

.PHONY: bench-scaling
bench-scaling: venv ## 1, 10, 50 rules at once through one plugin, this SDK vs official (~5 min)
	$(BIN)/python -m bench.scaling

.PHONY: bench-images
bench-images: venv ## Image size per arch and time to the first demo row (amd64 vs arm64 under qemu)
	$(BIN)/python -m bench.images
