# Set-up and run targets. Every target creates the virtual environment on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/.dagster_home
export FP_HOME := $(CURDIR)/.fp_data

.PHONY: demo test ui lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(VENV)/.installed $@

$(DAGSTER_HOME):
	mkdir -p $@
	printf 'telemetry:\n  enabled: false\n' > $@/dagster.yaml

demo: $(VENV)/.installed | $(DAGSTER_HOME)
	$(BIN)/feature-platform demo --rounds 6 --strategy margin

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q

ui: $(VENV)/.installed | $(DAGSTER_HOME)
	$(BIN)/dagster dev -w workspace.yaml

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/label_efficiency.py

clean:
	rm -rf $(DAGSTER_HOME) $(FP_HOME)
