"""Latency benchmarks: an export folder against eager PyTorch (``bench_export``), and the
performance suite (``bench_suite``): the baseline a user would write instead of deploying (plain
PyTorch with A′ precomputed by ``torch.linalg.matrix_norm``, ``torch.no_grad()`` and a Python
fixed-point loop with a max-reduction test) against the package's eager model, its TorchScript
version, its frozen form (``freeze``) and onnxruntime in loop and folded mode, on equal thread
counts; and the eval inverse with autograd on, the way a training loop that decodes calls it.
"""

import copy
import logging
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import runtimes as rt
from .._layout import graph_file
from ..errors import UnsupportedModelError, UsageError
from ..parity import BATCH_LIMIT
from ._models import Baseline, suite_model, torch_threads
from ._timing import (
    UNSTABLE_RANGE,
    BenchRow,
    Timing,
    format_matrix,
    machine,
    ratio,
    repeats_for,
    rows_to_dicts,
    time_in_blocks,
)

__all__ = [
    "BASELINE",
    "DEFAULT_EXPORT",
    "EXACT_EXPORT",
    "FOLDED_EXPORT",
    "FROZEN",
    "WITH_GRAD",
    "bench_export",
    "bench_suite",
    "suite_report",
]

log = logging.getLogger(__name__)


def _check_batches(batches: tuple[int, ...]) -> None:
    """Batch sizes a benchmark can allocate, refused before any work (1e12 rows would not fit)."""
    if not batches or any(not 1 <= int(b) <= BATCH_LIMIT for b in batches):
        raise UsageError(f"batch sizes must lie in 1…{BATCH_LIMIT:,}, got {tuple(batches)!r}")


def _inputs(batch: int, width: int, dtype: np.dtype, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, width)).astype(dtype)


def bench_export(
    export_dir: str | Path,
    batches: tuple[int, ...] = (1, 64, 1024),
    runtimes: list[str] | None = None,
    repeats: int = 50,
    threads: int = 2,
    seed: int = 0,
    progress: bool = False,
) -> list[BenchRow]:
    """Eager PyTorch (the folder's checkpoint) against each runtime; ratio = eager / runtime.

    By default every runtime installed here but the reference evaluator; a graph a runtime cannot
    run (tract and a Loop) is left out of its rows, with a log line saying why.
    """
    _check_batches(batches)
    export_dir = Path(export_dir)
    names = runtimes or [n for n in rt.available() if not n.startswith(("torch:", "reference:"))]
    with torch_threads(threads):
        sessions = {}
        for graph in ("forward", "inverse"):
            path = graph_file(export_dir, graph)
            sessions[("torch:cpu", graph)] = rt.load(path, "torch", "cpu")
            for name in names:
                runtime, device = rt.parse_runtime(name)
                options = {"threads": threads} if runtime in ("onnxruntime", "openvino") else {}
                try:
                    sessions[(name, graph)] = rt.load(path, runtime, device, **options)
                except UnsupportedModelError:
                    log.debug("bench: %s cannot run %s, left out", name, path.name)
        width = sessions[("torch:cpu", "forward")].info.input_size
        dtype = sessions[("torch:cpu", "forward")].info.dtype
        rows = []
        cases = [(d, b) for d in ("forward", "inverse") for b in batches]
        for graph, batch in tqdm(cases, desc="bench", disable=not progress):
            data = _inputs(batch, width, dtype, seed)
            count = repeats_for(batch, width, repeats)
            timings = time_in_blocks(
                {
                    name: (lambda s=sessions[(name, graph)], x=data: s.run_all(x))
                    for name in ["torch:cpu", *names]
                    if (name, graph) in sessions
                },
                count,
            )
            eager = timings.pop("torch:cpu")
            rows.append(BenchRow.of("torch eager", graph, width, batch, eager, eager))
            for name, timing in timings.items():
                steps = None
                if graph == "inverse":
                    steps = float(sessions[(name, graph)].run_all(data)["iterations"].mean())
                rows.append(BenchRow.of(name, graph, width, batch, timing, eager, steps))
        return rows


BASELINE = "baseline (torch, A′ precomputed)"
DEFAULT_EXPORT = "onnxruntime (default export)"
EXACT_EXPORT = "onnxruntime K=1 (eager's steps)"
FOLDED_EXPORT = "onnxruntime folded"
FROZEN = "iresnet_onnx frozen"
WITH_GRAD = "iresnet_onnx eager, autograd on"
ATTEMPTS = 3
"""A cell whose ratios are unstable (see :data:`.timing.UNSTABLE_RANGE`) is measured up to this
many times; the steadiest attempt is reported, with the count."""


