"""What a session knows about a graph, read from the file: which graph it is, for which model, and
the interface it really has — which may differ from what the exporter wrote, when a tool
transformed the file (a simplifier folds the solver inputs, an fp16 converter changes the input
type, a converter drops the metadata).

Torch-free; onnx is imported only to read an ``.onnx`` file.
"""

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .._solver_settings import MAXITER_LIMIT, SOLVER_SETTINGS
from ..errors import InvalidModelError
from ..graphs import GRAPHS, Graph

__all__ = ["ModelInfo", "graph_info", "inputs_with_defaults", "read_model"]

_GRAPH_KEYS = ("iresnet_onnx.graph", "iresnet_onnx.direction")  # the second: exports of 0.2
_ONNX_TYPES = {1: "float32", 7: "int64", 10: "float16", 11: "float64", 16: "bfloat16"}
"""ONNX TensorProto element types a graph's inputs may have, by number (no onnx import)."""


@dataclass(frozen=True)
class ModelInfo:
    """What a session needs to know about an exported graph."""

    path: Path
    graph: Graph
    dtype: np.dtype
    """The element type of the data input (the exporter's; a converter may have changed it)."""
    input_size: int
    nblocks: int
    spectral_norm: str
    hp: dict[str, Any] = field(repr=False)
    steps_per_check: int = 1
    """Fixed-point steps per convergence test in an inverse graph (1: eager's exact stopping step)."""
    inverse: str = "loop"
    """How an inverse graph iterates: "loop" (data-dependent Loop) or "fixed" (gated Scan)."""
    maxiter_cap: int = MAXITER_LIMIT
    """The most steps per block the graph runs, whatever maxiter a client passes."""
    inputs: tuple[str, ...] = ()
    """The graph's inputs as the file has them."""

    @property
    def solver(self) -> dict[str, Any]:
        """The model's solver settings (the inverse graph's defaults): maxiter, atol, rtol."""
        block = self.hp.get("iResNetBlock", self.hp)
        return {name: block.get(name) for name in SOLVER_SETTINGS}

    @property
    def atol(self) -> float:
        """The inverse's default absolute tolerance (converged ⇔ residual ≤ atol)."""
        return float(self.solver["atol"] or 0.0)

    @property
    def solver_inputs(self) -> tuple[str, ...]:
        """The solver settings this graph still takes as inputs (a simplifier may fold them)."""
        return tuple(name for name in self.graph.optional_inputs if name in self.inputs)


def graph_info(
    path: Path, metadata: dict[str, str], inputs: dict[str, str], width: int,
    like: ModelInfo | None = None,
) -> ModelInfo:  # fmt: skip
    """:class:`ModelInfo` from a graph's ``metadata_props``, its inputs (name → element type) and
    the width of its data input; :class:`InvalidModelError` if the metadata are not an
    iresnet-onnx export's. ``like``: the info of the export's own graph, for a transformed copy
    whose metadata a tool dropped (the interface is still read from the file itself)."""
    names = tuple(inputs)
    if not any(key in metadata for key in _GRAPH_KEYS) and like is not None:
        info = replace(like, path=path, inputs=names)
    else:
        info = _from_metadata(path, metadata, names, width)
    data_type = inputs.get(info.graph.input)
    if data_type is not None and data_type != info.dtype.name:
        info = replace(info, dtype=np.dtype(data_type))
    return info


def _from_metadata(path: Path, metadata: dict[str, str], inputs: tuple, width: int) -> ModelInfo:
    name = next((metadata[key] for key in _GRAPH_KEYS if key in metadata), None)
    if name not in GRAPHS:
        raise InvalidModelError(
            f"ONNX file {path}: not a graph exported by iresnet-onnx (its metadata names no graph "
            f"among {', '.join(GRAPHS)}; a transformed copy of an export is checked with "
            "`iresnet-onnx verify DIR --golden --graph FILE`)"
        )
    try:
        hp = json.loads(metadata["iresnet_onnx.hp"])
        dtype = np.dtype(metadata["iresnet_onnx.dtype"])
        steps = int(metadata.get("iresnet_onnx.steps_per_check", "1"))
        cap = int(metadata.get("iresnet_onnx.maxiter_cap", str(MAXITER_LIMIT)))
    except (KeyError, ValueError, TypeError) as error:
        raise InvalidModelError(
            f"ONNX file {path}: incomplete iresnet-onnx metadata ({error!r})"
        ) from error
    if not isinstance(hp, dict) or width < 1:
        raise InvalidModelError(f"ONNX file {path}: malformed iresnet-onnx metadata")
    return ModelInfo(
        path=path,
        graph=GRAPHS[name],
        dtype=dtype,
        input_size=int(width),
        nblocks=int(hp.get("nblocks", 1)),
        spectral_norm=metadata.get("iresnet_onnx.spectral_norm", "unknown"),
        hp=hp,
        steps_per_check=steps,
        inverse=metadata.get("iresnet_onnx.inverse", "loop"),
        maxiter_cap=cap,
        inputs=inputs,
    )


def read_model(path: str | Path, like: ModelInfo | None = None) -> tuple[Any, ModelInfo]:
    """Load an exported ``.onnx`` graph (an ``onnx.ModelProto``) and its :class:`ModelInfo`;
    :class:`InvalidModelError`, naming the file, if it is not one."""
    import onnx

    path = Path(path)
    if not path.is_file():
        what = "not a regular file" if path.exists() else "no such file"
        raise InvalidModelError(f"ONNX file {path}: {what}")
    try:
        proto = onnx.load(str(path))
    except Exception as error:  # onnx raises DecodeError, ValueError, … for garbage
        raise InvalidModelError(f"ONNX file {path}: not a readable ONNX model ({error})") from error
    metadata = {p.key: p.value for p in proto.metadata_props}
    inputs = {
        value.name: _ONNX_TYPES.get(value.type.tensor_type.elem_type, "unknown")
        for value in proto.graph.input
    }
    try:
        width = proto.graph.input[0].type.tensor_type.shape.dim[1].dim_value
    except IndexError:
        width = 0
    return proto, graph_info(path, metadata, inputs, width, like)


def onnxruntime_type(type_name: str) -> str:
    """``"tensor(float)"`` (onnxruntime's input types) → ``"float32"``."""
    inner = type_name.removeprefix("tensor(").removesuffix(")")
    return {"float": "float32", "double": "float64", "float16": "float16"}.get(inner, inner)


def inputs_with_defaults(proto: Any) -> tuple[Any, dict[str, np.ndarray]]:
    """The graph with its initializer-backed inputs (``maxiter``, ``atol``, ``rtol``) made plain
    required inputs, and their default values.

    ONNX gives an input a default through an initializer of the same name; onnxruntime honours
    it, but OpenVINO and tract fold such inputs into constants (they can no longer be fed).
    Their adapters take the graph in this form and feed the defaults themselves.
    """
    from onnx import numpy_helper

    inputs = {value.name for value in proto.graph.input}
    defaults = {
        init.name: numpy_helper.to_array(init)
        for init in proto.graph.initializer
        if init.name in inputs
    }
    kept = [init for init in proto.graph.initializer if init.name not in defaults]
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(kept)
    return proto, defaults
