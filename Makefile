# Each target makes and uses .venv, so a fresh machine needs only python3, make and root.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-container fuzz check demo bench screenshots e2e-deps container-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: the gateway on the embedded defaults (data in ./var)
run: $(STAMP)
	$(BIN)/gateway serve

## test: install what the tests need (Python and Debian packages), then run them all
test: $(STAMP) e2e-deps
	$(BIN)/pytest

## test-container: build the image with podman (offline, on a stand-in base made with
## debootstrap) and run it against the test rig; installs podman and the rest when missing
test-container: $(STAMP) e2e-deps container-deps
	$(BIN)/pytest -p no:cacheprovider tests/container

## fuzz: the stateful SMTP fuzzer against `gateway serve`, random seeds, for FUZZ_MINUTES
## (`make test` runs a bounded, derandomised profile of it)
FUZZ_MINUTES ?= 20
fuzz: $(STAMP) e2e-deps
	GATEWAY_FUZZ_MINUTES=$(FUZZ_MINUTES) $(BIN)/pytest -p no:cacheprovider tests/fuzz/test_smtp_sessions.py

## demo: test DNS/HTTPS servers and a printing upstream for the README's walkthrough
demo: $(STAMP) e2e-deps
	$(BIN)/python -m scripts.demo

## screenshots: refresh docs/screenshots/ from the browser tests
screenshots: $(STAMP) e2e-deps
	SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(BIN)/pytest tests/web/test_browser.py tests/web/test_tracking_browser.py \
		tests/web/test_link_browser.py tests/portal/test_portal_flow.py \
		tests/portal/test_portal_security.py

## check: ruff and mypy
check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## bench: throughput, latency, CPU and memory against smtp-sink, a bare relay and Postfix
## (installs postfix and the rig's servers when missing; BENCH_ARGS="--profile" adds py-spy)
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

# The end-to-end rig runs real servers from Debian's packages; the web UI tests drive Debian's
# Chromium with Playwright (`playwright install` would download a browser: not needed).
# PostgreSQL's server is for the shared store's tests (rig/postgres.py runs initdb itself).
E2E_BINARIES := /usr/sbin/unbound /usr/sbin/nginx /usr/sbin/knotd /usr/bin/swaks /usr/bin/chromium
E2E_PACKAGES := unbound nginx-light knot swaks chromium postgresql

e2e-deps:
	@missing=0; for b in $(E2E_BINARIES); do [ -x $$b ] || missing=1; done; \
	ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing=1; \
	if [ $$missing = 1 ]; then \
		echo "installing Debian packages for the test rig: $(E2E_PACKAGES)"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(E2E_PACKAGES); \
	fi

# Debian's podman (runc as its runtime), debootstrap for the stand-in base image, and
# docker-compose, whose `config` resolves and validates docker-compose.yml without a daemon.
CONTAINER_BINARIES := /usr/bin/podman /usr/bin/runc /usr/sbin/debootstrap /usr/bin/docker-compose
CONTAINER_PACKAGES := podman runc debootstrap docker-compose

container-deps:
	@missing=0; for b in $(CONTAINER_BINARIES); do [ -x $$b ] || missing=1; done; \
	if [ $$missing = 1 ]; then \
		echo "installing Debian packages for the container test: $(CONTAINER_PACKAGES)"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(CONTAINER_PACKAGES); \
	fi

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
