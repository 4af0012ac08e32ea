"""Cost curves: how the time and the memory of forward, inverse and density grow with the width n
and the batch B, for the package's deployed graphs (onnxruntime, default export), its eager and
frozen forms and the baseline a user would write, beside the GEMM roofline.

Each cell is timed with :func:`.time_in_blocks` (candidates in their own blocks after a pause,
rounds, ratios per round); the peak memory of a candidate is the growth of the process's resident
set while it runs the cell (Linux: ``/proc/self/clear_refs`` resets the high-water mark).
"""

import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import runtimes as rt
from .._frozen import freeze
from .._layout import graph_file
from ._latency import gemm_roofline, row_steps
from ._models import Baseline, suite_model, torch_threads
from ._timing import ratio, time_in_blocks

__all__ = ["CurvePoint", "cost_curves", "peak_rss_growth", "points_to_dicts"]

SOLVER = {"maxiter": 100, "atol": 1e-6, "rtol": 1e-6}


@dataclass
class CurvePoint:
    graph: str
    implementation: str
    width: int
    batch: int
    median_us: float
    ratio: float
    """Reference time / this time, median over rounds (the reference: the baseline, or eager
    log_prob for the density)."""
    ratio_low: float
    ratio_high: float
    roofline_us: float | None
    peak_mib: float | None


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_growth(fn: Callable[[], Any], calls: int = 2) -> float | None:
    """MiB the resident set grows above its level before, while ``fn`` runs ``calls`` times (None
    where /proc does not tell)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # reset the peak (VmHWM) to the current resident set
    except OSError:
        return None
    before = _status_kib("VmRSS")
    for _ in range(calls):
        fn()
    peak = _status_kib("VmHWM")
    return None if before is None or peak is None else max(0.0, (peak - before) / 1024)


def _candidates(model: Any, sessions: dict, data: np.ndarray) -> dict[str, dict[str, Callable]]:
    tensor = torch.from_numpy(data)
    baseline, frozen = Baseline(model), freeze(model)

    def no_grad(fn: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            with torch.no_grad():
                return fn()

        return run

    solver = SOLVER
    return {
        "forward": {
            "baseline": lambda: baseline.forward(tensor),
            "eager": no_grad(lambda: model(tensor)),
            "frozen": no_grad(lambda: frozen(tensor)),
            "onnxruntime": lambda: sessions["forward"].run_all(data),
        },
        "inverse": {
            "baseline": lambda: baseline.inverse(tensor, **solver),
            "eager": no_grad(lambda: model.inverse_with_stats(tensor, **solver)),
            "frozen": no_grad(lambda: frozen.inverse_with_stats(tensor, **solver)),
            "onnxruntime": lambda: sessions["inverse"].run_all(data, **solver),
        },
        "density": {
            "eager log_prob": no_grad(lambda: model.log_prob(tensor)),
            "frozen": no_grad(lambda: frozen.log_prob(tensor)),
            "onnxruntime": lambda: sessions["density"].run_all(data),
        },
    }


def cost_curves(
    widths: tuple[int, ...] = (16, 64, 256, 1024),
    batches: tuple[int, ...] = (1, 16, 256, 4096),
    threads: int = 2,
    budget_s: float = 0.5,
    progress: bool = True,
) -> list[CurvePoint]:
    """Every cell of widths × batches × graphs (see the module docstring); each candidate gets
    about ``budget_s`` seconds of calls per round, at least 3 calls."""
    from .._export import export

    points: list[CurvePoint] = []
    bar = tqdm(total=len(widths) * len(batches), desc="cost curves", disable=not progress)
    with torch_threads(threads), tempfile.TemporaryDirectory() as tmp:
        for width in widths:
            model = suite_model(width)
            export(model, Path(tmp) / str(width), validate=False)
            sessions = {
                graph: rt.load(graph_file(Path(tmp) / str(width), graph), threads=threads)
                for graph in ("forward", "inverse", "density")
            }
            exact = None
            for batch in batches:
                data = np.random.default_rng(0).standard_normal((batch, width)).astype(np.float32)
                gemm = gemm_roofline(Baseline(model), batch, width, calls=20)
                if exact is None:
                    exact = _exact_inverse(model, Path(tmp) / f"{width}-exact")
                steps, _ = row_steps(exact, data[: min(batch, 256)], SOLVER)
                rooflines = {"forward": gemm, "inverse": gemm * steps / model.nblocks,
                             "density": None}  # fmt: skip
                candidates = _candidates(model, sessions, data)
                for graph, fns in candidates.items():
                    points += _cell(graph, fns, width, batch, rooflines[graph], budget_s)
                bar.update()
    bar.close()
    return points


def _exact_inverse(model: Any, folder: Path) -> rt.Session:
    """The K = 1 inverse, which stops every row where eager does: the step counts per row."""
    from .._export import export

    export(model, folder, validate=False, steps_per_check=1)
    return rt.load(graph_file(folder, "inverse"), threads=1)


def _cell(graph: str, fns: dict[str, Callable], width: int, batch: int, roofline: float | None,
          budget_s: float) -> list[CurvePoint]:  # fmt: skip
    first = next(iter(fns.values()))
    first()  # a warm call: one-time costs out of the timing
    single = time_in_blocks({"probe": first}, calls=1, rounds=1, warmup=0)["probe"].median
    calls = max(3, min(200, int(budget_s / max(single, 1e-6))))
    timings = time_in_blocks(fns, calls=calls * 5, rounds=5)
    reference = next(iter(timings.values()))
    points = []
    for name, timing in timings.items():
        middle, low, high = ratio(reference, timing)
        points.append(CurvePoint(
            graph, name, width, batch, timing.median * 1e6, middle, low, high,
            None if roofline is None else roofline * 1e6, peak_rss_growth(fns[name]),
        ))  # fmt: skip
    return points


def points_to_dicts(points: list[CurvePoint]) -> list[dict[str, Any]]:
    return [asdict(point) for point in points]
