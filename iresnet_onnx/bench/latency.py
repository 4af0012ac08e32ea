"""Latency benchmarks: an export folder against eager PyTorch (``bench_export``), and the
performance suite (``bench_suite``): the baseline a user would write instead of deploying (plain
PyTorch with A′ precomputed by ``torch.linalg.matrix_norm``, ``torch.no_grad()`` and a Python
fixed-point loop with a max-reduction test) against the package's eager model, its TorchScript
version and onnxruntime in loop and folded mode, on equal thread counts.
"""

import copy
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import runtimes as rt
from ..errors import UnsupportedModelError
from ..iresnet import ConvergenceWarning
from .models import Baseline, suite_model, torch_threads
from .timing import BenchRow, format_matrix, machine, repeats_for, rows_to_dicts, time_in_blocks

__all__ = ["BASELINE", "bench_export", "bench_suite", "suite_report", "targets"]

log = logging.getLogger(__name__)


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
    export_dir = Path(export_dir)
    names = runtimes or [n for n in rt.available() if not n.startswith(("torch:", "reference:"))]
    with torch_threads(threads):
        sessions = {}
        for direction in ("forward", "inverse"):
            path = export_dir / f"{direction}.onnx"
            sessions[("torch:cpu", direction)] = rt.load(path, "torch", "cpu")
            for name in names:
                runtime, device = rt.parse_runtime(name)
                options = {"threads": threads} if runtime in ("onnxruntime", "openvino") else {}
                try:
                    sessions[(name, direction)] = rt.load(path, runtime, device, **options)
                except UnsupportedModelError:
                    log.debug("bench: %s cannot run %s, left out", name, path.name)
        width = sessions[("torch:cpu", "forward")].info.input_size
        dtype = sessions[("torch:cpu", "forward")].info.dtype
        rows = []
        cases = [(d, b) for d in ("forward", "inverse") for b in batches]
        for direction, batch in tqdm(cases, desc="bench", disable=not progress):
            data = _inputs(batch, width, dtype, seed)
            count = repeats_for(batch, width, repeats)
            timings = time_in_blocks(
                {
                    name: (lambda s=sessions[(name, direction)], x=data: s.run_all(x))
                    for name in ["torch:cpu", *names]
                    if (name, direction) in sessions
                },
                count,
            )
            eager = timings.pop("torch:cpu")
            rows.append(BenchRow.of("torch eager", direction, width, batch, eager, eager))
            for name, timing in timings.items():
                steps = None
                if direction == "inverse":
                    steps = float(sessions[(name, direction)].run_all(data)["iterations"].mean())
                rows.append(BenchRow.of(name, direction, width, batch, timing, eager, steps))
        return rows


def bench_suite(
    widths: tuple[int, ...] = (16, 64, 256),
    batches: tuple[int, ...] = (1, 64, 1024),
    threads: int = 2,
    repeats: int = 100,
    solver: dict[str, Any] | None = None,
    steps_per_check: tuple[int, ...] = (1, 8),
    progress: bool = True,
    seed: int = 0,
) -> list[BenchRow]:
    """The performance benchmark (see the module docstring); ratio = baseline / implementation.

    onnxruntime runs loop and folded exports; for each ``steps_per_check`` K > 1 the inverse is also
    timed with K fixed-point steps per Loop iteration (rows "… K=8").
    """
    from .pipeline import export

    solver = solver or {"maxiter": 100, "atol": 1e-6, "rtol": 1e-6}
    with torch_threads(threads):
        rows: list[BenchRow] = []
        bar = tqdm(total=len(widths) * len(batches), desc="benchmark", disable=not progress)
        for width in widths:
            model = suite_model(width, seed=seed)
            baseline = Baseline(model)
            scripted = torch.jit.script(copy.deepcopy(model))
            with tempfile.TemporaryDirectory() as tmp:
                sessions: dict[tuple[str, str], Any] = {}
                for mode in ("loop", "folded"):
                    for k in steps_per_check:
                        label = f"onnxruntime {mode}" + (f" K={k}" if k > 1 else "")
                        out = Path(tmp) / f"{mode}-{k}"
                        export(model, out, spectral_norm=mode, steps_per_check=k, validate=False)
                        directions = ("forward", "inverse") if k == 1 else ("inverse",)
                        for direction in directions:
                            sessions[(label, direction)] = rt.load(
                                out / f"{direction}.onnx", "onnxruntime", "cpu", threads=threads
                            )
                for batch in batches:
                    rows += _bench_case(
                        model, scripted, baseline, sessions, width, batch, solver, repeats, seed
                    )
                    bar.update()
        bar.close()
        return rows


