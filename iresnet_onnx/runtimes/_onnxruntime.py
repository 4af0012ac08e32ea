"""onnxruntime: CPU, CUDA (IO binding for torch CUDA tensors) and TensorRT where present.

onnxruntime-gpu silently drops an execution provider it cannot start and runs on the CPU; every
session here checks ``get_providers()`` and raises instead.
"""

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidModelError, RuntimeUnavailableError, UsageError
from ._info import ModelInfo, graph_info, onnxruntime_type
from ._session import Session, check_solver_inputs, check_threads

PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}
OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")


def available_devices() -> tuple[str, ...]:
    """The devices onnxruntime really runs on here: cpu, and cuda / tensorrt where they start."""
    import onnxruntime as ort

    if hasattr(ort, "preload_dlls"):  # onnxruntime-gpu: CUDA/cuDNN from the nvidia-* wheels
        try:
            ort.preload_dlls()
        except Exception:  # no CUDA libraries: the probe below then fails cleanly
            pass
    providers = ort.get_available_providers()
    devices = ["cpu"] if "CPUExecutionProvider" in providers else []
    for device in ("cuda", "tensorrt"):
        provider = PROVIDERS[device][0]
        if provider in providers and _provider_really_runs(ort, provider):
            devices.append(device)
    return tuple(devices)


