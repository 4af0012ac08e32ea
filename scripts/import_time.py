#!/usr/bin/env python
"""Import-time benchmark of the runtime side: `python -c "import …"` in fresh processes, median and
range over repeats, each against the bare interpreter's start in the same run.

Usage: python scripts/import_time.py [--repeats 15]   (run it with the environment's python)
"""

import argparse
import statistics
import subprocess
import sys
import time

STATEMENTS = {
    "python (nothing)": "pass",
    "numpy": "import numpy",
    "onnxruntime": "import onnxruntime",
    "iresnet_onnx.runtimes": "import iresnet_onnx.runtimes",
    "iresnet_onnx.runtimes + a loaded session": (
        "import sys, iresnet_onnx.runtimes as r; r.load(sys.argv[1], 'onnxruntime:cpu')"
    ),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--graph", help="an exported forward.onnx for the last row")
    args = parser.parse_args()
    print(f"{sys.executable}: median (min–max) of {args.repeats} fresh processes, seconds")
    for name, statement in STATEMENTS.items():
        if "sys.argv[1]" in statement and not args.graph:
            continue
        command = [sys.executable, "-c", statement, *([args.graph] if args.graph else [])]
        seconds = []
        for _ in range(args.repeats):  # alternating would mix page-cache states; blocks instead
            started = time.perf_counter()
            subprocess.run(command, check=True)
            seconds.append(time.perf_counter() - started)
        print(
            f"  {name:<42} {statistics.median(seconds):.3f} ({min(seconds):.3f}–{max(seconds):.3f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
