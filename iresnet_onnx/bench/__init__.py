"""Benchmarks: sound timing (``timing``), what is timed (``models``), the latency of exports and
the performance suite (``latency``), density and training speed (``density``), and the cost
curves over width and batch (``curves``)."""

from ._curves import CurvePoint, cost_curves, peak_rss_growth, points_to_dicts
from ._density import density_suite, training_speed
from ._latency import (
    BASELINE,
    DEFAULT_EXPORT,
    FROZEN,
    WITH_GRAD,
    bench_export,
    bench_suite,
    suite_report,
)
from ._models import Baseline, jacobian_log_prob, scale_weights, suite_model, torch_threads
from ._timing import (
    BenchRow,
    Timing,
    fix_malloc_thresholds,
    format_matrix,
    format_table,
    machine,
    ratio,
    rows_to_dicts,
    time_in_blocks,
)

__all__ = [
    "BASELINE",
    "DEFAULT_EXPORT",
    "FROZEN",
    "WITH_GRAD",
    "Baseline",
    "BenchRow",
    "CurvePoint",
    "Timing",
    "bench_export",
    "bench_suite",
    "cost_curves",
    "density_suite",
    "fix_malloc_thresholds",
    "format_matrix",
    "format_table",
    "jacobian_log_prob",
    "machine",
    "peak_rss_growth",
    "points_to_dicts",
    "ratio",
    "rows_to_dicts",
    "scale_weights",
    "suite_model",
    "suite_report",
    "time_in_blocks",
    "torch_threads",
    "training_speed",
]
