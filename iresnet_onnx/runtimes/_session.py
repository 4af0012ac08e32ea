"""The one interface every runtime adapter implements, and what all of them share.

A :class:`Session` takes numpy or torch input of shape ``[..., n]`` (any leading dims; the graph sees
``[batch, n]``), checks its dtype, width and finiteness against the exported model, and returns numpy.
This module imports neither torch nor onnx: an edge install has only numpy and a runtime. A torch
tensor can only be an input where torch is already imported, so it is recognised through
``sys.modules``; onnx is imported when a graph file is read.
"""

import numbers
import os
import sys
import warnings
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from .._solver_settings import SOLVER_SETTINGS, check_solver_options
from ..errors import ConvergenceWarning, UsageError
from ..graphs import Graph
from ._info import ModelInfo, graph_info, inputs_with_defaults, read_model

__all__ = [
    "THREADS_VARIABLE",
    "ModelInfo",
    "Session",
    "check_solver_inputs",
    "graph_info",
    "inputs_with_defaults",
    "read_model",
]


def check_solver_inputs(info: ModelInfo, solver: dict[str, Any]) -> dict[str, Any]:
    """The solver inputs that were given (None dropped), after checking them: a
    :class:`UsageError` for solver inputs to a graph that takes none, unknown names, names the
    graph no longer takes (folded into it by a simplifier), bad values, tolerances the graph's
    float type cannot hold, or a maxiter above the graph's cap."""
    given = {name: value for name, value in solver.items() if value is not None}
    if not given:
        return given
    graph = info.graph
    if not graph.optional_inputs:
        raise UsageError(f"solver inputs {sorted(given)} only apply to the inverse graph")
    unknown = set(given) - set(SOLVER_SETTINGS)
    if unknown:
        raise UsageError(
            f"unknown solver inputs {sorted(unknown)}; known: {', '.join(SOLVER_SETTINGS)}"
        )
    folded = [name for name in given if name not in info.solver_inputs]
    if folded:
        defaults = ", ".join(f"{name}={value}" for name, value in info.solver.items())
        raise UsageError(
            f"{info.path.name} takes no input {', '.join(folded)}: a tool folded it into the "
            f"graph (a simplifier?), which runs at its baked-in defaults ({defaults}, the "
            "export's); pass none, or run the export's own inverse.onnx"
        )
    check_solver_options(given.get("maxiter"), given.get("atol"), given.get("rtol"), "solver input")
    if given.get("maxiter", 0) > info.maxiter_cap:
        raise UsageError(
            f"solver input maxiter={given['maxiter']} is above this graph's cap of "
            f"{info.maxiter_cap} steps per block (set at export)"
        )
    if info.dtype.kind == "f":
        largest = float(np.finfo(info.dtype).max)
        for name in ("atol", "rtol"):
            if name in given and float(given[name]) > largest:
                raise UsageError(
                    f"solver input {name}={given[name]!r} overflows the graph's "
                    f"{info.dtype.name} (largest {largest:.3g})"
                )
    return given


def torch_tensor_type() -> type | None:
    """``torch.Tensor`` if torch is imported in this process (then inputs may be tensors), else None."""
    torch = sys.modules.get("torch")
    return getattr(torch, "Tensor", None)


