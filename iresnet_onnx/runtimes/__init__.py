"""One interface for every runtime: ``load(path, runtime, device) -> Session``, ``available()``.

Runtimes: ``onnxruntime`` (cpu, cuda, tensorrt), ``reference`` (``onnx.reference``, cpu) and ``torch``
(the eager model from the export's checkpoint, cpu or cuda). ``available()`` lists the
``"runtime:device"`` pairs that really run here; asking for anything else raises
:class:`RuntimeUnavailableError` with that list — never a silent fallback.
"""

import functools
from pathlib import Path
from typing import Any

import torch

from ..errors import RuntimeUnavailableError
from .base import ModelInfo, Session, read_model

__all__ = ["ModelInfo", "RuntimeUnavailableError", "Session", "available", "load", "read_model"]

RUNTIMES = ("onnxruntime", "reference", "torch")


def _onnxruntime_devices() -> list[str]:
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    if hasattr(ort, "preload_dlls"):  # onnxruntime-gpu: CUDA/cuDNN from torch's nvidia-* wheels
        try:
            ort.preload_dlls()
        except Exception:  # no CUDA libraries: the probe below then fails cleanly
            pass
    providers = ort.get_available_providers()
    devices = ["cpu"] if "CPUExecutionProvider" in providers else []
    for device, provider in (
        ("cuda", "CUDAExecutionProvider"),
        ("tensorrt", "TensorrtExecutionProvider"),
    ):
        if provider in providers and _provider_really_runs(ort, provider):
            devices.append(device)
    return devices


def _provider_really_runs(ort: Any, provider: str) -> bool:
    """onnxruntime-gpu lists CUDA and TensorRT even where they cannot start: try a tiny session."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["a"], ["b"])],
        "probe",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)
    onnx.checker.check_model(model)
    try:
        options = ort.SessionOptions()
        options.log_severity_level = 4
        session = ort.InferenceSession(
            model.SerializeToString(), options, providers=[provider, "CPUExecutionProvider"]
        )
    except Exception:
        return False
    return provider in session.get_providers()


def available() -> list[str]:
    """The ``"runtime:device"`` names that really work on this machine (probed once)."""
    return list(_probe())


@functools.cache
def _probe() -> tuple[str, ...]:
    names = ["torch:cpu"]
    if torch.cuda.is_available():
        names.append("torch:cuda")
    names += [f"onnxruntime:{device}" for device in _onnxruntime_devices()]
    names.append("reference:cpu")
    return tuple(names)


def parse_runtime(name: str) -> tuple[str, str]:
    """``"onnxruntime:cuda"`` → ("onnxruntime", "cuda"); a bare runtime means its cpu device."""
    runtime, _, device = name.partition(":")
    return runtime, device or "cpu"


def require(runtime: str, device: str = "cpu") -> None:
    """Raise :class:`RuntimeUnavailableError` unless ``runtime:device`` is available here."""
    if f"{runtime}:{device}" not in available():
        known = (
            "" if runtime in RUNTIMES else f" (unknown runtime; runtimes are {', '.join(RUNTIMES)})"
        )
        raise RuntimeUnavailableError(
            f"{runtime}:{device} is not available here{known}; available: {', '.join(available())}"
        )


def load(
    path: str | Path, runtime: str = "onnxruntime", device: str = "cpu", **options: Any
) -> Session:
    """Open an exported ``forward.onnx`` / ``inverse.onnx`` on ``runtime`` and ``device``.

    ``options`` go to the adapter: onnxruntime takes ``threads``, ``optimization_level``,
    ``profile_prefix``, ``log_severity``; torch takes ``checkpoint`` (default: ``model.pt`` beside
    the graph).
    """
    require(runtime, device)
    if runtime == "onnxruntime":
        from .ort import OnnxRuntimeSession

        return OnnxRuntimeSession(path, device, **options)
    if runtime == "reference":
        from .reference import ReferenceSession

        return ReferenceSession(path, device, **options)
    from .eager import EagerSession

    return EagerSession(path, device, **options)
