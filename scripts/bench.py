#!/usr/bin/env python
"""The performance benchmark (iresnet_onnx.bench): prints a markdown report, writes JSON and markdown.

Usage: python scripts/bench.py [--widths 16,64,256] [--batches 1,64,1024] [--threads 2]
                               [--repeats 200] [--steps-per-check 1,8]
                               [--out results/bench.json] [--markdown results/bench.md]
"""

import argparse
import json
import sys
from pathlib import Path

from iresnet_onnx.bench import bench_suite, suite_report


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
    report, data = suite_report(
        rows, args.widths, args.repeats, args.threads, fast_k=max(args.steps_per_check)
    )
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2) + "\n")
    args.markdown.write_text(report + "\n")
    print(f"\nwrote {args.out} and {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
