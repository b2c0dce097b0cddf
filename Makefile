# Set-up and run targets. Every target creates the virtual environment on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/.dagster_home
export FP_HOME := $(CURDIR)/.fp_data

.PHONY: demo test ui lint bench clean up workers prod-init

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[dev,production]"
	touch $(VENV)/.installed $@

$(DAGSTER_HOME):
	mkdir -p $@
	printf 'telemetry:\n  enabled: false\n' > $@/dagster.yaml
	# The development instance: `feature-platform demo` may forget its rounds (see defs/demo.py).
	echo "Created by make for feature-platform demo and dagster dev." > $@/.feature-platform-demo

demo: $(VENV)/.installed | $(DAGSTER_HOME)
	$(BIN)/feature-platform demo --rounds 6 --strategy margin

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q

# Dagster's UI (http://127.0.0.1:3000) and the people's web app (http://127.0.0.1:$(WEB_PORT))
# side by side; Ctrl-C stops both.
WEB_HOST ?= 127.0.0.1
WEB_PORT ?= 8090
ui: $(VENV)/.installed | $(DAGSTER_HOME)
	$(BIN)/feature-platform serve --host $(WEB_HOST) --port $(WEB_PORT) & web=$$!; \
	trap 'kill $$web 2>/dev/null; wait $$web' EXIT; \
	$(BIN)/dagster dev -w workspace.yaml

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/label_efficiency.py

# Human labels to 95 % of full-pool accuracy with and without auto-labels (digits, weather;
# 10 seeds). Extra flags: make bench-auto-labels BENCH_AUTO_LABELS_ARGS="--seeds 3".
.PHONY: bench-auto-labels
bench-auto-labels: $(VENV)/.installed
	$(BIN)/python benchmarks/auto_labels.py $(BENCH_AUTO_LABELS_ARGS)

# Ours vs Feast 0.67 (built into .feast-venv on first use, ~40 s); last line is the JSON.
# Extra flags: make bench-feast BENCH_FEAST_ARGS="--rows 1000000".
.PHONY: bench-feast
bench-feast: $(VENV)/.installed
	$(BIN)/python benchmarks/feature_store_vs_feast.py --scaling $(BENCH_FEAST_ARGS)

# Online lookups: strong vs eventual vs the default call, SQLite and (if reachable) Postgres.
.PHONY: bench-consistency
bench-consistency: $(VENV)/.installed
	$(BIN)/python benchmarks/online_consistency.py

clean:
	rm -rf $(DAGSTER_HOME) $(FP_HOME)

# --- Production: the Postgres-backed instance of deploy/dagster.yaml, daemon + webserver -----
# `make up` keeps its DAGSTER_HOME in deploy/dagster_home (git-ignored) and the platform stores
# in PostgreSQL; every setting below can be overridden (make up UI_PORT=3001 ...).
PROD_DAGSTER_HOME := $(CURDIR)/deploy/dagster_home
PROD_FP_HOME ?= $(CURDIR)/deploy/fp_data
export DAGSTER_PG_HOST ?= 127.0.0.1
export DAGSTER_PG_PORT ?= 5432
export DAGSTER_PG_USER ?= postgres
export DAGSTER_PG_PASSWORD ?=
export DAGSTER_PG_DB ?= dagster
PROD_DATABASE_URL ?= postgresql+psycopg2://$(DAGSTER_PG_USER)@$(DAGSTER_PG_HOST):$(DAGSTER_PG_PORT)/feature_platform
export FP_CELERY_BROKER ?= redis://127.0.0.1:6379/0
export FP_CELERY_BACKEND ?= redis://127.0.0.1:6379/1
UI_HOST ?= 127.0.0.1
UI_PORT ?= 3000
WORKERS ?= 2

up workers prod-init: export DAGSTER_HOME := $(PROD_DAGSTER_HOME)
up workers prod-init: export FP_HOME := $(PROD_FP_HOME)
up workers prod-init: export FP_DATABASE_URL := $(PROD_DATABASE_URL)

$(VENV)/.installed-prod: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[production]"
	touch $(VENV)/.installed $@

$(PROD_DAGSTER_HOME)/dagster.yaml: deploy/dagster.yaml
	mkdir -p $(@D)
	cp deploy/dagster.yaml $@

# The databases (created when missing) and the instance's tables (created or upgraded once,
# before several processes race to do it).
prod-init: $(VENV)/.installed-prod $(PROD_DAGSTER_HOME)/dagster.yaml
	$(BIN)/python scripts/create_databases.py \
	  "postgresql+psycopg2://$(DAGSTER_PG_USER)@$(DAGSTER_PG_HOST):$(DAGSTER_PG_PORT)/$(DAGSTER_PG_DB)" \
	  "$(FP_DATABASE_URL)"
	$(BIN)/dagster instance migrate

# Daemon (sensors, schedules, run queue) and the people's web app in the background, Dagster's
# webserver in the foreground; Ctrl-C stops all three. FP_EXECUTOR=celery sends every step to
# `make workers`.
up: prod-init
	$(BIN)/dagster-daemon run -w workspace.yaml & daemon=$$!; \
	$(BIN)/feature-platform serve --host $(WEB_HOST) --port $(WEB_PORT) & web=$$!; \
	trap 'kill $$daemon $$web 2>/dev/null; wait $$daemon $$web' EXIT; \
	$(BIN)/dagster-webserver -w workspace.yaml -h $(UI_HOST) -p $(UI_PORT)

# $(WORKERS) Celery worker processes (one step at a time each) on the Redis broker
# (dagster-celery starts `celery` by name, hence the PATH).
workers: prod-init
	pids=; for i in $$(seq 1 $(WORKERS)); do \
	  PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dagster-celery worker start -A dagster_celery.app -y deploy/celery.yaml \
	    -n worker-$$i -- --concurrency=1 & pids="$$pids $$!"; \
	done; \
	trap 'kill $$pids 2>/dev/null; wait' EXIT; wait
