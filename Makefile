# Two commands do everything: `make serve` and `make test`. `serve` installs what the
# server needs (`make install`); `test`, `lint` and `bench` also install the tools and
# the diffusers engine (`make install-dev`).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check
# The torch build for the diffusers engine; the CPU build of 2.13.0 is what the tests use.
# For a GPU, install the torch your CUDA wants first and set TORCH= (empty) to keep it.
TORCH ?= torch==2.13.0
# The embedded engine's llama.cpp is built portable (AVX2 on x86-64, never -march=native):
# LLAMA_NATIVE=1 builds for this machine's CPU instead; LLAMA_CMAKE_ARGS adds CMake flags
# (e.g. -DGGML_CUDA=ON). Builds are cached per flag set (scripts/build-llama-cpp.sh).
LLAMA_NATIVE ?= 0
LLAMA_CMAKE_ARGS ?=
LLAMA_DIR := $(VENV)/llama.cpp
LLAMA_FLAGS := $(VENV)/.llama-flags

.PHONY: install install-dev serve test lint services bench fuzz deploy-check clean FORCE

install: $(STAMP)
install-dev: $(DEV_STAMP)

# Each reinstalls only when pyproject.toml or the llama.cpp flags change, so a second
# `make` is instant. The install ends by proving the engine: the embedded model is loaded
# in its own process and generates a few tokens, or the install stops and says why.
$(STAMP): pyproject.toml scripts/build-llama-cpp.sh $(LLAMA_FLAGS)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Personae needs Python 3.11 or newer (set PYTHON=...)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	LLAMA_NATIVE='$(LLAMA_NATIVE)' LLAMA_CMAKE_ARGS='$(LLAMA_CMAKE_ARGS)' \
		scripts/build-llama-cpp.sh $(BIN)/python $(LLAMA_DIR)
	$(PIP) --force-reinstall --no-deps $(LLAMA_DIR)/llama_cpp_python-*.whl
	$(PIP) -e '.[server]'
	$(BIN)/personae engine check
	@touch $@

# Rewritten only when the flags differ from the last install's, which then reinstalls.
$(LLAMA_FLAGS): FORCE
	@mkdir -p $(VENV)
	@echo 'LLAMA_NATIVE=$(LLAMA_NATIVE) LLAMA_CMAKE_ARGS=$(LLAMA_CMAKE_ARGS)' | cmp -s - $@ \
		|| echo 'LLAMA_NATIVE=$(LLAMA_NATIVE) LLAMA_CMAKE_ARGS=$(LLAMA_CMAKE_ARGS)' > $@

$(DEV_STAMP): $(STAMP)
	$(if $(TORCH),$(PIP) '$(TORCH)')
	$(PIP) -e '.[dev]'
	@touch $@

serve: install
	$(BIN)/personae serve

services:
	@scripts/services.sh

lint: install-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

# The Python suite, then the TypeScript SDK's (Node is checked first, so that a machine
# without it fails at once and says how to get it, instead of after the Python suite).
test: install-dev services lint node-check chromium
	$(BIN)/pytest
	$(MAKE) --no-print-directory test-ts

# The TypeScript SDK (clients/typescript): `npm ci`, then `npm test`, which builds it (the
# OpenAPI document dumped from this code, its types generated, ESM + CJS) and runs its
# tests against one live server. Node 18+ and npm are needed: without them this fails.
.PHONY: test-ts node-check
node-check:
	@command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 \
		&& node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)' \
		|| { echo "make test: the TypeScript SDK's tests need Node.js 18+ and npm (apt-get install nodejs npm, or https://nodejs.org)" >&2; exit 1; }

test-ts: install-dev node-check
	cd clients/typescript && npm ci --no-audit --no-fund && PERSONAE_PYTHON=$(abspath $(BIN))/python npm test

# The console's browser tests (tests/test_console_browser.py) drive a headless Chromium
# through Playwright's Python package, never with Playwright's own browser download: Debian's
# `chromium` package, installed by `make test` when missing (apt-get, with sudo when not root).
# CHROMIUM=/path/to/chrome uses another build instead; the tests get it as PERSONAE_CHROMIUM.
CHROMIUM ?= $(or $(PERSONAE_CHROMIUM),$(shell command -v chromium 2>/dev/null),/usr/bin/chromium)
export PERSONAE_CHROMIUM := $(CHROMIUM)

.PHONY: chromium
chromium:
	@test -x '$(CHROMIUM)' || command -v chromium >/dev/null 2>&1 || { \
		sudo=$$(test "$$(id -u)" -eq 0 || ! command -v sudo >/dev/null 2>&1 || echo sudo); \
		echo "chromium: installing Debian's chromium package for the console's browser tests"; \
		install="$$sudo apt-get install -y -qq --no-install-recommends chromium"; \
		$$install >/dev/null 2>&1 || { $$sudo apt-get update -qq && $$install >/dev/null; }; }; \
	test -x '$(CHROMIUM)' || { echo "make test: the console's browser tests need Chromium at $(CHROMIUM) (apt-get install chromium, or set CHROMIUM=/path/to/chromium)" >&2; exit 1; }

# schemathesis against both dialects for long (`make test` runs the same test bounded):
# FUZZ_EXAMPLES examples per operation and phase, then the stateful workflows along the links
# it infers from the document. FUZZ_SEED makes a run, and so a failure, reproducible.
FUZZ_EXAMPLES ?= 200
FUZZ_SEED ?= 1405
fuzz: install-dev services
	PERSONAE_FUZZ_EXAMPLES='$(FUZZ_EXAMPLES)' PERSONAE_FUZZ_SEED='$(FUZZ_SEED)' \
		PERSONAE_FUZZ_STATEFUL=1 $(BIN)/pytest tests/test_fuzz.py

# Every bench/bench_*.py; figures are printed and merged into bench/results.json.
bench: install-dev services
	$(BIN)/python bench/run.py

# deploy/ checked without running a container (none can run here): hadolint on the
# Dockerfile, the compose file against the compose-spec schema, the Kubernetes manifests
# against Kubernetes' schemas, promtool on prometheus.yml (deploy/check.sh says how). The
# Python tools come with install-dev; promtool is unpacked from Debian's prometheus package
# into the venv (never installed as a service), and without it prometheus.yml is parsed
# only. tests/test_deploy.py runs the same checks in `make test`.
deploy-check: install-dev
	@test -x $(BIN)/promtool || $(MAKE) --no-print-directory $(BIN)/promtool \
		|| echo "promtool: not to be had here (Debian's prometheus package); a YAML parse instead"
	BIN=$(BIN) deploy/check.sh

$(BIN)/promtool:
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && cd "$$tmp" \
		&& { apt-get download prometheus >/dev/null 2>&1 \
			|| { apt-get update -qq >/dev/null 2>&1 && apt-get download prometheus >/dev/null 2>&1; }; } \
		&& dpkg-deb -x prometheus_*.deb unpacked \
		&& cp unpacked/usr/bin/promtool $(abspath $@) && echo "promtool: $$($(abspath $@) --version | head -n 1)"

clean:
	rm -rf $(VENV) .personae .pytest_cache .mypy_cache .ruff_cache \
		clients/typescript/node_modules clients/typescript/dist clients/typescript/build-test
