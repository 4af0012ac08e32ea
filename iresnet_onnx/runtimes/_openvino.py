"""OpenVINO (CPU): the exported graphs through OpenVINO's ONNX frontend, in float32 as exported.

Two things differ from onnxruntime, both handled here: OpenVINO's CPU plugin may pick bf16 for
inference on CPUs that have it (errors around 5e-3), so every session asks for f32 explicitly
(float64 exports are refused: the CPU plugin has no f64 inference); and OpenVINO folds initializer-backed inputs into constants, so ``maxiter``,
``atol`` and ``rtol`` are made plain inputs and fed with their defaults unless overridden.
"""

import json
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidModelError, UnsupportedModelError
from ._info import ModelInfo, graph_info
from ._session import Session, check_threads, inputs_with_defaults, read_model

_RT_INFO = "iresnet_onnx"
"""The IR's rt_info section that holds the graph's metadata and solver defaults."""


def available_devices() -> tuple[str, ...]:
    import openvino as ov

    return ("cpu",) if "CPU" in ov.Core().available_devices else ()


class OpenVinoSession(Session):
    """An exported graph (``.onnx``, or OpenVINO IR ``.xml`` written by :func:`save_ir`) on
    OpenVINO's CPU plugin. Option: ``threads``."""

    runtime = "openvino"
    device = "cpu"

    def __init__(
        self, path: str | Path, device: str = "cpu", *, threads: int | None = None,
        like: ModelInfo | None = None,
    ):  # fmt: skip
        import openvino as ov

        core = ov.Core()
        path = Path(path)
        if path.suffix == ".xml":
            model, info, self.defaults = _read_ir(core, path, like)
        else:
            proto, info = read_model(path, like)
            proto, self.defaults = inputs_with_defaults(proto)
            model = _read_onnx(core, proto, info)
        super().__init__(info)
        if info.dtype != np.float32:
            raise UnsupportedModelError(
                f"OpenVINO cannot run {info.path} as exported: its CPU plugin computes in at most "
                f"float32, the graph is {info.dtype.name}"
            )
        config = {"INFERENCE_PRECISION_HINT": "f32"}
        threads = check_threads(threads, "openvino")
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = threads
        try:
            self.compiled = core.compile_model(model, "CPU", config)
        except Exception as error:  # OpenVINO raises its own RuntimeError/GeneralFailure
            raise InvalidModelError(
                f"OpenVINO cannot compile {info.path}: {_one_line(error)}"
            ) from error
        # by the graph's names: an output port can carry several (get_any_name picks any)
        self.output_names = list(info.graph.outputs)
        self._ports = [self.compiled.output(name) for name in self.output_names]
        self._requests = threading.local()  # one InferRequest per thread: they are not shareable

    def _run(self, batch: Any, solver: dict[str, Any]) -> dict[str, np.ndarray]:
        request = getattr(self._requests, "request", None)
        if request is None:
            request = self._requests.request = self.compiled.create_infer_request()
        feeds = {**self.defaults, **self.solver_feeds(solver), self.graph.input: self._numpy(batch)}
        results = request.infer(feeds)
        return {
            name: np.array(results[port], copy=True)
            for name, port in zip(self.output_names, self._ports)
        }


def _one_line(error: Exception) -> str:
    """OpenVINO's messages span many lines, the reason last (a command line shows one line)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return " | ".join(lines)[-600:]


def _read_onnx(core: Any, proto: Any, info: ModelInfo) -> Any:
    try:
        with tempfile.TemporaryDirectory() as tmp:  # the ONNX frontend reads files
            edited = Path(tmp) / info.path.name
            edited.write_bytes(proto.SerializeToString())
            return core.read_model(str(edited))
    except Exception as error:
        raise InvalidModelError(f"OpenVINO cannot load {info.path}: {_one_line(error)}") from error


def save_ir(onnx_path: Path, xml_path: Path) -> Path:
    """OpenVINO IR of an exported ``.onnx`` graph at full precision: ``xml_path`` and the ``.bin``
    beside it. The solver inputs become plain inputs (OpenVINO folds initializer-backed inputs),
    their defaults and the graph's metadata go into the IR's ``rt_info``, and the weights are
    written uncompressed — ``ovc`` / ``save_model`` compress them to fp16 by default."""
    import openvino as ov

    proto, info = read_model(onnx_path)
    proto, defaults = inputs_with_defaults(proto)
    model = _read_onnx(ov.Core(), proto, info)
    for entry in proto.metadata_props:
        if entry.key.startswith(_RT_INFO + "."):
            model.set_rt_info(entry.value, [_RT_INFO, entry.key.removeprefix(_RT_INFO + ".")])
    for name, value in defaults.items():
        model.set_rt_info(json.dumps({"dtype": value.dtype.name, "value": value.item()}),
                          [_RT_INFO, "defaults", name])  # fmt: skip
    ov.save_model(model, str(xml_path), compress_to_fp16=False)
    return xml_path


def _read_ir(core: Any, path: Path, like: ModelInfo | None) -> tuple[Any, ModelInfo, dict]:
    """An IR written by :func:`save_ir`: the model, its info from ``rt_info``, its defaults."""
    if not path.is_file():
        raise InvalidModelError(f"OpenVINO IR {path}: no such file")
    try:
        model = core.read_model(str(path))
    except Exception as error:
        raise InvalidModelError(
            f"OpenVINO cannot read the IR {path}: {_one_line(error)}"
        ) from error
    metadata, defaults = {}, {}
    if model.has_rt_info([_RT_INFO]):
        for key in ("graph", "hp", "dtype", "spectral_norm", "steps_per_check", "maxiter_cap",
                    "inverse", "version", "exporter", "power_iteration"):  # fmt: skip
            if model.has_rt_info([_RT_INFO, key]):
                metadata[f"{_RT_INFO}.{key}"] = model.get_rt_info([_RT_INFO, key]).astype(str)
        for name in ("maxiter", "atol", "rtol"):
            if model.has_rt_info([_RT_INFO, "defaults", name]):
                entry = json.loads(model.get_rt_info([_RT_INFO, "defaults", name]).astype(str))
                defaults[name] = np.array(entry["value"], entry["dtype"])
    inputs = {port.get_any_name(): str(port.get_element_type().to_dtype()) for port in model.inputs}
    width = model.inputs[0].get_partial_shape()[1]
    width = width.get_length() if width.is_static else 0
    info = graph_info(path, metadata, inputs, width, like)
    return model, info, defaults