def bench_suite(
    widths: tuple[int, ...] = (16, 64, 256),
    batches: tuple[int, ...] = (1, 64, 1024),
    threads: int = 2,
    repeats: int = 100,
    solver: dict[str, Any] | None = None,
    progress: bool = True,
    seed: int = 0,
) -> list[BenchRow]:
    """The performance benchmark (see the module docstring); ratio = baseline / implementation.

    Per width and batch: the baseline, the package's eager model, its TorchScript version and its
    frozen form, the eager inverse with autograd on (eval mode, weights requiring grad), and
    onnxruntime on the default export (loop-mode spectral norm, K chosen by the model), a folded
    one, and the K = 1 export that stops every row exactly where eager does. Each cell also gets
    its roofline (the GEMMs alone) and, for the inverse, the mean and largest per-row step counts.
    """
    from .._export import export
    from .._frozen import freeze

    _check_batches(batches)
    solver = solver or {"maxiter": 100, "atol": 1e-6, "rtol": 1e-6}
    with torch_threads(threads):
        rows: list[BenchRow] = []
        bar = tqdm(total=len(widths) * len(batches), desc="benchmark", disable=not progress)
        for width in widths:
            model = suite_model(width, seed=seed)
            baseline = Baseline(model)
            scripted = torch.jit.script(copy.deepcopy(model))
            frozen = freeze(model)
            with tempfile.TemporaryDirectory() as tmp:
                sessions: dict[str, dict[str, Any]] = {}
                for label, options in (
                    (DEFAULT_EXPORT, {}),
                    (FOLDED_EXPORT, {"spectral_norm": "folded"}),
                    (EXACT_EXPORT, {"steps_per_check": 1}),
                ):
                    out = Path(tmp) / str(len(sessions))
                    export(model, out, validate=False, **options)
                    sessions[label] = {
                        graph: rt.load(
                            graph_file(out, graph), "onnxruntime", "cpu", threads=threads
                        )
                        for graph in ("forward", "inverse")
                    }
                for batch in batches:
                    rows += _bench_case(
                        model, scripted, frozen, baseline, sessions, width, batch, solver, repeats,
                        seed,
                    )  # fmt: skip
                    bar.update()
        bar.close()
        return rows


def _bench_case(
    model, scripted, frozen, baseline, sessions, width, batch, solver, repeats, seed
) -> list[BenchRow]:
    data = _inputs(batch, width, np.float32, seed)
    tensor = torch.from_numpy(data)
    count = repeats_for(batch, width, repeats)
    maxiter, atol, rtol = solver["maxiter"], solver["atol"], solver["rtol"]
    candidates: dict[str, dict[str, Any]] = {
        "forward": {
            BASELINE: lambda: baseline.forward(tensor),
            "iresnet_onnx eager": lambda: model(tensor),
            "iresnet_onnx TorchScript": lambda: scripted(tensor),
            FROZEN: lambda: frozen(tensor),
        },
        "inverse": {
            BASELINE: lambda: baseline.inverse(tensor, maxiter, atol, rtol),
            "iresnet_onnx eager": lambda: model.inverse_with_stats(tensor, maxiter, atol, rtol),
            "iresnet_onnx TorchScript": (
                lambda: scripted.inverse_with_stats(tensor, maxiter, atol, rtol)
            ),
            FROZEN: lambda: frozen.inverse_with_stats(tensor, maxiter, atol, rtol),
            WITH_GRAD: lambda: _with_grad(model.inverse_with_stats, tensor, maxiter, atol, rtol),
        },
    }
    for label, pair in sessions.items():
        if label != EXACT_EXPORT:
            candidates["forward"][label] = lambda s=pair["forward"]: s.run_all(data)
        candidates["inverse"][label] = lambda s=pair["inverse"]: s.run_all(data, **solver)
    mean_steps, max_steps = row_steps(sessions[EXACT_EXPORT]["inverse"], data, solver)
    gemm = gemm_roofline(baseline, batch, width)
    rooflines = {"forward": gemm, "inverse": gemm * mean_steps / len(baseline.blocks)}
    rows = []
    with torch.no_grad():
        for graph, implementations in candidates.items():
            timings, attempts = _steadiest(implementations, count)
            for name, timing in timings.items():
                steps = None
                if name in sessions and graph == "inverse":
                    steps = float(
                        sessions[name]["inverse"].run_all(data, **solver)["iterations"].mean()
                    )
                row = BenchRow.of(name, graph, width, batch, timing, timings[BASELINE], steps)
                row.roofline_us, row.attempts = rooflines[graph] * 1e6, attempts
                if graph == "inverse":
                    row.row_steps_mean, row.row_steps_max = mean_steps, max_steps
                rows.append(row)
    return rows


