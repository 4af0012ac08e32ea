"""One interface for every runtime: ``load(path, runtime, device) -> Session``, ``available()``.

Runtimes: ``onnxruntime`` (cpu, cuda, tensorrt; ``.onnx`` and ``.ort`` files), ``openvino`` (cpu),
``tract`` (cpu; graphs without Loop), ``reference`` (``onnx.reference``, cpu) and ``torch`` (the
eager model from the export's checkpoint, cpu or cuda). ``available()`` lists the
``"runtime:device"`` pairs that really run here; asking for anything else raises
:class:`RuntimeUnavailableError` with that list — never a silent fallback.

Nothing here imports torch (or a runtime) before it is asked for: ``load(..., "onnxruntime")``
probes onnxruntime only, and an edge install without torch never needs it.
"""

import functools
import importlib.util
from pathlib import Path
from typing import Any

from ..errors import RuntimeUnavailableError
from ._session import ModelInfo, Session, read_model

__all__ = [
    "RUNTIMES",
    "ModelInfo",
    "RuntimeUnavailableError",
    "Session",
    "available",
    "load",
    "parse_runtime",
    "read_model",
    "require",
]

RUNTIMES = ("onnxruntime", "openvino", "tract", "reference", "torch")


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _onnxruntime_devices() -> tuple[str, ...]:
    if not _installed("onnxruntime"):
        return ()
    from ._onnxruntime import available_devices

    return available_devices()


def _torch_devices() -> tuple[str, ...]:
    if not _installed("torch"):
        return ()
    import torch

    return ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)


@functools.cache
def devices(runtime: str) -> tuple[str, ...]:
    """The devices on which ``runtime`` really runs here (probed once; empty if not installed)."""
    if runtime == "onnxruntime":
        return _onnxruntime_devices()
    if runtime == "reference":
        return ("cpu",) if _installed("onnx") else ()
    if runtime == "torch":
        return _torch_devices()
    if runtime in ("openvino", "tract") and _installed(runtime):
        adapter = importlib.import_module(f"._{runtime}", __name__)
        return adapter.available_devices()
    return ()


def available() -> list[str]:
    """The ``"runtime:device"`` names that really work on this machine (probed once)."""
    return [f"{runtime}:{device}" for runtime in RUNTIMES for device in devices(runtime)]


def parse_runtime(name: str, device: str | None = None) -> tuple[str, str]:
    """``"onnxruntime:cuda"`` → ("onnxruntime", "cuda"); a bare runtime means ``device`` or cpu.

    A name that carries a device and a different ``device`` argument is a ``ValueError``."""
    runtime, _, named = name.partition(":")
    if named and device is not None and device != named:
        raise ValueError(
            f"runtime {name!r} names device {named!r}, but device={device!r} was given"
        )
    return runtime, named or device or "cpu"


def require(runtime: str, device: str = "cpu") -> None:
    """Raise :class:`RuntimeUnavailableError` unless ``runtime:device`` is available here."""
    if device in devices(runtime):
        return
    known = "" if runtime in RUNTIMES else f" (unknown runtime; runtimes are {', '.join(RUNTIMES)})"
    raise RuntimeUnavailableError(
        f"{runtime}:{device} is not available here{known}; available: {', '.join(available())}"
    )


def load(
    path: str | Path, runtime: str = "onnxruntime", device: str | None = None, **options: Any
) -> Session:
    """Open an exported graph on ``runtime`` and ``device`` (``runtime`` may be ``"name:device"``,
    exactly as :func:`available` lists it).

    ``options`` go to the adapter: onnxruntime takes ``threads``, ``optimization_level``,
    ``profile_prefix``, ``log_severity``, ``prepacking``, ``device_id``; openvino ``threads``; torch
    ``checkpoint`` (default: ``model.pt`` beside the graph). A valid graph that the runtime cannot
    run is an :class:`~iresnet_onnx.errors.UnsupportedModelError` that says why.
    """
    runtime, device = parse_runtime(runtime, device)
    require(runtime, device)
    if runtime == "onnxruntime":
        from ._onnxruntime import OnnxRuntimeSession

        return OnnxRuntimeSession(path, device, **options)
    if runtime == "openvino":
        from ._openvino import OpenVinoSession

        return OpenVinoSession(path, device, **options)
    if runtime == "tract":
        from ._tract import TractSession

        return TractSession(path, device, **options)
    if runtime == "reference":
        from ._reference import ReferenceSession

        return ReferenceSession(path, device, **options)
    from .._torch_session import EagerSession

    return EagerSession(path, device, **options)
