#!/usr/bin/env python
"""The performance benchmark (iresnet_onnx.bench.bench_suite): prints a markdown table, writes JSON.

Usage: python scripts/bench.py [--widths 16,64,256] [--batches 1,64,1024] [--threads 2]
                               [--repeats 100] [--steps-per-check 1,8] [--out bench.json]
"""

import argparse
import json
import sys
from pathlib import Path

from iresnet_onnx.bench import bench_suite, format_table, machine, rows_to_dicts, targets


def ints(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(","))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--widths", type=ints, default=(16, 64, 256))
    parser.add_argument("--batches", type=ints, default=(1, 64, 1024))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--steps-per-check", type=ints, default=(1, 8), dest="steps_per_check")
    parser.add_argument("--out", type=Path, default=Path("bench.json"))
    args = parser.parse_args()
    rows = bench_suite(
        widths=args.widths, batches=args.batches, threads=args.threads, repeats=args.repeats,
        steps_per_check=args.steps_per_check,
    )  # fmt: skip
    print(
        f"median latency, {args.threads} threads; ratio = baseline time / implementation time (same run)"
    )
    print(format_table(rows))
    fast_k = max(args.steps_per_check)
    goals = targets(rows, width=64 if 64 in args.widths else args.widths[0], fast_k=fast_k)
    print("\ntargets (n = 64):")
    for goal in goals:
        print(
            f"  {goal['what']:<40} {goal['value']:>7.2f}  target {goal['target']:<4}  {'met' if goal['met'] else 'MISSED'}"
        )
    result = {
        "machine": machine(),
        "threads": args.threads,
        "rows": rows_to_dicts(rows),
        "targets": goals,
    }
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
