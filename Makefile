# Quick start: `make dev` (local stack on :8788) and `make test` (lint, types, tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Reinstall whenever the project's dependencies change.
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: test lint typecheck unit crd dev clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

# Regenerate the CRD from the API models (a test fails when it drifts).
crd: $(STAMP)
	$(BIN)/indextts-k8s crd -o crds/ttsworkflows.tts.indextts.io.yaml

dev: $(STAMP)
	@echo "make dev: the local stack (gateway on :8788, embedded NATS, espeak worker) arrives with the local-mode issue" >&2
	@exit 2

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache *.egg-info
