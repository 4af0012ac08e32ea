#!/usr/bin/env python
"""Rows per second of `iresnet-onnx batch` on Ray Data (1 and 2 workers) against one in-process
onnxruntime session doing the same job (read the .npy, run in batches, write the .npy), with
Ray's start-up cost reported apart.

Usage: python scripts/bench_batch.py [--rows 1000000] [--width 64] [--batch-size 4096]
                                     [--repeats 3] [--markdown results/batch.md]

The three sides are timed in turns, each after a pause, `--repeats` rounds; the report gives the
median and the range over the rounds. A Ray job's time includes starting its actors (each job
starts its own pool, as each command does); Ray itself is started once, and that time is
reported on its own line.
"""

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from iresnet_onnx import export
from iresnet_onnx import runtimes as rt
from iresnet_onnx._atomic import write_text_atomic
from iresnet_onnx.bench import fix_malloc_thresholds
from iresnet_onnx.bench._models import suite_model
from iresnet_onnx.bench._timing import machine
from iresnet_onnx.jobs import run_batch

PAUSE_S = 2.0  # lets the previous side's threads and actors wind down


def in_process(graph_file: Path, source: Path, out: Path, batch_size: int) -> float:
    """One session in this process: the job `batch` does, without Ray. Seconds."""
    started = time.perf_counter()
    session = rt.load(graph_file, "onnxruntime:cpu", threads=os.cpu_count())
    rows = np.load(source, mmap_mode="r")
    result = np.lib.format.open_memmap(out, mode="w+", dtype=np.float32, shape=rows.shape)
    for start in range(0, len(rows), batch_size):
        chunk = np.ascontiguousarray(rows[start : start + batch_size])
        result[start : start + len(chunk)] = session.run(chunk)
    result.flush()
    del result
    return time.perf_counter() - started


def summary_line(name: str, seconds: list[float], rows: int) -> dict:
    rates = [rows / s for s in seconds]
    return {
        "side": name,
        "seconds": seconds,
        "rows_per_s_median": statistics.median(rates),
        "rows_per_s_min": min(rates),
        "rows_per_s_max": max(rates),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=Path("results/batch.json"))
    parser.add_argument("--markdown", type=Path, default=Path("results/batch.md"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    fix_malloc_thresholds()
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    import ray

    work = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    folder = work / "export"
    steps_per_check = export(suite_model(args.width), folder).manifest["steps_per_check"]
    rng = np.random.default_rng(0)
    source = work / "in.npy"
    np.save(source, rng.standard_normal((args.rows, args.width)).astype(np.float32))

    started = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level=logging.ERROR,
             log_to_driver=False)  # fmt: skip
    ray_start = time.perf_counter() - started
    print(f"Ray start-up: {ray_start:.1f} s", flush=True)

    results = {"machine": machine(), "rows": args.rows, "width": args.width,
               "batch_size": args.batch_size, "ray_start_s": ray_start, "graphs": {}}  # fmt: skip
    for graph in ("forward", "inverse"):
        times: dict[str, list[float]] = {"in-process": [], "ray 1 worker": [], "ray 2 workers": []}
        not_converged = 0
        for round_ in range(args.repeats):
            time.sleep(PAUSE_S)
            times["in-process"].append(
                in_process(folder / f"{graph}.onnx", source, work / "out.npy", args.batch_size)
            )
            for workers in (1, 2):
                time.sleep(PAUSE_S)
                summary = run_batch(folder, source, work / "out.npy", graph=graph,
                                    workers=workers, batch_size=args.batch_size,
                                    overwrite=True, progress=False)  # fmt: skip
                times[f"ray {workers} worker{'s' if workers > 1 else ''}"].append(summary.seconds)
                not_converged = summary.not_converged
            print(f"{graph} round {round_ + 1}: "
                  + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True)  # fmt: skip
        results["graphs"][graph] = {
            "sides": [summary_line(name, seconds, args.rows) for name, seconds in times.items()],
            "not_converged": not_converged,
        }
    ray.shutdown()

    about = results["machine"]
    lines = [
        f"# `iresnet-onnx batch` on Ray Data: {args.rows:,} rows, n = {args.width}",
        "",
        f"`python scripts/bench_batch.py` — {about['cpu']}, {about['cores']} CPUs, Python "
        f"{about['python']}, onnxruntime {about.get('onnxruntime')}, ray {about.get('ray')}. "
        f"Model: `suite_model({args.width})` (5 blocks, weights ×10, default export: loop mode, "
        f"K = {steps_per_check}), batches of {args.batch_size:,} rows, .npy in and out. Each side timed "
        f"{args.repeats}× in turns after a {PAUSE_S:.0f} s pause; median (min–max) over the rounds. "
        "A Ray job's time includes starting its actor pool; starting Ray itself is apart.",
        "",
        f"Ray start-up (ray.init, once per process): {ray_start:.1f} s.",
        "",
        "| graph | side | rows/s, median (min–max) | vs in-process |",
        "|---|---|---:|---:|",
    ]
    for graph, entry in results["graphs"].items():
        base = entry["sides"][0]["rows_per_s_median"]
        for side in entry["sides"]:
            lines.append(
                f"| {graph} | {side['side']} | {side['rows_per_s_median']:,.0f} "
                f"({side['rows_per_s_min']:,.0f}–{side['rows_per_s_max']:,.0f}) | "
                f"{side['rows_per_s_median'] / base:.2f}× |"
            )
    report = "\n".join(lines)
    print(report)
    write_text_atomic(args.json, json.dumps(results, indent=2) + "\n")
    write_text_atomic(args.markdown, report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
