"""torch module → ONNX graphs.

What to export: :class:`ExportOptions` (``_options``) and :func:`model_spec`, a framework-free
description of the model (``_spec``); how: graph state and op dispatch (``_builder``), the graph
components (``_components``, ``_inverse_components``, ``_density_components``) and their assembly
into the three graphs (``_assembly``); whether they are well-formed: structural checks
(``_checks``). Writing an export folder, checking its numbers and recording the manifest happen
one level up, in :mod:`iresnet_onnx._export`.
"""

from typing import Any

import onnx

from ..graphs import GRAPHS
from ._assembly import build_density, build_forward, build_inverse
from ._checks import check_onnxruntime_kernels, check_structure
from ._options import (
    DEFAULT_OPSET,
    SPECTRAL_NORM_MODES,
    STEPS_PER_CHECK_LIMIT,
    SUPPORTED_OPSETS,
    ExportOptions,
)
from ._spec import ModelSpec, fixed_steps, model_spec, with_solver_defaults

__all__ = [
    "DEFAULT_OPSET",
    "SPECTRAL_NORM_MODES",
    "STEPS_PER_CHECK_LIMIT",
    "SUPPORTED_OPSETS",
    "ExportOptions",
    "ModelSpec",
    "build_graphs",
    "fixed_steps",
    "model_spec",
    "with_solver_defaults",
]

_BUILDERS = {"forward": build_forward, "inverse": build_inverse, "density": build_density}


def build_graphs(
    spec: ModelSpec, options: ExportOptions, model: Any = None
) -> dict[str, onnx.ModelProto]:
    """One proto per graph of :data:`iresnet_onnx.graphs.GRAPHS` — by the package's exporter from
    ``spec``, or by ``torch.onnx.export`` from ``model`` (``options.exporter``) —, each through
    ONNX's full checker and strict shape inference against the graph table (and, for float64,
    onnxruntime's kernel check): an :class:`~iresnet_onnx.errors.ExportError` otherwise."""
    if options.exporter == "torch":
        from ._torch_route import build_graphs_torch

        built = build_graphs_torch(model, spec, options)
    else:
        built = {name: build(spec, options) for name, build in _BUILDERS.items()}
    graphs = {}
    for name, graph in GRAPHS.items():
        proto = built[name]
        check_structure(proto, graph, spec.input_size, spec.nblocks)
        if spec.dtype.name != "float32":
            check_onnxruntime_kernels(proto, graph.file)
        graphs[name] = proto
    return graphs