def _bench_case(
    model, scripted, baseline, sessions, width, batch, solver, repeats, seed
) -> list[BenchRow]:
    data = _inputs(batch, width, np.float32, seed)
    tensor = torch.from_numpy(data)
    count = repeats_for(batch, width, repeats)
    maxiter, atol, rtol = solver["maxiter"], solver["atol"], solver["rtol"]
    candidates = {
        "forward": {
            BASELINE: lambda: baseline.forward(tensor),
            "iresnet_onnx eager": lambda: model(tensor),
            "iresnet_onnx TorchScript": lambda: scripted(tensor),
        },
        "inverse": {
            BASELINE: lambda: baseline.inverse(tensor, maxiter, atol, rtol),
            "iresnet_onnx eager": lambda: model.inverse(tensor, maxiter, atol, rtol),
            "iresnet_onnx TorchScript": lambda: scripted.inverse(tensor, maxiter, atol, rtol),
        },
    }
    for (label, direction), session in sessions.items():
        options = solver if direction == "inverse" else {}
        candidates[direction][label] = lambda s=session, o=options: s.run(data, **o)
    rows = []
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)  # TorchScript's copy of the warning
        for direction, implementations in candidates.items():
            timings = time_in_blocks(implementations, count)
            for name, timing in timings.items():
                steps = None
                if (name, direction) in sessions and direction == "inverse":
                    run = sessions[(name, direction)].run_all(data, **solver)
                    steps = float(run["iterations"].mean())
                rows.append(
                    BenchRow.of(name, direction, width, batch, timing, timings[BASELINE], steps)
                )
    return rows


BASELINE = "baseline (torch, A′ precomputed)"

TARGETS = (
    # (what, implementation, direction, batch, minimum ratio to the baseline)
    ("folded forward B=1", "onnxruntime folded", "forward", 1, 4.0),
    ("folded inverse B=1", "onnxruntime folded", "inverse", 1, 6.0),
    ("folded forward B=1024", "onnxruntime folded", "forward", 1024, 1.5),
    ("folded inverse B=1024", "onnxruntime folded", "inverse", 1024, 1.5),
    ("loop forward B=1", "onnxruntime loop", "forward", 1, 1.0),
    ("loop inverse B=1", "onnxruntime loop", "inverse", 1, 4.0),
)


def targets(rows: list[BenchRow], width: int = 64, fast_k: int = 8) -> list[dict[str, Any]]:
    """The performance targets at ``width``: measured value, target and whether it holds.

    Inverse targets are reported for K = 1 (exact eager step counts) and K = ``fast_k``.
    """
    table = {(r.implementation, r.direction, r.batch): r for r in rows if r.width == width}
    results = []

    def add(what: str, value: float, target: float, higher_is_better: bool = True) -> None:
        met = value >= target if higher_is_better else value <= target
        results.append({"what": what, "value": round(value, 3), "target": target, "met": met})

    for what, name, direction, batch, minimum in TARGETS:
        for suffix in ("", f" K={fast_k}") if direction == "inverse" else ("",):
            row = table.get((name + suffix, direction, batch))
            if row is not None:
                add(what + suffix, row.ratio, minimum)
    eager = table.get(("iresnet_onnx eager", "forward", 1))
    if eager is not None:
        add("eager forward B=1 time / baseline", 1 / eager.ratio, 2.0, higher_is_better=False)
    forward = table.get(("onnxruntime folded", "forward", 1))
    for suffix in ("", f" K={fast_k}"):
        inverse = table.get(("onnxruntime folded" + suffix, "inverse", 1))
        if forward is not None and inverse is not None and inverse.iterations:
            efficiency = inverse.median_us / (inverse.iterations * forward.median_us)
            add("inverse efficiency folded B=1" + suffix, efficiency, 1.2, higher_is_better=False)
    return results


def suite_report(
    rows: list[BenchRow], widths: tuple[int, ...], repeats: int, threads: int, fast_k: int
) -> tuple[str, dict[str, Any]]:
    """The performance suite as markdown (a matrix per width, then the targets) and as data."""
    width = 64 if 64 in widths else widths[0]
    goals = targets(rows, width=width, fast_k=fast_k)
    about = machine()
    lines = [
        f"Median latency over up to {repeats} calls per cell (fewer for the largest: "
        f"repeats·16384/(batch·n), at least 5), taken in turns; {threads} threads for torch and "
        f"onnxruntime; ratio = baseline time / implementation time in the same run.",
        f"Machine: {about['cpu']}, {about['cores']} CPUs, Python {about['python']}, "
        f"torch {about['torch']}, onnxruntime {about['onnxruntime']}.",
        "",
        *(format_matrix(rows, w) + "\n" for w in widths),
        f"Targets (n = {width}):",
        "",
        "| target | measured | goal | |",
        "|---|---:|---:|---|",
        *(
            f"| {g['what']} | {g['value']:.2f} | {g['target']} | {'met' if g['met'] else 'missed'} |"
            for g in goals
        ),
    ]
    data = {"machine": about, "threads": threads, "rows": rows_to_dicts(rows), "targets": goals}
    return "\n".join(lines), data
