"""Latency benchmarks: medians over repeats, ratios against a baseline measured in the same run.

``bench_export`` times an export folder: eager PyTorch (its checkpoint) against every runtime.
``bench_suite`` is the performance benchmark: the *baseline* a user would write instead of
deploying (plain PyTorch with A′ precomputed by ``torch.linalg.matrix_norm``, ``torch.no_grad()``
and a Python fixed-point loop with a max-reduction test) against the package's eager model, its
TorchScript version and onnxruntime in loop and folded mode, on equal thread counts.
"""

import copy
import logging
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional
from tqdm.auto import tqdm

from . import runtimes as rt
from .iresnet import ConvergenceWarning, iResNet
from .layers import LinearContraction

__all__ = ["BenchRow", "bench_export", "bench_suite", "format_table", "machine"]

log = logging.getLogger(__name__)


@dataclass
class BenchRow:
    implementation: str
    direction: str
    width: int
    batch: int
    median_us: float
    ratio: float | None = None
    """baseline time / this time, from the same run (> 1: faster than the baseline)."""
    iterations: float | None = None
    """Mean fixed-point steps per block (inverse rows)."""


def median_seconds(fn: Callable[[], Any], repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def repeats_for(batch: int, width: int, repeats: int) -> int:
    """Fewer repeats for the big cases, so a full suite stays within a few minutes."""
    return max(5, repeats // max(1, (batch * width) // 16384))


def machine() -> dict[str, Any]:
    import onnxruntime

    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def format_table(rows: list[BenchRow]) -> str:
    """A markdown table of the rows."""
    lines = [
        "| implementation | direction | width | batch | median µs | ratio to baseline | steps/block |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        ratio = "" if row.ratio is None else f"{row.ratio:.2f}×"
        steps = "" if row.iterations is None else f"{row.iterations:.1f}"
        lines.append(
            f"| {row.implementation} | {row.direction} | {row.width} | {row.batch} | "
            f"{row.median_us:,.1f} | {ratio} | {steps} |"
        )
    return "\n".join(lines)


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
    """Eager PyTorch (the folder's checkpoint) against each runtime; ratio = eager / runtime."""
    export_dir = Path(export_dir)
    names = runtimes or [n for n in rt.available() if not n.startswith(("torch:", "reference:"))]
    torch.set_num_threads(threads)
    sessions = {}
    for direction in ("forward", "inverse"):
        path = export_dir / f"{direction}.onnx"
        sessions[("torch:cpu", direction)] = rt.load(path, "torch", "cpu")
        for name in names:
            runtime, device = rt.parse_runtime(name)
            options = {"threads": threads} if runtime == "onnxruntime" else {}
            sessions[(name, direction)] = rt.load(path, runtime, device, **options)
    width = sessions[("torch:cpu", "forward")].info.input_size
    dtype = sessions[("torch:cpu", "forward")].info.dtype
    rows = []
    cases = [(d, b) for d in ("forward", "inverse") for b in batches]
    for direction, batch in tqdm(cases, desc="bench", disable=not progress):
        data = _inputs(batch, width, dtype, seed)
        count = repeats_for(batch, width, repeats)
        eager_session = sessions[("torch:cpu", direction)]
        eager = median_seconds(lambda s=eager_session, x=data: s.run(x), count)
        rows.append(BenchRow("torch eager", direction, width, batch, eager * 1e6, 1.0))
        for name in names:
            session = sessions[(name, direction)]
            seconds = median_seconds(lambda s=session, x=data: s.run(x), count)
            steps = None
            if direction == "inverse":
                steps = float(session.run_all(data)["iterations"].mean())
            rows.append(
                BenchRow(name, direction, width, batch, seconds * 1e6, eager / seconds, steps)
            )
    return rows


class Baseline:
    """What a user would write instead of deploying: A′ once, then plain tensor code."""

    def __init__(self, model: iResNet):
        self.blocks = []
        with torch.no_grad():
            for block in model.blocks:
                layers = []
                for module in block.bottleneck:
                    if isinstance(module, LinearContraction):
                        sigma = torch.linalg.matrix_norm(module.weight, 2)
                        weight = module.weight * torch.clamp(module.c / sigma, max=1.0)
                        layers.append((weight.clone(), module.bias))
                    else:
                        layers.append(module)
                self.blocks.append(layers)

    @staticmethod
    def _g(layers: list, x: torch.Tensor) -> torch.Tensor:
        for layer in layers:
            x = functional.linear(x, *layer) if isinstance(layer, tuple) else layer(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            for layers in self.blocks:
                x = x + self._g(layers, x)
            return x

    def inverse(self, y: torch.Tensor, maxiter: int, atol: float, rtol: float) -> torch.Tensor:
        with torch.no_grad():
            for layers in reversed(self.blocks):
                x = y
                for _ in range(maxiter):
                    x_next = y - self._g(layers, x)
                    residual = torch.amax(torch.abs(x_next - x) - rtol * torch.abs(x))
                    x = x_next
                    if residual.item() <= atol:
                        break
                y = x
            return y


def suite_model(width: int, nblocks: int = 5, scale: float = 10.0, seed: int = 0) -> iResNet:
    """The benchmark's model: default HP, weights ×``scale`` so the contraction bites."""
    torch.manual_seed(seed)
    model = iResNet(width, nblocks=nblocks)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("weight"):
                parameter.mul_(scale)
    return model.eval()


def bench_suite(
    widths: tuple[int, ...] = (16, 64, 256),
    batches: tuple[int, ...] = (1, 64, 1024),
    threads: int = 2,
    repeats: int = 100,
    solver: dict[str, Any] | None = None,
    export_options: dict[str, Any] | None = None,
    progress: bool = True,
    seed: int = 0,
) -> list[BenchRow]:
    """The performance benchmark (see the module docstring); ratio = baseline / implementation."""
    from .exporters import export

    solver = solver or {"maxiter": 100, "atol": 1e-6, "rtol": 1e-6}
    torch.set_num_threads(threads)
    rows: list[BenchRow] = []
    cases = [(w, b) for w in widths for b in batches]
    bar = tqdm(total=len(cases), desc="benchmark", disable=not progress)
    for width in widths:
        model = suite_model(width, seed=seed)
        baseline = Baseline(model)
        scripted = torch.jit.script(copy.deepcopy(model))
        with tempfile.TemporaryDirectory() as tmp:
            sessions = {}
            for mode in ("loop", "folded"):
                out = Path(tmp) / mode
                export(model, out, spectral_norm=mode, validate=False, **(export_options or {}))
                for direction in ("forward", "inverse"):
                    sessions[(mode, direction)] = rt.load(
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
    rows = []
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)  # TorchScript's copy of the warning
        implementations = {
            "forward": {
                "baseline (torch, A′ precomputed)": lambda: baseline.forward(tensor),
                "iresnet_onnx eager": lambda: model(tensor),
                "iresnet_onnx TorchScript": lambda: scripted(tensor),
                "onnxruntime loop": lambda: sessions[("loop", "forward")].run(data),
                "onnxruntime folded": lambda: sessions[("folded", "forward")].run(data),
            },
            "inverse": {
                "baseline (torch, A′ precomputed)": lambda: baseline.inverse(
                    tensor, maxiter, atol, rtol
                ),
                "iresnet_onnx eager": lambda: model.inverse(tensor, maxiter, atol, rtol),
                "iresnet_onnx TorchScript": lambda: scripted.inverse(tensor, maxiter, atol, rtol),
                "onnxruntime loop": lambda: sessions[("loop", "inverse")].run(data, **solver),
                "onnxruntime folded": lambda: sessions[("folded", "inverse")].run(data, **solver),
            },
        }
        for direction, candidates in implementations.items():
            base = None
            for name, fn in candidates.items():
                seconds = median_seconds(fn, count)
                base = base or seconds
                steps = None
                if direction == "inverse" and name.startswith("onnxruntime"):
                    mode = name.split()[-1]
                    steps = float(
                        sessions[(mode, "inverse")].run_all(data, **solver)["iterations"].mean()
                    )
                rows.append(
                    BenchRow(name, direction, width, batch, seconds * 1e6, base / seconds, steps)
                )
    return rows


def rows_to_dicts(rows: list[BenchRow]) -> list[dict[str, Any]]:
    return [asdict(row) for row in rows]
