# The two commands a newcomer needs: `make demo` and `make test` (both install first).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export DAGSTER_HOME := $(CURDIR)/.dagster_home
# Cheap bookkeeping of long runs, for every process that creates or executes one: the webserver and
# the daemon that `make dev` starts, and the run workers they launch, which inherit this environment
# (audit_pipeline/bookkeeping.py says what each does and what it costs).
export DAGSTER_EVENT_BATCH_SIZE ?= 1000
export DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS ?= true

.PHONY: install demo test dev clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	@mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

# The main job on the embedded SQLite demo database (created on first use in .data/demo.sqlite).
demo: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/audit-pipeline backfill --start $$($(BIN)/python -m audit_pipeline.demo_range)
	@echo
	@echo "Look at it: 'make dev', then open http://127.0.0.1:3000 (Assets, Runs);"
	@echo "the tables are in .data/demo.sqlite (e.g. sqlite3 .data/demo.sqlite 'select * from dashboard_snapshot limit 5')."

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The Dagster UI and daemon on the local instance (the one `make demo` recorded its run in).
dev: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml

clean:
	rm -rf $(VENV) .data .dagster_home .pytest_cache
