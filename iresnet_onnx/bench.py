"""Latency benchmarks: medians over repeats, ratios against a baseline measured in the same run.

``bench_export`` times an export folder: eager PyTorch (its checkpoint) against every runtime.
``bench_suite`` is the performance benchmark: the *baseline* a user would write instead of
deploying (plain PyTorch with A′ precomputed by ``torch.linalg.matrix_norm``, ``torch.no_grad()``
and a Python fixed-point loop with a max-reduction test) against the package's eager model, its
TorchScript version and onnxruntime in loop and folded mode, on equal thread counts.
"""

import contextlib
import copy
import logging
import os
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
from .errors import UnsupportedModelError
from .iresnet import ConvergenceWarning, iResNet
from .layers import LinearContraction

__all__ = [
    "BenchRow",
    "bench_export",
    "bench_suite",
    "format_matrix",
    "format_table",
    "machine",
    "suite_report",
    "targets",
]

log = logging.getLogger(__name__)


UNSTABLE_RANGE = 1.5
"""A ratio whose rounds disagree by more than this factor (max/min) is flagged unstable."""


@dataclass(frozen=True)
class Timing:
    """Seconds per call of one candidate: the median over every timed call, the 10th and 90th
    percentiles, and the median of each round (for ratios per round)."""

    median: float
    low: float
    high: float
    rounds: tuple[float, ...]


def time_in_blocks(
    fns: dict[str, Callable[[], Any]],
    calls: int,
    rounds: int = 5,
    warmup: int = 1,
    pause: float = 0.02,
) -> dict[str, Timing]:
    """Time each function in ``rounds`` rounds; within a round each runs in its own block of
    ``calls / rounds`` back-to-back calls after a short pause, the first ``warmup`` untimed.

    Blocks, not call-by-call turns: alternating torch and onnxruntime call by call lets each
    one's spinning worker threads slow the other. Rounds, not one block each: the machine's load
    drifts, and a ratio taken within each round sees the same drift on both sides.
    """
    samples: dict[str, list[float]] = {name: [] for name in fns}
    per_round: dict[str, list[float]] = {name: [] for name in fns}
    per_block = max(1, -(-calls // rounds))
    for _ in range(rounds):
        for name, fn in fns.items():
            time.sleep(pause)  # let the previous candidate's worker threads go idle
            for _ in range(warmup):
                fn()
            block = []
            for _ in range(per_block):
                started = time.perf_counter()
                fn()
                block.append(time.perf_counter() - started)
            samples[name] += block
            per_round[name].append(statistics.median(block))
    result = {}
    for name, values in samples.items():
        low, high = np.percentile(values, [10, 90])
        result[name] = Timing(
            statistics.median(values), float(low), float(high), tuple(per_round[name])
        )
    return result


def ratio(reference: Timing, candidate: Timing) -> tuple[float, float, float]:
    """reference / candidate: the median of the per-round ratios, and their min and max."""
    ratios = [r / c for r, c in zip(reference.rounds, candidate.rounds)]
    return statistics.median(ratios), min(ratios), max(ratios)


@dataclass
class BenchRow:
    implementation: str
    direction: str
    width: int
    batch: int
    median_us: float
    ratio: float | None = None
    """reference time / this time, median over rounds of the same run (> 1: faster)."""
    iterations: float | None = None
    """Mean fixed-point steps per block (inverse rows)."""
    p10_us: float | None = None
    p90_us: float | None = None
    ratio_low: float | None = None
    ratio_high: float | None = None

    @property
    def unstable(self) -> bool:
        """Whether the rounds disagree on the ratio by more than :data:`UNSTABLE_RANGE`."""
        if self.ratio_low is None or self.ratio_high is None or self.ratio_low <= 0:
            return False
        return self.ratio_high / self.ratio_low > UNSTABLE_RANGE

    @classmethod
    def of(
        cls, name: str, direction: str, width: int, batch: int, timing: Timing,
        reference: Timing, iterations: float | None = None,
    ) -> "BenchRow":  # fmt: skip
        middle, low, high = ratio(reference, timing)
        return cls(
            name, direction, width, batch, timing.median * 1e6, middle, iterations,
            timing.low * 1e6, timing.high * 1e6, low, high,
        )  # fmt: skip


def repeats_for(batch: int, width: int, repeats: int) -> int:
    """Fewer repeats for the big cases, so a full suite stays within a few minutes."""
    return max(5, repeats // max(1, (batch * width) // 16384))


def machine() -> dict[str, Any]:
    import onnxruntime

    return {
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@contextlib.contextmanager
def torch_threads(threads: int):
    """torch's intra-op thread count for a benchmark, restored afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def format_table(rows: list[BenchRow], reference: str = "baseline") -> str:
    """A markdown table of the rows; ``reference`` names what the ratios compare against. Spread:
    the 10th–90th percentile of the calls; the ratio's range over rounds; ⚠ marks unstable cells."""
    lines = [
        f"| implementation | direction | width | batch | median µs (p10–p90) | ratio to {reference} "
        "(range over rounds) | steps/block |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        spread = "" if row.p10_us is None else f" ({row.p10_us:,.1f}–{row.p90_us:,.1f})"
        ratio_text = "" if row.ratio is None else f"{row.ratio:.2f}×"
        if row.ratio_low is not None and row.ratio_high is not None:
            ratio_text += f" ({row.ratio_low:.2f}–{row.ratio_high:.2f})"
        if row.unstable:
            ratio_text += " ⚠ unstable"
        steps = "" if row.iterations is None else f"{row.iterations:.1f}"
        lines.append(
            f"| {row.implementation} | {row.direction} | {row.width} | {row.batch} | "
            f"{row.median_us:,.1f}{spread} | {ratio_text} | {steps} |"
        )
    return "\n".join(lines)


def format_matrix(rows: list[BenchRow], width: int) -> str:
    """One markdown table per width: implementations × (direction, batch), "µs (ratio)" cells."""
    rows = [row for row in rows if row.width == width]
    columns = sorted(
        {(row.direction, row.batch) for row in rows}, key=lambda c: (c[0] != "forward", c[1])
    )
    cells = {(row.implementation, row.direction, row.batch): row for row in rows}
    names = list(dict.fromkeys(row.implementation for row in rows))
    lines = [
        "| n = " + str(width) + " | " + " | ".join(f"{d} B={b}" for d, b in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for name in names:
        row_cells = []
        for direction, batch in columns:
            row = cells.get((name, direction, batch))
            row_cells.append("" if row is None else f"{row.median_us:,.0f} µs ({row.ratio:.2f}×)")
        lines.append(f"| {name} | " + " | ".join(row_cells) + " |")
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
                except UnsupportedModelError as error:
                    log.info("bench: %s left out: %s", name, error)
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


def scale_weights(model: torch.nn.Module, factor: float) -> torch.nn.Module:
    """Multiply every weight by ``factor`` in place (σ grows ×factor: the contraction bites)."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("weight"):
                parameter.mul_(factor)
    return model


def suite_model(
    width: int, nblocks: int = 5, scale: float = 10.0, seed: int = 0, **block_hp: Any
) -> iResNet:
    """The benchmark's model: default HP (or ``block_hp``), weights ×``scale``, eval mode."""
    torch.manual_seed(seed)
    return scale_weights(iResNet(width, nblocks=nblocks, iResNetBlock=block_hp), scale).eval()


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


def rows_to_dicts(rows: list[BenchRow]) -> list[dict[str, Any]]:
    return [asdict(row) for row in rows]


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