def _provider_really_runs(ort: Any, provider: str) -> bool:
    """onnxruntime-gpu lists CUDA and TensorRT even where they cannot start: try a tiny session."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["a"], ["b"])],
        "probe",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)
    try:
        options = ort.SessionOptions()
        options.log_severity_level = 4
        session = ort.InferenceSession(
            model.SerializeToString(), options, providers=[provider, "CPUExecutionProvider"]
        )
    except Exception:
        return False
    return provider in session.get_providers()


def session_options(
    threads: int | None = None,
    optimization_level: str = "all",
    profile_prefix: str | None = None,
    log_severity: int = 3,
    prepacking: bool = True,
) -> Any:
    """``onnxruntime.SessionOptions`` from plain arguments.

    ``log_severity=3`` (errors) hides onnxruntime's note that the inverse graph's optional inputs
    are initializers, which is how ONNX gives an input a default. ``prepacking=False`` keeps Gemm
    weights unpacked (onnxruntime packs them at load by default).
    """
    import onnxruntime as ort

    if optimization_level not in OPTIMIZATION_LEVELS:
        raise UsageError(
            f"optimization_level must be one of {', '.join(OPTIMIZATION_LEVELS)}, got {optimization_level!r}"
        )
    options = ort.SessionOptions()
    options.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[optimization_level]
    threads = check_threads(threads, "onnxruntime")
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.log_severity_level = log_severity
    if not prepacking:
        options.add_session_config_entry("session.disable_prepacking", "1")
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return options


def _open(ort: Any, path: Path, settings: Any, providers: list[Any]) -> Any:
    if not path.is_file():
        what = "not a regular file" if path.exists() else "no such file"
        raise InvalidModelError(f"ONNX file {path}: {what}")
    try:
        return ort.InferenceSession(str(path), settings, providers=providers)
    except Exception as error:  # onnxruntime raises its own Fail/InvalidGraph/NotImplemented
        hint = ""
        if "is not a registered function/op" in str(error):
            hint = (
                " — its calls name ONNX functions the file does not define. The likely cause: "
                "an export with functions=True went through onnx.version_converter, which drops "
                "function bodies (the file still passes onnx.checker). Convert the default export "
                "(plain nodes) instead, or export at the opset you need (--opset)"
            )
        raise InvalidModelError(f"onnxruntime cannot load {path}: {error}{hint}") from error


class OnnxRuntimeSession(Session):
    """An exported graph (``.onnx`` or ``.ort``) on onnxruntime. Options: ``threads``,
    ``optimization_level``, ``profile_prefix`` (enables onnxruntime's profiler), ``log_severity``,
    ``prepacking``; the same defaults for every graph and both file formats."""

    runtime = "onnxruntime"

    def __init__(
        self, path: str | Path, device: str = "cpu", *, device_id: int = 0,
        like: ModelInfo | None = None, **options: Any,
    ):  # fmt: skip
        import onnxruntime as ort

        if device not in PROVIDERS:
            raise RuntimeUnavailableError(
                f"onnxruntime has no device {device!r}; use cpu, cuda or tensorrt"
            )
        path = Path(path)
        self.device = device
        self.device_id = int(device_id)
        providers: list[Any] = [
            (name, {"device_id": self.device_id}) if name != "CPUExecutionProvider" else name
            for name in PROVIDERS[device]
        ]
        settings = session_options(**options)  # a bad option is the caller's error
        # the session holds the metadata of .onnx and .ort files alike: no second parse
        self.session = _open(ort, path, settings, providers)
        metadata = self.session.get_modelmeta().custom_metadata_map
        # an input with a same-named initializer (a default) is an "overridable initializer" here
        declared = [*self.session.get_inputs(), *self.session.get_overridable_initializers()]
        inputs = {value.name: onnxruntime_type(value.type) for value in declared}
        width = self.session.get_inputs()[0].shape[1]
        super().__init__(
            graph_info(path, metadata, inputs, width if isinstance(width, int) else 0, like)
        )
        wanted = PROVIDERS[device][0]
        if wanted not in self.session.get_providers():
            raise RuntimeUnavailableError(
                f"onnxruntime did not start {wanted} for {path} (it would silently run on "
                f"{', '.join(self.session.get_providers())})"
            )
        self.output_names = [output.name for output in self.session.get_outputs()]

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    def end_profiling(self) -> str:
        """Stop the profiler (see ``profile_prefix``) and return the trace file's path."""
        return self.session.end_profiling()

    def _run(self, batch: Any, solver: dict[str, Any]) -> dict[str, np.ndarray]:
        feeds = self.solver_feeds(solver)
        if not isinstance(batch, np.ndarray):  # a torch tensor (numpy input needs no torch lookup)
            if batch.is_cuda and self.device != "cpu":
                outputs = self._run_bound(batch, feeds)
                return {name: value.cpu().numpy() for name, value in outputs.items()}
            batch = self._numpy(batch)
        feeds[self.graph.input] = batch
        return dict(zip(self.output_names, self.session.run(self.output_names, feeds)))

    def run_torch(self, tensor: Any, **solver: Any) -> dict[str, Any]:
        """CUDA only, IO binding: the input and the main output stay on the GPU (no host copy);
        the small ``iterations`` and ``residual`` outputs come back as CPU tensors."""
        import torch

        if self.device == "cpu" or not isinstance(tensor, torch.Tensor) or not tensor.is_cuda:
            raise UsageError("run_torch needs a CUDA session and a torch CUDA tensor")
        batch, leading = self._prepare(tensor)
        given = check_solver_inputs(self.info, solver)
        outputs = self._run_bound(batch, self.solver_feeds(given))
        main = self.graph.main
        outputs[main] = outputs[main].reshape(*leading, self.info.input_size)
        return outputs

    def _run_bound(self, batch: Any, feeds: dict[str, np.ndarray]) -> dict[str, Any]:
        import torch

        device_id = batch.device.index or 0
        if device_id != self.device_id:
            raise UsageError(
                f"{self.info.path.name}: the input is on cuda:{device_id}, the session on "
                f"cuda:{self.device_id} (load(..., device_id={device_id}) runs on that GPU)"
            )
        batch = batch.contiguous()  # IO binding reads dense row-major memory: no strided views
        binding = self.session.io_binding()
        element_type = self.info.dtype.type
        binding.bind_input(
            self.graph.input, "cuda", device_id, element_type, list(batch.shape), batch.data_ptr()
        )
        for name, value in feeds.items():
            binding.bind_cpu_input(name, value)
        main = self.graph.main
        outputs = {main: torch.empty(batch.shape, dtype=batch.dtype, device=batch.device)}
        binding.bind_output(
            main, "cuda", device_id, element_type, list(batch.shape), outputs[main].data_ptr()
        )
        extra = [name for name in self.output_names if name != main]
        for name in extra:
            binding.bind_output(name, "cpu")
        binding.synchronize_inputs()
        self.session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        # get_outputs() keeps the binding order: the main output first, then the host-side ones
        for name, value in zip(extra, binding.get_outputs()[1:]):
            outputs[name] = torch.from_numpy(value.numpy())
        return outputs
