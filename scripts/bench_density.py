#!/usr/bin/env python
"""Density benchmark (iresnet_onnx.bench._density): density.onnx on onnxruntime against eager
log_prob and the autograd-Jacobian route, and training speed per epoch, lemma against Jacobian.
Prints markdown and writes results/density.md and results/density.json.

Usage: python scripts/bench_density.py [--widths 16,64,256] [--batches 1,1024] [--threads 2]
"""

import argparse
import json
import sys
from pathlib import Path

from iresnet_onnx._atomic import write_text_atomic
from iresnet_onnx.bench import density_suite, format_matrix, machine, rows_to_dicts, training_speed


def ints(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(","))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=ints, default=(16, 64, 256))
    parser.add_argument("--batches", type=ints, default=(1, 1024))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args()
    rows = density_suite(args.widths, args.batches, args.threads, args.repeats)
    training = training_speed(threads=args.threads)
    about = machine()
    lines = [
        "# Density benchmark",
        "",
        f"log p of a batch, median µs per call (ratio = autograd-Jacobian time / this time, "
        f"median over rounds); {args.threads} threads; {about['cpu']}, {about['cores']} CPUs.",
        "",
        *(format_matrix(rows, width) + "\n" for width in args.widths),
        "## Training speed (seconds per epoch, 2048 rows, batch 256, Adam)",
        "",
        "| n | lemma (log_prob) | autograd Jacobian | speed-up |",
        "|---:|---:|---:|---:|",
        *(
            f"| {r['width']} | {r['lemma_s']:.3f} | {r['jacobian_s']:.3f} | {r['speedup']:.1f}× |"
            for r in training
        ),
    ]
    report = "\n".join(lines)
    print(report)
    write_text_atomic(args.out / "density.md", report + "\n")
    data = {"machine": about, "rows": rows_to_dicts(rows), "training": training}
    write_text_atomic(args.out / "density.json", json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
