"""One interface for every runtime: ``load(path, runtime, device) -> Session``, ``available()``.

Runtimes: ``onnxruntime`` (cpu, cuda, tensorrt; ``.onnx`` and ``.ort`` files), ``openvino`` (cpu),
``tract`` (cpu; graphs without Loop), ``reference`` (``onnx.reference``, cpu), ``node``
(onnxruntime-node in a Node.js child process, cpu), ``web`` (onnxruntime-web's WASM backend in a
headless Chromium page, wasm), and ``torch`` (the eager model from the export's checkpoint, cpu or
cuda), which the model side registers through the
``iresnet_onnx.runtimes`` entry point group — as any other package may register a runtime.
``available()`` lists the ``"runtime:device"`` pairs that really run here; asking for anything else
raises :class:`RuntimeUnavailableError` with that list — never a silent fallback.

Nothing here imports torch (or a runtime) before it is asked for: ``load(..., "onnxruntime")``
probes onnxruntime only, and an edge install without torch never needs it.
"""

import functools
import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from ..errors import RuntimeUnavailableError, UsageError
from ._session import ModelInfo, Session, read_model

__all__ = [
    "RUNTIMES",
    "ModelInfo",
    "Runtime",
    "RuntimeUnavailableError",
    "Session",
    "available",
    "devices",
    "load",
    "parse_runtime",
    "read_model",
    "refusal",
    "require",
]

ENTRY_POINTS = "iresnet_onnx.runtimes"
"""The entry point group through which other packages (and the model side) add runtimes."""


@dataclass(frozen=True)
class Runtime:
    """A runtime adapter: where it runs, and how to open a graph on it."""

    name: str
    devices: Callable[[], tuple[str, ...]]
    """The devices on which it really runs here (may import the runtime; probed once)."""
    open: Callable[..., Session]
    """``open(path, device, **options) -> Session``."""
    missing: Callable[[], str] | None = None
    """Why it is not available here and what to install (for the error of :func:`require`)."""
    refuses: Callable[[Any], str | None] | None = None
    """Why it cannot run an ONNX model, seen in the model alone (None: it runs it), for
    :func:`refusal`."""


def _adapter(module: str, session: str) -> Callable[..., Session]:
    """Open through ``module.session``, importing the adapter only when a session is asked for."""

    def open_session(path: Any, device: str, **options: Any) -> Session:
        adapter = importlib.import_module(f".{module}", __name__)
        return getattr(adapter, session)(path, device, **options)

    return open_session


def _installed(module: str) -> Callable[[], bool]:
    return lambda: importlib.util.find_spec(module) is not None


def _probe(module: str, installed: Callable[[], bool]) -> Callable[[], tuple[str, ...]]:
    """The adapter module's own ``available_devices()``, where its runtime is installed."""

    def probe() -> tuple[str, ...]:
        if not installed():
            return ()
        return importlib.import_module(f".{module}", __name__).available_devices()

    return probe


BUILT_IN = (
    Runtime("onnxruntime", _probe("_onnxruntime", _installed("onnxruntime")),
            _adapter("_onnxruntime", "OnnxRuntimeSession")),
    Runtime("openvino", _probe("_openvino", _installed("openvino")),
            _adapter("_openvino", "OpenVinoSession")),
    Runtime("tract", _probe("_tract", _installed("tract")), _adapter("_tract", "TractSession"),
            refuses=lambda proto: importlib.import_module(f"{__name__}._tract").refusal(proto)),
    Runtime("reference", lambda: ("cpu",) if _installed("onnx")() else (),
            _adapter("_reference", "ReferenceSession")),
    Runtime("node", _probe("_node", lambda: True), _adapter("_node", "NodeSession"),
            lambda: importlib.import_module(f"{__name__}._node").missing()),
    Runtime("web", _probe("_web", lambda: True), _adapter("_web", "WebSession"),
            lambda: importlib.import_module(f"{__name__}._web").missing()),
)  # fmt: skip


@functools.cache
def _table() -> dict[str, Runtime]:
    """The built-in runtimes, then those registered through the entry point group (a plugin whose
    import fails — torch missing — is simply not there)."""
    table = {runtime.name: runtime for runtime in BUILT_IN}
    for point in entry_points(group=ENTRY_POINTS):
        try:
            runtime = point.load()
        except ImportError:
            continue
        table.setdefault(runtime.name, runtime)
    return table


def __getattr__(name: str) -> Any:
    if name == "RUNTIMES":  # the runtimes known here, installed or not
        return tuple(_table())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def devices(runtime: str) -> tuple[str, ...]:
    """The devices on which ``runtime`` really runs here (probed once; empty if not installed)."""
    entry = _table().get(runtime)
    return entry.devices() if entry is not None else ()


def available() -> list[str]:
    """The ``"runtime:device"`` names that really work on this machine (probed once)."""
    return [f"{runtime}:{device}" for runtime in _table() for device in devices(runtime)]


def parse_runtime(name: str, device: str | None = None) -> tuple[str, str]:
    """``"onnxruntime:cuda"`` → ("onnxruntime", "cuda"); a bare runtime means ``device`` or cpu.

    A name that carries a device and a different ``device`` argument is a :class:`UsageError`."""
    if not isinstance(name, str):
        raise UsageError(f"a runtime is a name such as 'onnxruntime:cpu', got {name!r}")
    runtime, _, named = name.partition(":")
    if named and device is not None and device != named:
        raise UsageError(
            f"runtime {name!r} names device {named!r}, but device={device!r} was given"
        )
    return runtime, named or device or "cpu"


def refusal(runtime: str, proto: Any) -> str | None:
    """Why ``runtime`` cannot run the ONNX model ``proto`` — what its session would refuse on
    sight (tract: a Loop, float64, functions) — or None; asked before a graph is written."""
    entry = _table().get(runtime)
    return entry.refuses(proto) if entry is not None and entry.refuses is not None else None


def require(runtime: str, device: str = "cpu") -> None:
    """Raise :class:`RuntimeUnavailableError` unless ``runtime:device`` is available here."""
    if device in devices(runtime):
        return
    table = _table()
    known = "" if runtime in table else f" (unknown runtime; runtimes are {', '.join(table)})"
    missing = table[runtime].missing if runtime in table and not devices(runtime) else None
    hint = f" ({missing()})" if missing is not None else ""
    raise RuntimeUnavailableError(
        f"{runtime}:{device} is not available here{known}{hint}; available: {', '.join(available())}"
    )


def load(
    path: str | Path, runtime: str = "onnxruntime", device: str | None = None, **options: Any
) -> Session:
    """Open an exported graph on ``runtime`` and ``device`` (``runtime`` may be ``"name:device"``,
    exactly as :func:`available` lists it).

    ``options`` go to the adapter: onnxruntime takes ``threads``, ``optimization_level``,
    ``profile_prefix``, ``log_severity``, ``prepacking``, ``device_id``; openvino ``threads``; torch
    ``checkpoint`` (default: the export folder's checkpoint beside the graph). Without ``threads``,
    a session takes the ``IRESNET_ONNX_THREADS`` environment variable where set. A valid graph that
    the runtime cannot run is an :class:`~iresnet_onnx.errors.UnsupportedModelError` that says why.
    """
    runtime, device = parse_runtime(runtime, device)
    require(runtime, device)
    return _table()[runtime].open(path, device, **options)
