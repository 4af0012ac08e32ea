"""``node:cpu``: onnxruntime-node (onnxruntime's CPU engine for Node.js) in one long-lived Node.js
child process per session; arrays cross as raw bytes (:mod:`._js`).

onnxruntime-node 1.30 silently drops a feed whose name is not in ``session.inputNames``, and it
lists no input that an initializer backs: ``maxiter``, ``atol`` and ``rtol`` of the inverse graph
could not be fed. So, as for OpenVINO and tract, the graph goes to the child with those inputs made
plain required inputs (:func:`~._session.inputs_with_defaults`), fed with the export's defaults
unless a caller overrides them.
"""

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import InvalidModelError, RuntimeUnavailableError, UnsupportedModelError, UsageError
from ._js import JsChild, decode, encode, lacking, require_tools
from ._session import (
    ModelInfo,
    Session,
    check_solver_inputs,
    check_threads,
    inputs_with_defaults,
    read_model,
)

__all__ = ["JsSession", "NodeSession", "available_devices", "missing"]

PACKAGE = "onnxruntime-node"
# onnxruntime's words for a kernel or type it does not have (the session cannot run this graph)
_UNSUPPORTED = ("NOT_IMPLEMENTED", "Could not find an implementation", "not supported")


def available_devices() -> tuple[str, ...]:
    return () if missing() else ("cpu",)


def missing() -> str:
    """What node:cpu lacks here and how to install it ("" when nothing)."""
    return "; ".join(lacking((PACKAGE,), browser=False)[1])


class JsSession(Session):
    """An exported graph in a JavaScript runtime behind a :class:`~._js.JsChild` (one child, one
    graph). Options: ``threads`` (the engine's intra-op threads), ``timeout`` (seconds one call may
    take before the child is declared hung and stopped; default 120)."""

    script: ClassVar[str]
    packages: ClassVar[tuple[str, ...]]
    browser: ClassVar[bool] = False

    def __init__(
        self, path: str | Path, device: str, *, threads: int | None = None,
        timeout: float = 120.0, like: ModelInfo | None = None,
    ):  # fmt: skip
        if device != self.device:
            raise RuntimeUnavailableError(
                f"{self.runtime} has no device {device!r}; use {self.device}"
            )
        tools = require_tools(f"{self.runtime}:{self.device}", self.packages, self.browser)
        threads = check_threads(threads, self.runtime)
        if Path(path).suffix == ".ort":  # its metadata (the model's HP, dtype) is read with onnx
            raise UnsupportedModelError(
                f"{self.runtime} takes the export's .onnx graphs, not {path} (onnxruntime's own "
                "format); run the .onnx file beside it, or the .ort file on onnxruntime"
            )
        proto, info = read_model(path, like)
        super().__init__(info)
        proto, self.defaults = inputs_with_defaults(proto)
        self.output_names = [value.name for value in proto.graph.output]
        self.child = self._start(tools, timeout)
        try:
            answer, _ = self._request(
                {"op": "load", "threads": threads}, proto.SerializeToString(), max(timeout, 180)
            )
        except BaseException as error:
            self.close()
            if isinstance(error, InvalidModelError) and _unsupported(str(error)):
                raise UnsupportedModelError(
                    f"{self.runtime} cannot run {info.path}: {error}"
                ) from error
            raise
        self.engine = answer.get("version")

    def _start(self, tools: dict[str, Path], timeout: float) -> JsChild:
        """The child that runs this session's graph: its own Node.js process."""
        what = f"{self.runtime}:{self.device} ({self.info.path.name})"
        return JsChild(what, self.script, [str(tools["node_modules"])], timeout)

    def _request(
        self, header: dict[str, Any], payload: bytes = b"", timeout: float | None = None
    ) -> tuple[dict[str, Any], bytes]:
        child = self.__dict__.get("child")
        if child is None:
            raise RuntimeUnavailableError(f"{self!r} is closed")
        return child.request(header, payload, timeout)

    def echo(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The arrays sent to the runtime's side and back, untouched (a check of the transport)."""
        entries, payload = encode(arrays)
        answer, body = self._request({"op": "echo", "tensors": entries}, payload)
        return decode(answer["tensors"], body)

    def _run(self, batch: Any, solver: dict[str, Any]) -> dict[str, np.ndarray]:
        return self._call(batch, solver)[0]

    def run_timed(self, array: np.ndarray, **solver: Any) -> tuple[dict[str, np.ndarray], float]:
        """Every output for a ``[batch, n]`` array, and the milliseconds the engine's own
        ``session.run`` took inside the child (the rest of a call's time is the transport)."""
        batch, leading = self._prepare(array)
        if len(leading) != 1 or batch.shape[0] == 0:
            raise UsageError("run_timed takes a non-empty [batch, n] array")
        return self._call(batch, check_solver_inputs(self.info, solver))

    def _call(self, batch: Any, solver: dict[str, Any]) -> tuple[dict[str, np.ndarray], float]:
        feeds = dict(self.defaults)
        for name, value in solver.items():
            feeds[name] = np.asarray(value, dtype=self.defaults[name].dtype)
        feeds[self.graph.input] = self._numpy(batch)
        entries, payload = encode(feeds)
        try:
            answer, body = self._request({"op": "run", "tensors": entries}, payload)
        except InvalidModelError as error:
            if _unsupported(str(error)):
                raise UnsupportedModelError(
                    f"{self.runtime} cannot run {self.info.path}: {error}"
                ) from error
            raise
        outputs = decode(answer["tensors"], body)
        return {name: outputs[name] for name in self.output_names}, float(answer.get("ms", 0.0))

    def close(self) -> None:
        """End the child process; safe to call more than once."""
        child = self.__dict__.pop("child", None)
        if child is not None:
            child.close()

    def __del__(self) -> None:
        self.close()


def _unsupported(message: str) -> bool:
    return any(word in message for word in _UNSUPPORTED)


class NodeSession(JsSession):
    """An exported graph on onnxruntime-node (CPU) in a Node.js child process."""

    runtime = "node"
    device = "cpu"
    script = "node_runner.mjs"
    packages = (PACKAGE,)
