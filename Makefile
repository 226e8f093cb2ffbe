# The two commands: `make run` (serve a demo registry on http://127.0.0.1:8000) and `make test`
# (every test; PostgreSQL when DATABASE_URL is set). `make test-fast` is the inner loop: no
# browser, deployment, subprocess/server or slow tests (the markers in pyproject.toml).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

# MLflow, for the tests of `regctl import-mlflow` only: a virtualenv of its own (its dependencies
# conflict with ours), pinned.
MLFLOW_VENV := .mlflow-venv
MLFLOW_REQUIREMENTS := mlflow==3.17.2 scikit-learn==1.9.1

.PHONY: install run test test-fast migrate bench clean mlflow-venv

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml client/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]" -e "./client[test]"
	touch $@

mlflow-venv: $(MLFLOW_VENV)/.installed

$(MLFLOW_VENV)/.installed: Makefile
	test -x $(MLFLOW_VENV)/bin/python || $(PYTHON) -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/python -m pip install --quiet $(MLFLOW_REQUIREMENTS)
	touch $@

migrate: install
	$(BIN)/python manage.py migrate --noinput

run: migrate
	$(BIN)/python manage.py demo_setup --address $(HOST):$(PORT)
	$(BIN)/python manage.py serve $(HOST):$(PORT)

test: install mlflow-venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -m "not slow and not subprocess and not browser and not deploy" $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/api.py

clean:
	rm -rf $(VENV) $(MLFLOW_VENV) var test-artifacts
