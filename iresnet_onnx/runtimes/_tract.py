"""tract (CPU): Sonos's Rust inference engine through its Python bindings.

tract implements ``Scan`` but no ``Loop`` (sonos/tract#277), so it runs exports made with
``spectral_norm="folded"`` (no power-iteration Loop) and ``inverse="fixed"`` (a gated Scan): a
graph with a Loop is an :class:`~iresnet_onnx.errors.UnsupportedModelError` saying so, before
tract is asked. Like OpenVINO, tract folds initializer-backed inputs into constants, so ``maxiter``,
``atol`` and ``rtol`` become plain inputs fed with their defaults unless overridden.
"""

import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidModelError, UnsupportedModelError
from ._session import ModelInfo, Session, inputs_with_defaults, read_model

_FACT = {"float32": "f32", "float64": "f64", "int64": "i64"}


def available_devices() -> tuple[str, ...]:
    return ("cpu",)


def refusal(proto: Any, dtype: Any = None) -> str | None:
    """Why tract cannot run the ONNX model ``proto`` (of input type ``dtype``, else read from the
    proto), or None: seen in the model alone, so an exporter asks before any work."""
    if dtype is None:
        dtype = onnx_dtype(proto)
    if np.dtype(dtype) != np.float32:
        return (
            "tract 0.23 fails on float64 Gemm (it multiplies the float64 bias by a float32 beta "
            "constant); export a float32 model for tract"
        )
    loops = loop_nodes(proto)
    if loops:
        return (
            f"it has no ONNX Loop operator (sonos/tract#277) and this graph has {len(loops)} "
            f"({loops[0]}, …); export with spectral_norm='folded' and inverse='fixed' for tract"
        )
    if proto.functions:
        return "it does not expand ONNX functions; export with functions=False (the default)"
    return None


def onnx_dtype(proto: Any) -> np.dtype:
    """The element type of the model's first (data) input."""
    from onnx import helper

    return np.dtype(
        helper.tensor_dtype_to_np_dtype(proto.graph.input[0].type.tensor_type.elem_type)
    )


def loop_nodes(proto: Any) -> list[str]:
    """The names of the ``Loop`` nodes in the main graph and every subgraph."""
    found = []

    def walk(graph: Any) -> None:
        for node in graph.node:
            if node.op_type == "Loop":
                found.append(node.name)
            for attribute in node.attribute:
                if attribute.type == attribute.GRAPH:
                    walk(attribute.g)

    walk(proto.graph)
    for function in proto.functions:
        walk(function)
    return found


class TractSession(Session):
    """An exported graph on tract (calls are serialised: one plan, one lock)."""

    runtime = "tract"
    device = "cpu"

    def __init__(self, path: str | Path, device: str = "cpu", *, like: ModelInfo | None = None):
        import tract

        proto, info = read_model(path, like)
        super().__init__(info)
        why = refusal(proto, info.dtype)
        if why is not None:
            raise UnsupportedModelError(f"tract cannot run {info.path}: {why}")
        proto, self.defaults = inputs_with_defaults(proto)
        facts = [f"batch,{info.input_size},{_FACT[info.dtype.name]}"]
        facts += [_FACT[self.defaults[value.name].dtype.name] for value in proto.graph.input[1:]]
        self.input_order = [value.name for value in proto.graph.input]
        try:
            with tempfile.TemporaryDirectory() as tmp:
                edited = Path(tmp) / info.path.name
                edited.write_bytes(proto.SerializeToString())
                model = tract.onnx().load(str(edited))
                for index, fact in enumerate(facts):
                    model.set_input_fact(index, fact)
                self.plan = model.into_model().into_runnable()
        except Exception as error:  # tract raises its own error type
            raise InvalidModelError(f"tract cannot load {info.path}: {error}") from error
        self.output_names = [value.name for value in proto.graph.output]
        self._lock = threading.Lock()

    def _run(self, batch: Any, solver: dict[str, Any]) -> dict[str, np.ndarray]:
        feeds = {**self.defaults, **self.solver_feeds(solver), self.graph.input: self._numpy(batch)}
        arrays = [np.array(feeds[name], order="C") for name in self.input_order]  # keeps 0-d
        with self._lock:
            outputs = self.plan.run(arrays)
        return {name: tensor.to_numpy() for name, tensor in zip(self.output_names, outputs)}
