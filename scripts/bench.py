#!/usr/bin/env python
"""The performance benchmark (iresnet_onnx.bench.bench_suite): prints a markdown report, writes JSON.

Usage: python scripts/bench.py [--widths 16,64,256] [--batches 1,64,1024] [--threads 2]
                               [--repeats 200] [--steps-per-check 1,8]
                               [--out results/bench.json] [--markdown results/bench.md]
"""

import argparse
import json
import sys
from pathlib import Path

from iresnet_onnx.bench import bench_suite, format_matrix, machine, rows_to_dicts, targets


def ints(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(","))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--widths", type=ints, default=(16, 64, 256))
    parser.add_argument("--batches", type=ints, default=(1, 64, 1024))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--steps-per-check", type=ints, default=(1, 8), dest="steps_per_check")
    parser.add_argument("--out", type=Path, default=Path("results/bench.json"))
    parser.add_argument("--markdown", type=Path, default=Path("results/bench.md"))
    args = parser.parse_args()
    rows = bench_suite(
        widths=args.widths, batches=args.batches, threads=args.threads, repeats=args.repeats,
        steps_per_check=args.steps_per_check,
    )  # fmt: skip
    width = 64 if 64 in args.widths else args.widths[0]
    goals = targets(rows, width=width, fast_k=max(args.steps_per_check))
    about = machine()
    lines = [
        f"Median latency over {args.repeats} calls per cell (taken in turns), {args.threads} threads for "
        f"torch and onnxruntime; ratio = baseline time / implementation time in the same run.",
        f"Machine: {about['cpu']}, {about['cores']} cores, Python {about['python']}, "
        f"torch {about['torch']}, onnxruntime {about['onnxruntime']}.",
        "",
        *(format_matrix(rows, w) + "\n" for w in args.widths),
        f"Targets (n = {width}):",
        "",
        "| target | measured | goal | |",
        "|---|---:|---:|---|",
        *(
            f"| {g['what']} | {g['value']:.2f} | {g['target']} | {'met' if g['met'] else 'missed'} |"
            for g in goals
        ),
    ]
    report = "\n".join(lines)
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "machine": about,
                "threads": args.threads,
                "rows": rows_to_dicts(rows),
                "targets": goals,
            },
            indent=2,
        )
        + "\n"
    )
    args.markdown.write_text(report + "\n")
    print(f"\nwrote {args.out} and {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
