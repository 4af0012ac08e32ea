#!/usr/bin/env python
"""The performance benchmark (iresnet_onnx.bench): prints a markdown report, writes JSON and markdown.

Usage: python scripts/bench.py [--widths 16,64,256] [--batches 1,64,1024] [--threads 2]
                               [--repeats 200] [--out results/bench.json] [--markdown results/bench.md]
"""

import argparse
import json
import sys
from pathlib import Path

from iresnet_onnx._atomic import write_text_atomic
from iresnet_onnx.bench import bench_suite, fix_malloc_thresholds, suite_report


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
    parser.add_argument("--out", type=Path, default=Path("results/bench.json"))
    parser.add_argument("--markdown", type=Path, default=Path("results/bench.md"))
    args = parser.parse_args()
    fix_malloc_thresholds()
    rows = bench_suite(
        widths=args.widths, batches=args.batches, threads=args.threads, repeats=args.repeats
    )
    report, data = suite_report(rows, args.widths, args.repeats, args.threads)
    print(report)
    write_text_atomic(args.out, json.dumps(data, indent=2) + "\n")
    write_text_atomic(args.markdown, report + "\n")
    print(f"\nwrote {args.out} and {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
