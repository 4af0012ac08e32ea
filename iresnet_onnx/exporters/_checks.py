"""Whether an export is right, before any number is compared: ONNX's checker, strict shape inference
against the graph table, and (for float64) whether onnxruntime has a kernel for every op."""

import onnx

from ..errors import ExportError
from ..graphs import Graph

__all__ = ["check_onnxruntime_kernels", "check_structure"]


def check_structure(model: onnx.ModelProto, graph: Graph, width: int, nblocks: int) -> None:
    """``check_model(full_check=True)``; the outputs must be the table's, and shape inference must
    give each per-row output a batch dimension (``[batch, n]`` or ``[batch]``), each per-block
    output ``[nblocks]``."""
    try:
        onnx.checker.check_model(model, full_check=True)
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        raise ExportError(f"{graph.file} fails ONNX's checker: {error}") from error
    names = tuple(output.name for output in inferred.graph.output)
    if names != graph.outputs:
        raise ExportError(f"{graph.file}: outputs {names}, expected {graph.outputs}")
    for output in inferred.graph.output:
        dims = output.type.tensor_type.shape.dim
        shape = [d.dim_param or d.dim_value for d in dims]
        expected = graph.output_shape(output.name, "batch", width, nblocks)
        if shape != expected:
            raise ExportError(
                f"{graph.file}: shape inference gives {output.name} the shape {shape}, not "
                f"{expected}"
            )


def check_onnxruntime_kernels(model: onnx.ModelProto, name: str) -> None:
    """Open ``model`` on onnxruntime's CPU provider; a missing kernel (e.g. float64) is an ExportError."""
    try:
        import onnxruntime as ort
    except ImportError:
        return
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as error:
        raise ExportError(f"onnxruntime cannot run {name}: {error}") from error
