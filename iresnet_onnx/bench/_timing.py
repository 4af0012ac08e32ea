"""Timing that holds up on a shared machine: each candidate in its own block after a pause, in
rounds, ratios per round with their range, unstable cells flagged; and the tables that show them.

No torch here: the Ray benchmark times onnxruntime-only workers with it too.
"""

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = [
    "BenchRow",
    "Timing",
    "fix_malloc_thresholds",
    "format_matrix",
    "format_table",
    "machine",
    "ratio",
    "repeats_for",
    "rows_to_dicts",
    "time_in_blocks",
]


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


MMAP_THRESHOLD = 256 << 20
TRIM_THRESHOLD = 512 << 20


def fix_malloc_thresholds() -> bool:
    """Pin glibc's malloc thresholds for this process (what ``MALLOC_MMAP_THRESHOLD_`` and
    ``MALLOC_TRIM_THRESHOLD_`` set at start-up): otherwise freed ~1 MB tensors go back to the OS
    and are page-faulted in again, until some allocation pattern raises the dynamic thresholds —
    the same forward then takes markedly longer early in a process than late. A benchmark calls this
    once, before timing; it returns False where there is no glibc (the numbers then carry that
    effect)."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's <malloc.h>
    return bool(mallopt(m_mmap_threshold, MMAP_THRESHOLD)) and bool(
        mallopt(m_trim_threshold, TRIM_THRESHOLD)
    )


def ratio(reference: Timing, candidate: Timing) -> tuple[float, float, float]:
    """reference / candidate: the median of the per-round ratios, and their min and max."""
    ratios = [r / c for r, c in zip(reference.rounds, candidate.rounds)]
    return statistics.median(ratios), min(ratios), max(ratios)


@dataclass
class BenchRow:
    implementation: str
    graph: str
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
    roofline_us: float | None = None
    """The same work's GEMMs alone: how far this cell is from the machine's limit."""
    attempts: int = 1
    """How many times the cell was measured (unstable cells are measured again)."""
    row_steps_mean: float | None = None
    """Inverse rows: fixed-point steps per row, summed over blocks, mean over the batch's rows."""
    row_steps_max: float | None = None

    @property
    def unstable(self) -> bool:
        """Whether the rounds disagree on the ratio by more than :data:`UNSTABLE_RANGE`."""
        if self.ratio_low is None or self.ratio_high is None or self.ratio_low <= 0:
            return False
        return self.ratio_high / self.ratio_low > UNSTABLE_RANGE

    @classmethod
    def of(
        cls, name: str, graph: str, width: int, batch: int, timing: Timing,
        reference: Timing, iterations: float | None = None,
    ) -> "BenchRow":  # fmt: skip
        middle, low, high = ratio(reference, timing)
        return cls(
            name, graph, width, batch, timing.median * 1e6, middle, iterations,
            timing.low * 1e6, timing.high * 1e6, low, high,
        )  # fmt: skip


def repeats_for(batch: int, width: int, repeats: int) -> int:
    """Fewer repeats for the big cases, so a full suite stays within a few minutes."""
    return max(5, repeats // max(1, (batch * width) // 16384))


def machine() -> dict[str, Any]:
    """CPU, cores and the versions of what is timed (those that are installed)."""
    from importlib import metadata

    about: dict[str, Any] = {
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
    }
    for package in ("torch", "onnxruntime", "openvino", "tract", "ray"):
        try:
            about[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return about


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def format_table(rows: list[BenchRow], reference: str = "baseline") -> str:
    """A markdown table of the rows; ``reference`` names what the ratios compare against. Spread:
    the 10th–90th percentile of the calls; the ratio's range over rounds; ⚠ marks unstable cells."""
    lines = [
        f"| implementation | graph | width | batch | median µs (p10–p90) | ratio to {reference} "
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
            f"| {row.implementation} | {row.graph} | {row.width} | {row.batch} | "
            f"{row.median_us:,.1f}{spread} | {ratio_text} | {steps} |"
        )
    return "\n".join(lines)


def format_matrix(rows: list[BenchRow], width: int) -> str:
    """One markdown table per width: implementations × (graph, batch); each cell "µs (ratio,
    range over rounds)", ⚠ where unstable; then the roofline and the per-row step counts."""
    rows = [row for row in rows if row.width == width]
    columns = sorted(
        {(row.graph, row.batch) for row in rows}, key=lambda c: (c[0] != "forward", c[1])
    )
    cells = {(row.implementation, row.graph, row.batch): row for row in rows}
    names = list(dict.fromkeys(row.implementation for row in rows))
    lines = [
        "| n = " + str(width) + " | " + " | ".join(f"{d} B={b}" for d, b in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for name in names:
        row_cells = []
        for graph, batch in columns:
            row = cells.get((name, graph, batch))
            row_cells.append("" if row is None else _cell(row))
        lines.append(f"| {name} | " + " | ".join(row_cells) + " |")
    first = {(row.graph, row.batch): row for row in reversed(rows)}
    if any(row.roofline_us for row in rows):
        lines.append("| roofline (GEMMs alone) | " + " | ".join(
            f"{first[c].roofline_us:,.0f} µs" if first[c].roofline_us else "" for c in columns
        ) + " |")  # fmt: skip
    if any(row.row_steps_mean for row in rows):
        lines.append("| steps per row, all blocks: mean / max | " + " | ".join(
            f"{first[c].row_steps_mean:.1f} / {first[c].row_steps_max:.0f}"
            if first[c].row_steps_mean else "" for c in columns
        ) + " |")  # fmt: skip
    return "\n".join(lines)


def _cell(row: BenchRow) -> str:
    text = f"{row.median_us:,.0f} µs ({row.ratio:.2f}×"
    if row.ratio_low is not None and row.ratio_high is not None and row.ratio_high != row.ratio_low:
        text += f", {row.ratio_low:.2f}–{row.ratio_high:.2f}"
    text += ")"
    if row.roofline_us:
        text += f" {row.roofline_us / row.median_us:.0%}"
    return text + (" ⚠" if row.unstable else "")


def rows_to_dicts(rows: list[BenchRow]) -> list[dict[str, Any]]:
    return [asdict(row) for row in rows]
