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

.PHONY: help install services ts-client browser demo test test-as-avx2 test-unit test-integration test-e2e test-faults lint protos protos-check bench bench-int8 soak clean

help:
	@echo "make demo   - install, start the stack, ingest the project's docs, search them, stop"
	@echo "make test   - install and run the whole test suite (starts Redis/RabbitMQ if needed)"
	@echo "make test-as-avx2 - the CPU-dependent tests as on a CPU without bf16 (part of make test)"
	@echo "make lint   - ruff, mypy --strict, prettier and tsc, buf lint, buf breaking (against the previous commit) and the generated-code check"
	@echo "make protos - regenerate services/ragline/v1, clients/python/ragline_client/v1 and clients/typescript/src/gen from protos/"
	@echo "make ts-client - install (npm ci) and build the TypeScript client in clients/typescript"
	@echo "make bench  - throughput and latency figures (make bench after make test's set-up); flags through BENCH_ARGS:"
	@echo "              make bench BENCH_ARGS=--scale (how cost grows with work), BENCH_ARGS=--quick (a smoke run)"
	@echo "make bench-int8 - int8 inference (OpenVINO/NNCF, onnxruntime, torch) against fp32: speed and retrieval quality, in its own venv"
	@echo "make soak   - the stack under kill -9, SIGTERM and server restarts; checks nothing is lost"

$(STAMP): pyproject.toml clients/python/pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 (Debian/Ubuntu: apt-get install python3.11 python3.11-venv)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH_INSTALL)
# The client first, from this checkout: the server depends on it (ragline-client==0.1.0).
	$(PIP) install -q -e clients/python
	$(PIP) install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Redis (and RabbitMQ) must answer; installs them through apt and starts them where missing.
services:
	@bash scripts/ensure_services.sh

# The TypeScript client: its dependencies from the committed lock file, then its build. Its tests
# (npm test) run under pytest, against a stack: tests/e2e/test_typescript_client.py. No install
# scripts: no dependency needs one (buf and tsc come as platform packages).
TS_CLIENT := clients/typescript
TS_STAMP := $(TS_CLIENT)/node_modules/.installed

$(TS_STAMP): $(TS_CLIENT)/package-lock.json $(TS_CLIENT)/package.json
	@bash scripts/ensure_node.sh
	cd $(TS_CLIENT) && npm ci --no-audit --no-fund --ignore-scripts
	cd $(TS_CLIENT) && npm run build
	touch $(TS_STAMP)

ts-client: $(TS_STAMP)

# Debian's chromium, which Playwright drives in the browser example's test; installs it where missing.
browser:
	@bash scripts/ensure_browser.sh

demo: install services
	@bash scripts/demo.sh

# The tests whose path depends on the CPU, run again as on an AVX2-only CPU: oneDNN capped below
# bf16 and AMX (the precision probe honours the same cap) and ATen's kernels at AVX2. On a CPU
# with bf16 this checks the fp32 fallback; on an AVX2-only one it repeats what it just ran.
AS_AVX2 := ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2

# The suite on TEST_WORKERS pytest-xdist workers: most tests wait on services in other processes,
# so two overlap well even on two cores (make test TEST_WORKERS=1 runs one at a time). A module
# marked xdist_group stays on one worker, so its module-scoped stack starts once. The tests marked
# exclusive stop RabbitMQ, which every other test shares: they run alone, afterwards.
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -p no:cacheprovider

# The CPU-dependent tests run again as on an AVX2-only CPU, except on one: there the first run
# took those paths already. --durations names the slowest tests, to keep the suite short.
test: install services ts-client browser
	$(PYTEST) -n $(TEST_WORKERS) --dist loadgroup -m "not exclusive" --durations=25
	$(PYTEST) -m exclusive
	@if [ -r /proc/cpuinfo ] && ! grep -qw avx512f /proc/cpuinfo; then \
		echo "this CPU has no AVX-512: the run above took the AVX2-only paths; no second run"; \
	else \
		$(MAKE) --no-print-directory test-as-avx2; \
	fi

test-as-avx2: install
	$(AS_AVX2) $(PYTEST) -n $(TEST_WORKERS) --dist loadgroup -m cpu_paths

test-unit: install
	$(PYTEST) -m unit

test-integration: install services
	$(PYTEST) -m integration

test-e2e: install services ts-client browser
	$(PYTEST) -m e2e

test-faults: install services
	$(PYTEST) -m faults

lint: install ts-client
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy services clients/python
	cd $(TS_CLIENT) && npm run lint
	npx --yes @bufbuild/buf lint
	bash scripts/proto_breaking.sh
	$(MAKE) protos-check

protos: install ts-client
	PYTHON=$(PY) bash scripts/gen_protos.sh
	cd $(TS_CLIENT) && npm run gen

protos-check: install ts-client
	PYTHON=$(PY) bash scripts/gen_protos.sh
	cd $(TS_CLIENT) && npm run gen
	git diff --exit-code -- services/ragline/v1 clients/python/ragline_client/v1 $(TS_CLIENT)/src/gen || { echo "generated code is stale: run 'make protos' and commit"; exit 1; }
	test -z "$$(git status --porcelain -- clients/python/ragline_client/v1 $(TS_CLIENT)/src/gen)" || { echo "new generated files: run 'make protos' and commit"; exit 1; }

# Flags through BENCH_ARGS: make bench BENCH_ARGS="--scale" (see python -m bench --help)
bench: install services
	$(PY) -m bench $(BENCH_ARGS)

# The int8 trial (bench/int8_trial.py) in a venv of its own, so that OpenVINO, NNCF, onnxruntime
# and onnx never join the project's dependencies. CPU torch first, as for the main venv.
INT8_VENV := .venv-int8
INT8_PY := $(INT8_VENV)/bin/python
INT8_STAMP := $(INT8_VENV)/.installed
INT8_PACKAGES := openvino==2026.4.1 nncf==3.4.0 onnxruntime==1.32.0 onnx==1.23.2

$(INT8_STAMP): pyproject.toml clients/python/pyproject.toml Makefile
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 (Debian/Ubuntu: apt-get install python3.11 python3.11-venv)"; exit 1; }
	test -x $(INT8_PY) || $(PYTHON) -m venv $(INT8_VENV)
	$(INT8_PY) -m pip install -q --upgrade pip
	$(INT8_PY) -m pip install -q $(TORCH_INSTALL)
	$(INT8_PY) -m pip install -q -e clients/python -e .
	$(INT8_PY) -m pip install -q $(INT8_PACKAGES)
	touch $(INT8_STAMP)

bench-int8: $(INT8_STAMP)
	$(INT8_PY) -m bench.int8_trial $(INT8_ARGS)

# The whole stack under chaos, 20 minutes per broker by default: make soak SOAK_ARGS="--minutes 5"
soak: install services
	$(PY) -m soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) $(INT8_VENV) ragline-data .pytest_cache .mypy_cache .ruff_cache
	rm -rf $(TS_CLIENT)/node_modules $(TS_CLIENT)/dist $(TS_CLIENT)/dist-test
