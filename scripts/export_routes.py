#!/usr/bin/env python
"""Export time of the two routes — the package's own exporter and ``exporter="torch"``
(torch.onnx.export with the custom ops' translations) — on the benchmark model, and whether each
route's graphs pass parity on every in-process runtime here (the same step counts included).

Usage: python scripts/export_routes.py [--width 64] [--repeats 3]
"""

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

from iresnet_onnx import export, runtimes
from iresnet_onnx.bench import suite_model
from iresnet_onnx.parity import check


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model = suite_model(args.width)
    names = [n for n in runtimes.available() if n.split(":")[0] in
             ("onnxruntime", "openvino", "reference") and n.endswith(":cpu")]  # fmt: skip
    steps = {}
    print(f"iResNet({args.width}), 5 blocks; export without validation, {args.repeats} runs each")
    for route in ("iresnet_onnx", "torch"):
        seconds = []
        with tempfile.TemporaryDirectory() as tmp:
            for run in range(args.repeats):
                out = Path(tmp) / str(run)
                started = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # torch.onnx's deprecation chatter
                    export(model, out, validate=False, exporter=route)
                seconds.append(time.perf_counter() - started)
            report = check(model, out, runtimes=names, batch_sizes=(1, 7, 257), seed=1)
            steps[route] = [tuple(r.iterations) for r in report.rows if r.check == "inverse"]
        print(
            f"| {route} | {statistics.median(seconds):.2f} s (runs {min(seconds):.2f}–"
            f"{max(seconds):.2f}) | parity on {', '.join(names)}: "
            f"{'passed' if report.passed else 'FAILED'} |"
        )
    same = steps["iresnet_onnx"] == steps["torch"]
    print("same inverse step counts on both routes, every runtime and batch:", same)
    if not same:
        for ours, theirs in zip(steps["iresnet_onnx"], steps["torch"]):
            print("  own", ours, "torch", theirs, "" if ours == theirs else "≠")
    return 0


if __name__ == "__main__":
    sys.exit(main())
