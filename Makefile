# Quick start: `make dev` (local stack on :8788) and `make test` (lint, types, tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Reinstall whenever the project's dependencies change.
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

# The speech engine's heavy dependencies (torch, indextts2-inference), installed once per pyproject.
ENGINE_STAMP := $(VENV)/.engine-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: test lint typecheck unit crd dev clean engine-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

# IndexTTS2 on CPU (docs/inference-pod.md): torch 2.13's CPU wheel; every torchaudio wheel on PyPI is a
# CUDA build, so torchaudio 2.11 goes in without its dependencies and without its native libraries
# (the package uses only its pure-Python parts). Idempotent: reruns only when pyproject.toml changes.
$(ENGINE_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[engine]'
	$(BIN)/python -m pip install --quiet --no-deps torchaudio==2.11.0
	rm -f $(VENV)/lib/python*/site-packages/torchaudio/lib/*.so
	$(BIN)/python -c "import torch, torchaudio, indextts"
	rm -f $(VENV)/.engine-*
	touch $@

engine-deps: $(ENGINE_STAMP)

test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(ENGINE_STAMP)
	$(BIN)/mypy

unit: $(ENGINE_STAMP)
	$(BIN)/pytest

# Regenerate the CRD from the API models (a test fails when it drifts).
crd: $(STAMP)
	$(BIN)/indextts-k8s crd -o crds/ttsworkflows.tts.indextts.io.yaml

dev: $(STAMP)
	@echo "make dev: the local stack (gateway on :8788, embedded NATS, espeak worker) arrives with the local-mode issue" >&2
	@exit 2

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache *.egg-info
