# The two commands of a fresh machine:
#   make run    create .venv, install, run `tollgate up` (Envoy + tollgate + demo upstream)
#   make test   create .venv, install with test extras, run ruff and the whole test suite
# and: make bench (load benchmark against Envoy alone; not part of CI).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test lint bench clean

run: $(VENV)/.run-deps
	$(BIN)/tollgate up

test: $(VENV)/.test-deps
	$(BIN)/ruff check .
	$(BIN)/pytest

lint: $(VENV)/.test-deps
	$(BIN)/ruff check .

bench: $(VENV)/.bench-deps
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) \
	  || echo "wrk not installable: bench/load.py falls back to its Python load generator"
	$(BIN)/python bench/parse_cost.py
	$(BIN)/python bench/load.py

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.run-deps: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.test-deps: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@

$(VENV)/.bench-deps: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $@

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
