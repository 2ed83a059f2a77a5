# framewatch: two commands set everything up on a fresh machine.
#   make demo   create .venv, install, run the nightly flow on the demo corpus, print the report path
#   make test   same set-up (plus Debian chromium for browser tests), then the whole test suite
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
# pip's notes about optional local package folders are noise here
QUIET_PIP := { grep -v '^WARNING: Location' || true; }
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CONFIG ?= config/demo.toml

export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install demo test test-fast bench chromium clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@echo "==> creating $(VENV) with $(PYTHON)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "==> installing torch 2.13.0 (CPU build) before anything that needs torch"
	$(BIN)/pip install --quiet torch==2.13.0 2>&1 | $(QUIET_PIP)
	@echo "==> installing framewatch and its test tools"
	$(BIN)/pip install --quiet -e '.[test]' 2>&1 | $(QUIET_PIP)
	@touch $(STAMP)
	@echo "==> installed"

chromium:
	@if command -v chromium >/dev/null 2>&1; then echo "==> chromium present: $$(chromium --version 2>/dev/null)"; \
	else echo "==> installing Debian chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null && chromium --version; fi

demo: install
	@echo "==> initialising the warehouse"
	$(BIN)/framewatch init --config $(CONFIG)
	@echo "==> running the nightly flow once on the bundled demo corpus"
	$(BIN)/framewatch run --config $(CONFIG)

test: install chromium
	@echo "==> running the test suite"
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not slow and not browser"

bench: install
	$(BIN)/python bench/run_all.py

clean:
	rm -rf data reports_out .pytest_cache
