# The two set-up commands of the README: `make demo` (the main job) and `make test`.
# Each creates the virtual environment in $(VENV) and installs what it needs.

VENV ?= .venv
PYTHON ?= python3
# A CPU wheel of torch 2.13.0 lies on these machines' disk; an unpinned torch would pull a CUDA build.
TORCH_SPEC ?= torch==2.13.0
# onnxruntime (CPU) or onnxruntime-gpu: never both, they overwrite each other.
RUNTIME_EXTRA ?= onnxruntime
OUT ?= demo-output

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(RUNTIME_EXTRA)

.PHONY: venv demo test lint bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip uninstall --quiet --yes onnxruntime onnxruntime-gpu 2>/dev/null || true
	$(BIN)/python -m pip install --quiet -e ".[$(RUNTIME_EXTRA),demo,dev]"
	rm -f $(VENV)/.installed-*
	touch $@

demo: venv
	$(BIN)/iresnet-onnx demo --out $(OUT)

# everything, the slow end-to-end demo test included (`.venv/bin/pytest` alone skips it)
test: venv
	$(BIN)/python -m pytest -m ""

lint: venv
	$(BIN)/ruff check iresnet_onnx tests scripts
	$(BIN)/ruff format --check iresnet_onnx tests scripts

bench: venv
	$(BIN)/python scripts/bench.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