def _with_grad(function, *args):
    """The call as a training loop makes it: autograd on (the cases are timed under no_grad)."""
    with torch.enable_grad():
        return function(*args)


def _steadiest(candidates: dict[str, Any], count: int) -> tuple[dict[str, Timing], int]:
    """Time the candidates; while their ratios to the baseline disagree over rounds by more than
    UNSTABLE_RANGE, time them again (at most ATTEMPTS times) and keep the steadiest attempt."""
    best, best_spread, attempts = None, math.inf, 0
    while attempts < ATTEMPTS and best_spread > UNSTABLE_RANGE:
        timings = time_in_blocks(candidates, count)
        attempts += 1
        spread = max(_range(timings[BASELINE], timing) for timing in timings.values())
        if spread < best_spread:
            best, best_spread = timings, spread
    return best, attempts


def _range(reference: Timing, timing: Timing) -> float:
    _, low, high = ratio(reference, timing)
    return high / low if low > 0 else math.inf


def row_steps(
    exact_inverse: rt.Session, data: np.ndarray, solver: dict[str, Any]
) -> tuple[float, float]:
    """Mean and largest fixed-point steps per row and block (summed over blocks): each row alone
    through the K = 1 graph, which stops every row where eager does."""
    counts = np.array([exact_inverse.run_all(row[None], **solver)["iterations"] for row in data])
    total = counts.sum(axis=1)
    return float(total.mean()), float(total.max())


def gemm_roofline(baseline: Baseline, batch: int, width: int, calls: int = 200) -> float:
    """Seconds for the forward pass's GEMMs alone (``torch.addmm`` into preallocated outputs, a
    tight loop, the median of five blocks): the limit a forward at this batch can approach. The
    inverse's limit is that, per block, times the mean per-row step count."""
    x = torch.randn(batch, width)
    plans = []
    for layers in baseline.blocks:
        h = x
        for layer in layers:
            if isinstance(layer, tuple):
                weight, bias = layer
                out = torch.empty(batch, weight.shape[0])
                plans.append((bias.detach(), h, weight.t(), out))
                h = out

    def gemms() -> None:
        for bias, inputs, weight_t, out in plans:
            torch.addmm(bias, inputs, weight_t, out=out)

    times = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(calls):
            gemms()
        times.append((time.perf_counter() - started) / calls)
    return statistics.median(times)


def suite_report(
    rows: list[BenchRow], widths: tuple[int, ...], repeats: int, threads: int
) -> tuple[str, dict[str, Any]]:
    """The performance suite as markdown (a matrix per width, then the targets) and as data."""
    about = machine()
    lines = [
        f"Each cell: median latency over up to {repeats} calls (fewer for the largest cells: "
        f"repeats·16384/(batch·n), at least 5), each candidate timed in its own block after a "
        f"pause, in 5 rounds; the ratio is baseline time / implementation time, the median of the "
        f"per-round ratios, with their range; ⚠ marks a cell whose rounds disagree by more than "
        f"1.5× after {ATTEMPTS} attempts. {threads} threads for torch and onnxruntime; glibc's "
        f"malloc thresholds fixed (mmap 256 MiB, trim 512 MiB). Roofline: the forward's GEMMs "
        f"alone (torch.addmm into preallocated outputs), times the mean per-row step count for "
        f"the inverse; % = roofline / measured.",
        f"Machine: {about['cpu']}, {about['cores']} CPUs, Python {about['python']}, "
        f"torch {about.get('torch')}, onnxruntime {about.get('onnxruntime')}.",
        "",
        *(format_matrix(rows, w) + "\n" for w in widths),
    ]
    data = {"machine": about, "threads": threads, "rows": rows_to_dicts(rows)}
    return "\n".join(lines), data
