# TourPulse developer and CI entry points. `make test` is what CI runs (via .ci/run):
# system packages, the venv, the Kafka jars, then pytest (the tests start the stack).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
VENV_STAMP := $(VENV)/.installed
PY_PACKAGES := schemas core edge stream api device_configs infra

.PHONY: help deps venv wheelhouse node-tools camera-interop kafka-jars test test-fast stack-up stack-down stack-status lint demo bench chaos clean

help:
	@echo "make deps          install Debian packages (infra/system-packages.txt; root only) and"
	@echo "                   build TimescaleDB from ../shared/vendor when it is there"
	@echo "make venv          create $(VENV) with the project and dev tools (re-run on pyproject change)"
	@echo "make test          deps + venv + Kafka jars + pytest (starts Mosquitto/Kafka/PostgreSQL)"
	@echo "make test-fast     unit tier only (tests/unit: no services, under a minute)"
	@echo "make stack-up      start the dev stack (reuses running services); stack-down / stack-status"
	@echo "make lint          ruff + ruff format --check + mypy + import-linter layers (+ shellcheck for the scripts)"
	@echo "make demo          run the end-to-end demo;  make bench: benchmarks into .bench/"
	@echo "make chaos         full chaos suite (private brokers, ~25 min) into .bench/chaos.json"

deps:
	@infra/install-system-deps.sh
	@infra/install-timescaledb.sh

# Only reinstall when pyproject.toml changed: the stamp is newer than it otherwise.
$(VENV_STAMP): pyproject.toml
	@echo "venv: installing the project and dev tools into $(VENV) ..."
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[dev]"
	@touch $@

venv: $(VENV_STAMP)

# Third-party wheels of every install profile, for the clean-venv profile tests (pip's
# cache makes this quick after `make venv`; the tests build the project's own wheel from
# the working tree and install offline from here).
WHEELHOUSE := .tourpulse/wheels
$(WHEELHOUSE)/.done: $(VENV_STAMP)
	@echo "wheelhouse: profile wheels into $(WHEELHOUSE) ..."
	@rm -rf $(WHEELHOUSE) && mkdir -p $(WHEELHOUSE)
	@{ $(BIN)/pip download --disable-pip-version-check -d $(WHEELHOUSE) \
	     ".[edge-wifi,edge-camera,stream,api]" && \
	   $(BIN)/pip download --disable-pip-version-check -d $(WHEELHOUSE) "setuptools>=77" wheel; \
	 } > .tourpulse/wheelhouse.log 2>&1 || { tail -20 .tourpulse/wheelhouse.log; exit 1; }
	@touch $@

wheelhouse: $(WHEELHOUSE)/.done

# Node dev tools (axe-core for accessibility checks, Lighthouse for the portal bench).
NODE_STAMP := node_modules/.installed
$(NODE_STAMP): package-lock.json
	@echo "node-tools: npm ci ..."
	@npm ci --no-audit --no-fund --loglevel=error
	@touch $@

node-tools: $(NODE_STAMP)

# A separate venv with the legacy onvif-zeep client (same module name as onvif-zeep-async),
# so the camera simulator is checked by an ONVIF client we did not write.
ONVIF_LEGACY := .tourpulse/onvif-legacy
$(ONVIF_LEGACY)/.installed:
	@echo "camera-interop: legacy onvif-zeep venv in $(ONVIF_LEGACY) ..."
	@$(PYTHON) -m venv $(ONVIF_LEGACY)
	@$(ONVIF_LEGACY)/bin/pip install -q --disable-pip-version-check onvif-zeep==0.2.12
	@touch $@

camera-interop: $(ONVIF_LEGACY)/.installed

# Broker jars from Maven Central, ahead of the tests (tests never download anything).
kafka-jars: venv
	@$(BIN)/tourpulse stack fetch

# pytest-xdist workers, one test file each at a time (a file's tests share module fixtures
# and private ports). Most tests wait on brokers and child processes, so on 2 cores two
# workers take 8.8 min of tests instead of 15.5 with one. Three took 6.5 min, but in 2 of 5
# fresh-clone runs a camera test starved under that load (no RTSP frames for 2 minutes; a
# WHEP scenario with 20 viewers lost a connection): two it is. TEST_WORKERS=1 runs them
# one after another.
TEST_WORKERS ?= 2

# Any pytest failure fails the target, including exit 5 (no tests collected).
test: deps venv kafka-jars node-tools camera-interop wheelhouse
	@$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=40; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "test: FAILED: pytest collected no tests"; fi; exit $$rc

# The unit tier: pure logic and in-process servers, no brokers or databases started.
test-fast: venv
	@$(BIN)/pytest -q tests/unit

stack-up: venv kafka-jars
	$(BIN)/tourpulse stack up

stack-down: venv
	$(BIN)/tourpulse stack down

stack-status: venv
	$(BIN)/tourpulse stack status

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy $(PY_PACKAGES)
	$(BIN)/lint-imports
	@if command -v shellcheck >/dev/null; then \
	  shellcheck infra/*.sh .ci/run $$(find firmware_scripts -name '*.sh'); \
	else echo "lint: shellcheck not installed (make deps): skipped"; fi

demo: deps venv kafka-jars
	$(BIN)/tourpulse demo

bench: deps venv kafka-jars node-tools
	$(BIN)/tourpulse bench

# Every fault at full length (Kafka stopped 20 s, edge uplink cut 10 min); see docs/chaos.md.
chaos: deps venv kafka-jars
	$(BIN)/tourpulse bench chaos

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