class Session(ABC):
    """One exported graph on one runtime and device.

    ``run`` returns the main output and warns (:class:`~iresnet_onnx.errors.ConvergenceWarning`)
    when an inverse did not meet its tolerance; ``run_all`` returns every output (``iterations``,
    ``residual``) for the caller to judge, and never warns. A session keeps no per-call state, so
    one session may serve several threads where its runtime allows it. ``close()`` (or ``with``)
    releases what the runtime holds (a child process, a browser page); most need nothing.
    """

    runtime: str
    device: str

    def __init__(self, info: ModelInfo):
        self.info = info
        # solver settings already checked, and their scalar feeds, by value: a caller passes the
        # same settings call after call, and at batch 1 checking them and making the arrays anew
        # took a measurable share of the call. Entries are never changed once made, so threads
        # may share them.
        self._checked_solver: dict[tuple, dict[str, Any]] = {}
        self._solver_arrays: dict[tuple, dict[str, np.ndarray]] = {}

    @property
    def name(self) -> str:
        """``"runtime:device"``, as :func:`iresnet_onnx.runtimes.available` lists it."""
        return f"{self.runtime}:{self.device}"

    @property
    def graph(self) -> Graph:
        """Which graph this is (``graph.name``, ``graph.input``, ``graph.main``, …)."""
        return self.info.graph

    @property
    def providers(self) -> list[str]:
        """The execution providers that really run this session (onnxruntime), else the runtime."""
        return [self.runtime]

    def close(self) -> None:
        """Release what the runtime holds for this session (a child process, a page)."""
        return None  # in-process runtimes hold nothing beyond what garbage collection frees

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.info.path)!r}, {self.name}, {self.graph.name})"

    def run(self, array: Any, **solver: Any) -> np.ndarray:
        """The main output for ``array`` of shape ``[..., n]`` (``y``, ``x`` or ``log_prob``)."""
        outputs = self.run_all(array, **solver)
        self._warn_if_unreliable(outputs, solver)
        return outputs[self.graph.main]

    def run_all(self, array: Any, **solver: Any) -> dict[str, np.ndarray]:
        """Every output by name; the per-row ones reshaped to the input's leading dims.

        ``solver`` (inverse only): ``maxiter``, ``atol``, ``rtol`` overriding the model's defaults.
        """
        batch, leading = self._prepare(array)
        solver = self._check_solver(solver)
        outputs = self._empty_outputs() if batch.shape[0] == 0 else self._run(batch, solver)
        if len(leading) != 1:
            for name in self.graph.per_row:
                outputs[name] = outputs[name].reshape(*leading, *outputs[name].shape[1:])
        return outputs

    def _empty_outputs(self) -> dict[str, np.ndarray]:
        """What every graph returns for zero rows (the graphs themselves expect batch ≥ 1)."""
        info = self.info
        return {
            name: np.zeros(
                self.graph.output_shape(name, 0, info.input_size, info.nblocks),
                np.int64 if name == "iterations" else info.dtype,
            )
            for name in self.graph.outputs
        }

    def _warn_if_unreliable(self, outputs: dict[str, np.ndarray], solver: dict[str, Any]) -> None:
        """What ``run`` tells its caller: an inverse that missed its tolerance (a NaN residual
        included), or an output that overflowed."""
        name = self.info.path.name
        if "residual" in outputs:
            atol = solver.get("atol", self.info.atol)
            residual = outputs["residual"]
            failed = [i for i, r in enumerate(residual.tolist()) if not r <= atol]
            if failed:
                steps = outputs["iterations"].tolist()
                detail = ", ".join(
                    f"block {i}: {steps[i]} steps, residual {residual[i]:.3g}" for i in failed
                )
                warnings.warn(
                    f"{name}: no convergence to atol {atol:g} ({detail})",
                    ConvergenceWarning,
                    stacklevel=3,
                )
        main = outputs[self.graph.main]
        if main.dtype.kind == "f" and not np.isfinite(main).all():
            warnings.warn(
                f"{name}: the output holds NaN or Inf (the input is beyond what the model can "
                f"compute in {self.info.dtype.name})",
                RuntimeWarning,
                stacklevel=3,
            )

    @abstractmethod
    def _run(self, batch: Any, solver: dict[str, Any]) -> dict[str, np.ndarray]:
        """Run the graph on a validated ``[batch, n]`` array (numpy, or torch for some adapters)."""

    def _numpy(self, batch: Any) -> np.ndarray:
        tensor = torch_tensor_type()
        if tensor is not None and isinstance(batch, tensor):
            return batch.detach().cpu().numpy()
        return batch

    def _prepare(self, array: Any) -> tuple[Any, tuple[int, ...]]:
        """Check dtype, width and finiteness; flatten the leading dims. Torch tensors stay torch."""
        info = self.info
        if type(array) is np.ndarray and array.dtype == info.dtype:  # the common case, kept cheap
            values, finite = array, bool(np.isfinite(array).all())
        else:
            values, finite = self._convert(array)
        if values.ndim == 0 or values.shape[-1] != info.input_size:
            got = "a scalar" if values.ndim == 0 else f"last dimension {values.shape[-1]}"
            raise UsageError(
                f"{info.path.name}: expected input of shape [..., {info.input_size}], got {got} "
                f"(shape {list(values.shape)})"
            )
        if not finite:
            raise UsageError(f"{info.path.name}: the input contains NaN or Inf")
        leading = tuple(values.shape[:-1])
        if values.ndim != 2:
            values = values.reshape(-1, info.input_size)
        if isinstance(values, np.ndarray) and not values.flags.c_contiguous:
            values = np.ascontiguousarray(values)
        return values, leading

    def _convert(self, array: Any) -> tuple[Any, bool]:
        """Torch tensors and array-likes: the dtype must already be the graph's (never cast)."""
        tensor = torch_tensor_type()
        if tensor is not None and isinstance(array, tensor):
            name = str(array.dtype).removeprefix("torch.")
            dtype = np.dtype(name) if name in ("float16", "float32", "float64") else None
            values = array.detach()
        else:
            values = np.asarray(array)
            if values.dtype.kind == "f" and not values.dtype.isnative:
                values = values.astype(values.dtype.newbyteorder("="))  # the same numbers
            dtype = values.dtype if values.dtype.kind == "f" else None
        if dtype != self.info.dtype:
            actual = (
                dtype.name
                if dtype is not None
                else str(getattr(array, "dtype", type(array).__name__))
            )
            raise UsageError(
                f"{self.info.path.name}: expected {self.info.dtype.name} input, got {actual}"
            )
        if isinstance(values, np.ndarray):
            return values, bool(np.isfinite(values).all())
        return values, bool(values.isfinite().all())

    def _check_solver(self, solver: dict[str, Any]) -> dict[str, Any]:
        """:func:`check_solver_inputs` of ``solver``, once per distinct value (the result is
        shared: never change it)."""
        if not solver:  # the model's own settings: nothing to check
            return solver
        key = _solver_key(solver)
        checked = self._checked_solver.get(key) if key is not None else None
        if checked is None:
            checked = check_solver_inputs(self.info, solver)
            if key is not None:
                _remember(self._checked_solver, key, checked)
        return checked

    def solver_feeds(self, solver: dict[str, Any]) -> dict[str, np.ndarray]:
        """Solver overrides as the scalar tensors the inverse graph takes (a new dict; its
        arrays are read-only and shared between calls)."""
        if not solver:
            return {}
        key = _solver_key(solver)
        arrays = self._solver_arrays.get(key) if key is not None else None
        if arrays is None:
            arrays = {}
            if "maxiter" in solver:
                arrays["maxiter"] = np.array(int(solver["maxiter"]), np.int64)
            for name in ("atol", "rtol"):
                if name in solver:
                    arrays[name] = np.array(solver[name], self.info.dtype)
            for value in arrays.values():
                value.flags.writeable = False
            if key is not None:
                _remember(self._solver_arrays, key, arrays)
        return dict(arrays)


