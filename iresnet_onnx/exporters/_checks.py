"""Whether an export is right, before any number is compared: ONNX's checker, strict shape inference,
and (for float64) whether onnxruntime has a kernel for every op."""

import onnx

from ..errors import ExportError


def check_structure(model: onnx.ModelProto, name: str, main_output: str, width: int) -> None:
    """``check_model(full_check=True)``; shape inference must give the main output width ``width``."""
    try:
        onnx.checker.check_model(model, full_check=True)
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        raise ExportError(f"{name} fails ONNX's checker: {error}") from error
    output = next(o for o in inferred.graph.output if o.name == main_output)
    dims = output.type.tensor_type.shape.dim
    if len(dims) != 2 or dims[1].dim_value != width:
        raise ExportError(
            f"{name}: shape inference gives {main_output} the shape {dims}, not [batch, {width}]"
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
