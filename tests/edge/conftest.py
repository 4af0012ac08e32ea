"""The torch-free tests run in two places: in the full environment (the exports are made here,
with torch) and in CI's second environment of numpy + onnxruntime only, where
``IRESNET_ONNX_EDGE_EXPORTS`` points at exports the full environment made."""

import os
import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def edge_exports(tmp_path_factory) -> dict[str, Path]:
    given = os.environ.get("IRESNET_ONNX_EDGE_EXPORTS")
    if given:
        # a private copy: some tests tamper with files
        root = tmp_path_factory.mktemp("edge")
        shutil.copytree(given, root, dirs_exist_ok=True)
        return {name: root / name for name in ("loop", "portable")}
    pytest.importorskip("torch", reason="without IRESNET_ONNX_EDGE_EXPORTS the exports need torch")
    from tests.edge.fixture import make_exports

    return make_exports(tmp_path_factory.mktemp("edge"))