MEMO_SIZE = 16
"""The most distinct solver settings a session remembers (a caller sweeping tolerances would
otherwise grow the memo without end)."""


def _solver_key(solver: dict[str, Any]) -> tuple | None:
    """A hashable key for solver settings, by name, type and value (``True`` and ``1`` differ), or
    None for a value that cannot be one (it is checked, and refused, every time)."""
    key = tuple(sorted((name, type(value), value) for name, value in solver.items()))
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _remember(memo: dict, key: tuple, value: Any) -> None:
    if len(memo) >= MEMO_SIZE:
        memo.clear()
    memo[key] = value


THREADS_VARIABLE = "IRESNET_ONNX_THREADS"
"""The environment variable that sets the thread count of every session that is not given one
(onnxruntime, OpenVINO, Node.js, the browser): where several processes share the cores (a test
suite's workers, a server's replicas), each runtime's own default of one thread per core makes
their waiting threads spin on cores the others need."""


def check_threads(threads: Any, owner: str) -> int | None:
    """``threads`` as an int in 1…(the CPUs here); for None, :data:`THREADS_VARIABLE` where it is
    set, else None (the runtime's default). A :class:`UsageError` otherwise. More threads than CPUs
    never run faster, and a runtime asked for a million threads tries to create them."""
    if threads is None:
        value = os.environ.get(THREADS_VARIABLE, "").strip()
        if not value:
            return None
        threads, owner = (int(value) if value.isdecimal() else value), THREADS_VARIABLE
    cpus = os.cpu_count() or 1
    if (
        isinstance(threads, bool)
        or not isinstance(threads, numbers.Integral)
        or not 1 <= threads <= cpus
    ):
        raise UsageError(
            f"{owner}: threads must be an int in 1…{cpus} (the CPUs here), got {threads!r}"
        )
    return int(threads)
