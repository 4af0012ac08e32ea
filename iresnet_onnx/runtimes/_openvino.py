"""OpenVINO (CPU): the exported graphs through OpenVINO's ONNX frontend, in float32 as exported.

Two things differ from onnxruntime, both handled here: OpenVINO's CPU plugin may pick bf16 for
inference on CPUs that have it (errors around 5e-3), so every session asks for f32 explicitly
(float64 exports are refused: the CPU plugin has no f64 inference); and OpenVINO folds initializer-backed inputs into constants, so ``maxiter``,
``atol`` and ``rtol`` are made plain inputs and fed with their defaults unless overridden.
"""

import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidModelError, UnsupportedModelError
from ._session import Session, check_threads, inputs_with_defaults, read_model


def available_devices() -> tuple[str, ...]:
    import openvino as ov

    return ("cpu",) if "CPU" in ov.Core().available_devices else ()


class OpenVinoSession(Session):
    """An exported graph on OpenVINO's CPU plugin. Option: ``threads``."""

    runtime = "openvino"
    device = "cpu"

    def __init__(self, path: str | Path, device: str = "cpu", *, threads: int | None = None):
        import openvino as ov

        proto, info = read_model(path)
        super().__init__(info)
        if info.dtype != np.float32:
            raise UnsupportedModelError(
                f"OpenVINO cannot run {info.path} as exported: its CPU plugin computes in at most "
                f"float32, the graph is {info.dtype.name}"
            )
        proto, self.defaults = inputs_with_defaults(proto)
        config = {"INFERENCE_PRECISION_HINT": "f32"}
        threads = check_threads(threads, "openvino")
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = threads
        try:
            with tempfile.TemporaryDirectory() as tmp:  # the ONNX frontend reads files
                edited = Path(tmp) / info.path.name
                edited.write_bytes(proto.SerializeToString())
                core = ov.Core()
                self.compiled = core.compile_model(core.read_model(str(edited)), "CPU", config)
        except Exception as error:  # OpenVINO raises its own RuntimeError/GeneralFailure
            raise InvalidModelError(f"OpenVINO cannot load {info.path}: {error}") from error
        # by the graph's names: an output port can carry several (get_any_name picks any)
        self.output_names = [value.name for value in proto.graph.output]
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
