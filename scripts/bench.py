#!/usr/bin/env python
"""The performance benchmark (iresnet_onnx.bench): prints a markdown report, writes JSON and markdown.

Usage: python scripts/bench.py [--widths 16,64,256] [--batches 1,64,1024] [--threads 2]
                               [--repeats 200] [--out results/bench.json] [--markdown results/bench.md]
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from iresnet_onnx.bench import (
    DEFAULT_EXPORT,
    FROZEN,
    WITH_GRAD,
    BenchRow,
    bench_suite,
    fix_malloc_thresholds,
    suite_report,
)

TARGETS = (
    # (what, implementation, graph, batch, minimum ratio to the baseline)
    ("default export, inverse B=1", DEFAULT_EXPORT, "inverse", 1, 6.0),
    ("default export, inverse B=1024", DEFAULT_EXPORT, "inverse", 1024, 1.5),
)


def targets(rows: list[BenchRow], width: int = 64) -> list[dict[str, Any]]:
    """The performance targets: measured value, target and whether it holds (see the README)."""
    table = {(r.implementation, r.graph, r.width, r.batch): r for r in rows}
    results = []

    def add(what: str, value: float, target: float, higher_is_better: bool = True) -> None:
        met = value >= target if higher_is_better else value <= target
        results.append({"what": what, "value": round(value, 3), "target": target, "met": met})

    default = [r for r in rows if r.implementation == DEFAULT_EXPORT]
    if default:
        worst = min(default, key=lambda r: r.ratio)
        add(f"default export ≥ baseline in every cell (worst: {worst.graph} n={worst.width} "
            f"B={worst.batch})", worst.ratio, 1.0)  # fmt: skip
    for what, name, graph, batch, minimum in TARGETS:
        row = table.get((name, graph, width, batch))
        if row is not None:
            add(f"{what}, n={width}", row.ratio, minimum)
    big = table.get((DEFAULT_EXPORT, "inverse", width, 1024))
    forward = table.get((DEFAULT_EXPORT, "forward", width, 1024))
    if big is not None and forward is not None and big.row_steps_mean:
        nblocks = 5
        per_step = big.median_us / (big.row_steps_mean / nblocks) / forward.median_us
        add(f"inverse B=1024 n={width}: time / (mean row steps × forward time)", per_step, 1.5,
            higher_is_better=False)  # fmt: skip
    frozen = table.get((FROZEN, "forward", width, 1))
    if frozen is not None:
        add(f"frozen forward B=1 n={width}: time / baseline's", 1 / frozen.ratio, 1.1,
            higher_is_better=False)  # fmt: skip
    for batch in (1, 1024):
        eager = table.get(("iresnet_onnx eager", "inverse", width, batch))
        if eager is not None:
            add(f"eager inverse (eval, no_grad) B={batch} n={width}: ratio to baseline",
                eager.ratio, 1.0)  # fmt: skip
    for graph in ("forward", "inverse"):
        for batch in (1, 1024):
            eager = table.get(("iresnet_onnx eager", graph, width, batch))
            script = table.get(("iresnet_onnx TorchScript", graph, width, batch))
            if eager is not None and script is not None:
                add(f"TorchScript {graph} B={batch} n={width}: speed / eager's",
                    eager.median_us / script.median_us, 0.9)  # fmt: skip
    grad = table.get((WITH_GRAD, "inverse", width, 1))
    eager = table.get(("iresnet_onnx eager", "inverse", width, 1))
    if grad is not None and eager is not None:
        add(f"eval inverse B=1 n={width}: time with autograd on / under no_grad",
            grad.median_us / eager.median_us, 1.5, higher_is_better=False)  # fmt: skip
    return results


def targets_table(goals: list[dict[str, Any]], width: int) -> str:
    return "\n".join([
        f"Targets (n = {width} unless said):",
        "",
        "| target | measured | goal | |",
        "|---|---:|---:|---|",
        *(
            f"| {g['what']} | {g['value']:.2f} | {g['target']} | {'met' if g['met'] else 'missed'} |"
            for g in goals
        ),
    ])  # fmt: skip


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
    width = 64 if 64 in args.widths else args.widths[0]
    data["targets"] = targets(rows, width=width)
    report += "\n" + targets_table(data["targets"], width)
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2) + "\n")
    args.markdown.write_text(report + "\n")
    print(f"\nwrote {args.out} and {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
