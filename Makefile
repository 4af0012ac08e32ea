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

.PHONY: venv edge-venv demo test test-full test-edge lint bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip uninstall --quiet --yes onnxruntime onnxruntime-gpu 2>/dev/null || true
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	rm -f $(VENV)/.installed-*
	touch $@

# the runtime-only install an edge box has: numpy, onnx and onnxruntime, no torch
edge-venv: $(EDGE_STAMP)

$(EDGE_STAMP): pyproject.toml
	$(PYTHON) -m venv $(EDGE_VENV)
	$(EDGE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(EDGE_VENV)/bin/python -m pip install --quiet -e ".[onnxruntime]" "pytest>=8" "pytest-timeout>=2.2"
	touch $@

demo: venv
	$(BIN)/iresnet-onnx demo --out $(OUT)

# everything: the whole suite in the full environment (slow tests included; `.venv/bin/pytest`
# alone skips them), then the runtime-only tests in the torch-free environment
test: test-full test-edge

test-full: venv
	$(BIN)/python -m pytest -m ""

test-edge: venv edge-venv
	rm -rf $(EDGE_EXPORTS)
	$(BIN)/python -m tests.edge.fixture $(EDGE_EXPORTS)
	IRESNET_ONNX_EDGE=1 IRESNET_ONNX_EDGE_EXPORTS=$(abspath $(EDGE_EXPORTS)) \
		$(EDGE_VENV)/bin/python -m pytest tests/edge -p no:cacheprovider --confcutdir=tests/edge

lint: venv
	$(BIN)/ruff check iresnet_onnx tests scripts
	$(BIN)/ruff format --check iresnet_onnx tests scripts

bench: venv
	$(BIN)/python scripts/bench.py

clean:
	rm -rf $(VENV) $(EDGE_VENV) $(OUT) .cache .pytest_cache
