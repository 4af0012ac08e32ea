"""The layout of an export folder, declared once (torch-free: the edge install reads folders)::

out/
  forward.onnx  inverse.onnx  density.onnx   the graphs (names from :mod:`iresnet_onnx.graphs`)
  forward.ort   inverse.ort   density.ort    onnxruntime's format (``ort_format=True``)
  model.pt                                   the checkpoint (the manifest may name another)
  manifest.json                              versions, options, HP, validation, every sha256
  golden/<graph>/test_data_set_<i>/input_<k>.pb, output_<k>.pb
                                             golden vectors, ONNX's test-data layout
"""

from pathlib import Path

from .graphs import FORWARD, GRAPHS, INVERSE

__all__ = [
    "CHECKPOINT",
    "GOLDEN",
    "MANIFEST",
    "REQUIRED_GRAPHS",
    "golden_case",
    "golden_tensor",
    "graph_file",
    "ir_files",
    "ort_file",
]

MANIFEST = "manifest.json"
CHECKPOINT = "model.pt"
"""The checkpoint's name in a folder written by this version (a manifest records the name)."""
GOLDEN = "golden"
REQUIRED_GRAPHS = (FORWARD.file, INVERSE.file)
"""The graphs every export folder has (density.onnx came with version 0.2)."""


def graph_file(folder: str | Path, graph: str) -> Path:
    """``folder/<graph>.onnx``."""
    return Path(folder) / GRAPHS[graph].file


def ort_file(graph: str) -> str:
    """The name of a graph in onnxruntime's format: ``<graph>.ort``."""
    return f"{GRAPHS[graph].name}.ort"


def ir_files(graph: str) -> tuple[str, str]:
    """The names of a graph's OpenVINO IR: ``<graph>.xml`` and its weights ``<graph>.bin``."""
    name = GRAPHS[graph].name
    return f"{name}.xml", f"{name}.bin"


def golden_case(graph: str, index: int) -> str:
    """The folder of one golden case, relative to the export folder (as the manifest lists it)."""
    return f"{GOLDEN}/{graph}/test_data_set_{index}"


def golden_tensor(role: str, index: int) -> str:
    """``input_<k>.pb`` or ``output_<k>.pb`` inside a case folder."""
    return f"{role}_{index}.pb"
