# Two commands for a new machine (see README):
#   make run    set up, then run the whole pipeline on embedded defaults
#   make test   set up, then lint and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Use the local PhysioNet mirror beside the checkout when there is one; otherwise the
# code downloads from PhysioNet into ~/.cache/vitalgru.
MIRROR_DEFAULT := $(abspath ../shared/data/physionet)
export VITALGRU_PHYSIONET_MIRROR ?= $(if $(wildcard $(MIRROR_DEFAULT)/mitdb/RECORDS),$(MIRROR_DEFAULT),)
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= true
export MLFLOW_DISABLE_TELEMETRY ?= true
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 180
TORCH_INDEX ?=

.PHONY: setup run test lint bench clean lock

# constraints.txt: every package at the version the tests passed with (see its header)
define install
	$(PYTHON) -m venv $(1)
	# torch first and pinned: an unpinned resolve pulls a multi-GB CUDA build. Where pip
	# finds no CPU wheel of its own (PyPI's Linux torch 2.13.0 is the CUDA one), give
	# TORCH_INDEX=https://download.pytorch.org/whl/cpu
	$(1)/bin/pip install --quiet torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(1)/bin/pip install --quiet $(2) -e ".[dev,bench]"
endef

$(BIN)/vitalgru: pyproject.toml constraints.txt
	$(call install,$(VENV),-c constraints.txt)
	touch $@

setup: $(BIN)/vitalgru

run: setup
	$(BIN)/vitalgru run

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/pytest -q

bench: setup
	$(BIN)/python benchmarks/rpeaks.py
	$(BIN)/python benchmarks/ingest.py

# Remake constraints.txt from what pyproject.toml resolves to today, in a fresh environment
# (nothing installed by hand comes in); then run `make test` before committing it.
LOCK_VENV := .lock-venv
lock:
	rm -rf $(LOCK_VENV)
	$(call install,$(LOCK_VENV),)
	sed -n '/^# /p' constraints.txt > constraints.txt.new
	$(LOCK_VENV)/bin/pip freeze --exclude-editable | sed -E 's/^([^=]+==[^+]+)\+.*$$/\1/' >> constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf $(LOCK_VENV)

clean:
	rm -rf $(VENV) $(LOCK_VENV) vitalgru-out mlflow.db mlartifacts .pytest_cache
