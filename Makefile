# Two commands on a fresh machine:
#   make run   — create the environment, fetch the models, run the whole loop embedded (no servers)
#   make test  — create the environment, fetch the models, start Kafka/OpenSearch/PostgreSQL, run the tests
#   make test-fast — the same without the tests marked slow (real-model generation and training), for the edit-test loop
#   make lint  — ruff and mypy over the code, as CI runs them before the tests
#   make deploy-check — the Helm chart and compose file rendered and validated with the real tools (CI, after lint)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_EVALUATE_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

# Service ports (deploy/local reads RAGLOOP_*_PORT); the tests are pointed at the same ones.
export RAGLOOP_KAFKA_PORT ?= 9092
export RAGLOOP_OPENSEARCH_PORT ?= 9200
export RAGLOOP_POSTGRES_PORT ?= 5432
export RAGLOOP_TEST_KAFKA_URL ?= kafka://127.0.0.1:$(RAGLOOP_KAFKA_PORT)
export RAGLOOP_TEST_OPENSEARCH_URL ?= http://127.0.0.1:$(RAGLOOP_OPENSEARCH_PORT)
export RAGLOOP_TEST_POSTGRES_URL ?= postgresql://ragloop:ragloop@127.0.0.1:$(RAGLOOP_POSTGRES_PORT)/ragloop_test

.PHONY: setup models run services services-stop test test-fast test-unit lint soak deploy-check

$(BIN)/.installed: requirements.lock pyproject.toml
	command -v uv >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	uv venv --quiet --seed --allow-existing --python $(PYTHON) $(VENV)
	# DeepSpeed ships only as an sdist that imports torch to build: everything else first, then it
	# without build isolation and without compiling ops (they compile on first use, cached).
	grep -v '^deepspeed==' requirements.lock > $(VENV)/requirements-no-deepspeed.txt
	uv pip install --quiet --python $(BIN)/python -r $(VENV)/requirements-no-deepspeed.txt
	DS_BUILD_OPS=0 uv pip install --quiet --python $(BIN)/python --no-build-isolation --no-deps $$(grep '^deepspeed==' requirements.lock)
	uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

setup: $(BIN)/.installed

models: setup
	$(BIN)/ragloop models fetch

run: models
	$(BIN)/ragloop up

services:
	deploy/local/services.sh start

services-stop:
	deploy/local/services.sh stop

# tests/unit/test_helm_chart.py renders the chart with the real helm, built once from its Go module.
deploy/.tools/helm:
	deploy/build_helm.sh

test: models services deploy/.tools/helm
	RAGLOOP_REQUIRE_SERVICES=1 $(BIN)/pytest -p no:cacheprovider -ra --durations=25 $(PYTEST_ARGS)

test-fast: models services deploy/.tools/helm
	RAGLOOP_REQUIRE_SERVICES=1 $(BIN)/pytest -p no:cacheprovider -ra -m "not slow" $(PYTEST_ARGS)

# ruff (lint) and mypy (types), configured in pyproject.toml; both run so one pass shows every finding. CI runs this before the tests.
lint: setup
	status=0; $(BIN)/ruff check . || status=1; $(BIN)/mypy || status=1; exit $$status

# The Helm chart linted, rendered with both values files and validated against the Kubernetes schemas, and the
# compose file against the compose-spec schema (deploy/check.sh; builds helm into deploy/.tools the first time).
deploy-check: setup
	PYTHON=$(BIN)/python deploy/check.sh

# The whole loop in cluster mode on the local services under mixed load for MINUTES, then its ledger (README: "Soak and fault injection").
MINUTES ?= 10
soak: models services
	RAGLOOP_BROKER_URL=kafka://127.0.0.1:$(RAGLOOP_KAFKA_PORT) RAGLOOP_SEARCH_URL=http://127.0.0.1:$(RAGLOOP_OPENSEARCH_PORT) \
	RAGLOOP_DATABASE_URL=postgresql://ragloop:ragloop@127.0.0.1:$(RAGLOOP_POSTGRES_PORT)/ragloop $(BIN)/ragloop soak --mode cluster --minutes $(MINUTES)

test-unit: setup
	$(BIN)/pytest -p no:cacheprovider -ra tests/unit
