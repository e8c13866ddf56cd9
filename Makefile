# ragline's verbs. `make demo` and `make test` do all the set-up on a fresh Debian/Ubuntu machine.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# CPU torch first, so no resolver pulls a multi-GB CUDA build. Elsewhere, e.g.:
#   make demo TORCH_INSTALL="torch --index-url https://download.pytorch.org/whl/cpu"
TORCH_INSTALL ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: help install services browser demo test test-as-avx2 test-unit test-integration test-e2e test-faults lint protos protos-check bench soak clean

help:
	@echo "make demo   - install, start the stack, ingest the project's docs, search them, stop"
	@echo "make test   - install and run the whole test suite (starts Redis/RabbitMQ if needed)"
	@echo "make test-as-avx2 - the CPU-dependent tests as on a CPU without bf16 (part of make test)"
	@echo "make lint   - ruff, mypy --strict, buf lint and the generated-code check"
	@echo "make protos - regenerate services/ragline/v1 from protos/"
	@echo "make bench  - throughput and latency figures (make bench after make test's set-up)"
	@echo "make soak   - the stack under kill -9, SIGTERM and server restarts; checks nothing is lost"

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 (Debian/Ubuntu: apt-get install python3.11 python3.11-venv)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH_INSTALL)
	$(PIP) install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Redis (and RabbitMQ) must answer; installs them through apt and starts them where missing.
services:
	@bash scripts/ensure_services.sh

# Debian's chromium, which Playwright drives in the browser example's test; installs it where missing.
browser:
	@bash scripts/ensure_browser.sh

demo: install services
	@bash scripts/demo.sh

# The tests whose path depends on the CPU, run again as on an AVX2-only CPU: oneDNN capped below
# bf16 and AMX (the precision probe honours the same cap) and ATen's kernels at AVX2. On a CPU
# with bf16 this checks the fp32 fallback; on an AVX2-only one it repeats what it just ran.
AS_AVX2 := ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2

test: install services browser
	$(PY) -m pytest -p no:cacheprovider
	$(MAKE) --no-print-directory test-as-avx2

test-as-avx2: install
	$(AS_AVX2) $(PY) -m pytest -p no:cacheprovider -m cpu_paths

test-unit: install
	$(PY) -m pytest -p no:cacheprovider -m unit

test-integration: install services
	$(PY) -m pytest -p no:cacheprovider -m integration

test-e2e: install services browser
	$(PY) -m pytest -p no:cacheprovider -m e2e

test-faults: install services
	$(PY) -m pytest -p no:cacheprovider -m faults

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy services clients/python
	npx --yes @bufbuild/buf lint
	$(MAKE) protos-check

protos: install
	PYTHON=$(PY) bash scripts/gen_protos.sh

protos-check: install
	PYTHON=$(PY) bash scripts/gen_protos.sh
	git diff --exit-code -- services/ragline/v1 || { echo "generated code is stale: run 'make protos' and commit"; exit 1; }

bench: install services
	$(PY) -m bench

# The whole stack under chaos, 20 minutes per broker by default: make soak SOAK_ARGS="--minutes 5"
soak: install services
	$(PY) -m soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) ragline-data .pytest_cache .mypy_cache .ruff_cache
