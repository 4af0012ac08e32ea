"""torch module → ONNX graphs: what to export (``config``), how (``builder``, ``functions``,
``convert``), and whether the graphs are well-formed (``validate``). Writing an export folder,
checking its numbers and recording the manifest happen one level up, in :mod:`iresnet_onnx._export`.
"""

import onnx

from ._assembly import build_density, build_forward, build_inverse
from ._checks import check_onnxruntime_kernels, check_structure
from ._spec import (
    DEFAULT_OPSET,
    SPECTRAL_NORM_MODES,
    SUPPORTED_OPSETS,
    ExportOptions,
    ModelSpec,
    describe,
    fixed_steps,
    with_solver_defaults,
)

__all__ = [
    "DEFAULT_OPSET",
    "SPECTRAL_NORM_MODES",
    "SUPPORTED_OPSETS",
    "ExportOptions",
    "ModelSpec",
    "build_graphs",
    "describe",
    "fixed_steps",
    "with_solver_defaults",
]

MAIN_OUTPUTS = {"forward": "y", "inverse": "x", "density": "z"}


def build_graphs(spec: ModelSpec, options: ExportOptions) -> dict[str, onnx.ModelProto]:
    """``{"forward": …, "inverse": …, "density": …}`` protos, each through ONNX's full checker and
    strict shape inference (and, for float64, onnxruntime's kernel check): an
    :class:`ExportError` otherwise."""
    builders = {"forward": build_forward, "inverse": build_inverse, "density": build_density}
    graphs = {}
    for kind, build in builders.items():
        proto = build(spec, options)
        name = f"{kind}.onnx"
        check_structure(proto, name, MAIN_OUTPUTS[kind], spec.input_size)
        if spec.dtype.name != "float32":
            check_onnxruntime_kernels(proto, name)
        graphs[kind] = proto
    return graphs
