# Two commands do everything: `make serve` and `make test`. Both run `make install` first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install serve test lint services bench clean

install: $(STAMP)

# Reinstalls only when pyproject.toml changes, so a second `make` is instant.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Personae needs Python 3.11 or newer (set PYTHON=...)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

serve: install
	$(BIN)/personae serve

services:
	@scripts/services.sh

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

test: install services lint
	$(BIN)/pytest

# Every bench/bench_*.py; figures are printed and merged into bench/results.json.
bench: install services
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .personae .pytest_cache .mypy_cache .ruff_cache
