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

.PHONY: install install-dev serve test lint services bench clean

install: $(STAMP)
install-dev: $(DEV_STAMP)

# Each reinstalls only when pyproject.toml changes, so a second `make` is instant.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Personae needs Python 3.11 or newer (set PYTHON=...)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) -e .
	@touch $@

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

test: install-dev services lint
	$(BIN)/pytest

# Every bench/bench_*.py; figures are printed and merged into bench/results.json.
bench: install-dev services
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .personae .pytest_cache .mypy_cache .ruff_cache
