# The two commands of a fresh machine:
#   make run    create .venv, install, run `tollgate up` (Envoy + tollgate + demo upstream)
#   make test   create .venv, install with test extras, run ruff and the whole test suite
# and: make bench (benchmarks against Envoy alone), make soak (the audit record under
# minutes of traffic); neither is part of CI.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test lint bench soak clean

run: $(VENV)/.run-deps
	$(BIN)/tollgate up

test: $(VENV)/.test-deps
	$(BIN)/ruff check .
	$(BIN)/pytest

lint: $(VENV)/.test-deps
	$(BIN)/ruff check .

bench: $(VENV)/.bench-deps
	$(BIN)/python -m bench.parse_cost
	$(BIN)/python -m bench.policy_engines
	$(BIN)/python -m bench.interpreters
	$(BIN)/python -m bench.masking
	$(BIN)/python -m bench.approvals
	$(BIN)/python -m bench.load

# Minutes of mixed traffic, then every record counted and the chain verified (not in CI).
soak: $(VENV)/.bench-deps
	$(BIN)/python -m bench.soak --minutes 10 --rate 200

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# xds-protos ships an old copy of opentelemetry/proto/* that overwrites the files of
# opentelemetry-proto (the OTLP exporter then fails to import), depending on install
# order. Reinstalling opentelemetry-proto last restores its own files; envoy's modules
# only need the older messages, which the newer files still hold.
OTEL_PROTO = $$(grep -o 'opentelemetry-proto==[0-9.]*' pyproject.toml)
define install
	$(BIN)/pip install -q -e '.$(1)'
	$(BIN)/pip install -q --no-deps --force-reinstall "$(OTEL_PROTO)"
	touch $@
endef

$(VENV)/.run-deps: pyproject.toml | $(VENV)/bin/python
	$(call install,)

# The real OPA engine, in process, for the parity tests and the OPA stand-in (no OPA
# binary can be installed here). Its metadata asks for Python >= 3.14, yet it works on
# 3.11; it is a test tool, never a runtime dependency.
OPA_BINDINGS = opa-golib-python-bindings==0.4.4

$(VENV)/.test-deps: pyproject.toml | $(VENV)/bin/python
	$(call install,[test])
	$(BIN)/pip install -q --ignore-requires-python "$(OPA_BINDINGS)"

$(VENV)/.bench-deps: pyproject.toml $(VENV)/.test-deps
	$(call install,[test,bench])

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
