# The two set-up commands of the README: `make demo` (the main job) and `make test`.
# Each creates the virtual environment in $(VENV) and installs what it needs.

VENV ?= .venv
EDGE_VENV ?= .venv-edge
PYTHON ?= python3
# A CPU wheel of torch 2.13.0 lies on these machines' disk; an unpinned torch would pull a CUDA build.
TORCH_SPEC ?= torch==2.13.0
# onnxruntime (CPU) or onnxruntime-gpu: never both, they overwrite each other.
RUNTIME_EXTRA ?= onnxruntime
EXTRAS ?= torch,$(RUNTIME_EXTRA),openvino,tract,ray,demo,dev
OUT ?= demo-output
EDGE_EXPORTS ?= .cache/edge-exports

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(RUNTIME_EXTRA)
EDGE_STAMP := $(EDGE_VENV)/.installed
PIP_INSTALL := -m pip install --quiet
# the two environments install this package in editable mode from the same folder, and setuptools
# writes its .egg-info there: with `make -j` the two builds take turns (flock, util-linux)
EDITABLE_LOCK := flock .editable-install.lock

.PHONY: venv edge-venv js install demo test test-full test-edge lint bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python $(PIP_INSTALL) --upgrade pip
	$(BIN)/python $(PIP_INSTALL) "$(TORCH_SPEC)"
	$(BIN)/python -m pip uninstall --quiet --yes onnxruntime onnxruntime-gpu 2>/dev/null || true
	$(EDITABLE_LOCK) $(BIN)/python $(PIP_INSTALL) -e ".[$(EXTRAS)]"
	rm -f $(VENV)/.installed-*
	touch $@

# the runtime-only install an edge box has: numpy, onnx and onnxruntime, no torch
edge-venv: $(EDGE_STAMP)

$(EDGE_STAMP): pyproject.toml
	$(PYTHON) -m venv $(EDGE_VENV)
	$(EDGE_VENV)/bin/python $(PIP_INSTALL) --upgrade pip
	$(EDITABLE_LOCK) $(EDGE_VENV)/bin/python $(PIP_INSTALL) -e ".[onnxruntime]" \
		"pytest>=8" "pytest-timeout>=2.2" "pytest-xdist>=3.6"
	touch $@

# the JavaScript runtimes (node:cpu, web:wasm) and the web page: the npm packages pinned in
# package-lock.json, and Debian's Chromium (and Node.js) where missing and we are root (CI is); never a
# browser build downloaded by a driver
js: node_modules/.installed

node_modules/.installed: package.json package-lock.json
	@missing=""; command -v chromium >/dev/null 2>&1 || missing="chromium"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: venv
	$(BIN)/iresnet-onnx demo --out $(OUT)

# the three installs side by side (they wait on the package index and the disk more than on a core)
install:
	$(MAKE) -j3 venv edge-venv js

# everything: the installs, the whole suite in the full environment (slow tests included;
# `.venv/bin/pytest` alone skips them), then the runtime-only tests in the torch-free environment
test: install test-full test-edge

# IRESNET_ONNX_REQUIRE_JS=1: the Node.js / Chromium tests fail instead of skipping
test-full: venv js
	IRESNET_ONNX_REQUIRE_JS=1 $(BIN)/python -m pytest -m ""

test-edge: venv edge-venv
	rm -rf $(EDGE_EXPORTS)
	$(BIN)/python -m tests.edge.fixture $(EDGE_EXPORTS)
	IRESNET_ONNX_EDGE=1 IRESNET_ONNX_EDGE_EXPORTS=$(abspath $(EDGE_EXPORTS)) \
		$(EDGE_VENV)/bin/python -m pytest tests/edge -m "" -p no:cacheprovider --confcutdir=tests/edge

lint: venv
	$(BIN)/ruff check iresnet_onnx tests scripts
	$(BIN)/ruff format --check iresnet_onnx tests scripts

bench: venv
	$(BIN)/python scripts/bench.py

clean:
	rm -rf $(VENV) $(EDGE_VENV) $(OUT) .cache .pytest_cache .editable-install.lock
