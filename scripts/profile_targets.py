#!/usr/bin/env python
"""Where the time goes in the cells that miss their targets in results/bench.md: per-operator
profiles of onnxruntime (its own profiler) and of eager PyTorch (torch.profiler), at batch 1.

Usage: python scripts/profile_targets.py [--width 64] [--calls 300]

- the default export's inverse at B = 1 (target: ≥ 6× the baseline): time per op type, inside
  and outside the fixed-point Loops;
- the default export's forward at B = 1, n = 256 (target ≥ 1×): the power iteration's share;
- the eager forward at B = 1 (target ≤ 1.5× the baseline's time): torch ops of the package's
  forward against the baseline's.
"""

import argparse
import collections
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from iresnet_onnx import export
from iresnet_onnx.bench import Baseline, fix_malloc_thresholds, suite_model


def ort_profile(graph: Path, data: np.ndarray, calls: int, threads: int = 2) -> None:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.enable_profiling = True
    options.profile_file_prefix = str(graph.parent / f"profile-{graph.stem}")
    session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: data}
    for _ in range(calls):
        session.run(None, feed)
    events = json.loads(Path(session.end_profiling()).read_text())
    runs = [e["dur"] for e in events if e.get("name") == "model_run"][10:]  # first calls warm up
    by_op: collections.Counter = collections.Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            by_op[event["args"]["op_name"]] += event["dur"]
    total_kernel = sum(by_op.values())
    run_total = sum(e["dur"] for e in events if e.get("name") == "model_run")
    print(f"\n{graph.name}, batch {len(data)}: {np.median(runs):.0f} µs per call (median); "
          f"kernels {100 * total_kernel / run_total:.0f}% of run time, the rest is the "
          "executor (scheduling, Loop iterations, copies)")  # fmt: skip
    for op, micros in by_op.most_common(12):
        print(f"  {op:<14} {100 * micros / run_total:5.1f}% of run time")


def torch_profile(name: str, fn, calls: int) -> None:
    from torch.profiler import ProfilerActivity, profile

    for _ in range(20):
        fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            fn()
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10)
    print(f"\n{name} ({calls} calls):\n{table}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    fix_malloc_thresholds()
    torch.set_num_threads(2)
    work = Path(tempfile.mkdtemp(prefix="profile-"))
    for width in (args.width, 256):
        model = suite_model(width)
        export(model, work / f"n{width}", validate=False)
        export(model, work / f"n{width}-folded", spectral_norm="folded", validate=False)
        data = np.random.default_rng(0).standard_normal((1, width)).astype(np.float32)
        print(f"\n=== n = {width}")
        ort_profile(work / f"n{width}" / "forward.onnx", data, args.calls)
        ort_profile(work / f"n{width}-folded" / "forward.onnx", data, args.calls)
        if width == args.width:
            y = torch.from_numpy(data)
            ort_profile(work / f"n{width}" / "inverse.onnx", data, args.calls)
            baseline = Baseline(model)
            with torch.no_grad():
                torch_profile("baseline forward", lambda b=baseline, y=y: b.forward(y), args.calls)
                torch_profile("iresnet_onnx eager forward", lambda m=model, y=y: m(y), args.calls)
    return 0


if __name__ == "__main__":
    sys.exit(main())
