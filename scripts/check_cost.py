#!/usr/bin/env python
"""What a convergence test of inverse.onnx costs, in fixed-point steps: the constant behind
``steps_per_check="auto"`` (iresnet_onnx._cadence.CHECK_COST).

The benchmark's model (5 blocks, weights ×10) is exported with K = 1…10, 12, 16 and its inverse
timed at batch 1 on onnxruntime (2 threads, solver maxiter 100, atol = rtol = 1e-6; each K in its
own block of calls after a pause, in rounds; the fastest round's median, the least disturbed by
the machine's neighbours). Per K the graph takes Σ K·⌈s/K⌉ steps and Σ ⌈s/K⌉ tests over the blocks
(s: eager's steps per block, from the K = 1 graph); a least-squares fit of
time = a·steps + b·tests + c gives the cost of a test in steps, b / a (a from the Ks that test
each block once, which differ in steps only). Every K pays each block's first test, taken
outside any Loop (c holds it): b is what each further test costs, a Loop iteration with its
compaction.

Usage: python scripts/check_cost.py [--widths 16,64,256] [--rounds 9]
                                    [--out results/check_cost.json] [--markdown results/check_cost.md]
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from iresnet_onnx import export
from iresnet_onnx._cadence import CHECK_COST
from iresnet_onnx.bench import fix_malloc_thresholds, machine, suite_model

KS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 16)


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 2, 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def sweep(width: int, rounds: int, calls: int = 100) -> dict:
    model = suite_model(width)
    y = np.random.default_rng(0).standard_normal((1, width)).astype(np.float32)
    feed = {"y": y, "maxiter": np.array(100, np.int64)}
    feed |= {name: np.array(1e-6, np.float32) for name in ("atol", "rtol")}
    with tempfile.TemporaryDirectory() as folder:
        sessions = {}
        for k in KS:
            export(model, Path(folder) / str(k), validate=False, steps_per_check=k)
            sessions[k] = session(Path(folder) / str(k) / "inverse.onnx")
        eager = sessions[1].run(None, feed)[1]
        medians: dict[int, list[float]] = {k: [] for k in KS}
        for _ in range(rounds):
            for k, s in sessions.items():
                time.sleep(0.05)  # the previous block's worker threads go idle
                for _ in range(10):
                    s.run(None, feed)
                times = []
                for _ in range(calls):
                    started = time.perf_counter()
                    s.run(None, feed)
                    times.append(time.perf_counter() - started)
                medians[k].append(float(np.median(times)) * 1e6)
    rows = [
        {"k": k, "steps": int(sum(k * -(-int(s) // k) for s in eager)),
         "tests": int(sum(-(-int(s) // k) for s in eager)), "us": min(medians[k])}
        for k in KS
    ]  # fmt: skip
    step, test, fixed = fit(rows)
    return {"width": width, "eager_steps": [int(s) for s in eager], "rows": rows,
            "step_us": float(step), "test_us": float(test), "fixed_us": float(fixed),
            "test_in_steps": float(test / step)}  # fmt: skip


def fit(rows: list[dict]) -> tuple[float, float, float]:
    """``(a, b, c)`` of time = a·steps + b·tests + c. The Ks that test each block once differ in
    steps only: a comes from them where there are two or more (a joint fit cannot tell a from b
    where both totals fall with K together), then b and c from all Ks."""
    us = np.array([r["us"] for r in rows])
    steps, tests = (np.array([r[key] for r in rows], np.float64) for key in ("steps", "tests"))
    once = tests == tests.min()
    if once.sum() >= 2:
        (step, _), *_ = np.linalg.lstsq(np.stack([steps[once], np.ones(once.sum())], 1), us[once])
        (test, fixed), *_ = np.linalg.lstsq(
            np.stack([tests, np.ones(len(us))], 1), us - step * steps
        )
    else:
        (step, test, fixed), *_ = np.linalg.lstsq(np.stack([steps, tests, np.ones(len(us))], 1), us)
    return float(step), float(test), float(fixed)


def markdown(results: list[dict], about: dict) -> str:
    lines = [
        "# What a convergence test of inverse.onnx costs",
        "",
        f"`python scripts/check_cost.py` on {about['cpu']} ({about['cores']} CPUs), onnxruntime "
        f"{about.get('onnxruntime')}, 2 threads, batch 1: {__doc__.split(chr(10) + chr(10))[1]}",
        "",
        "| n | eager steps per block | µs per step | µs per test | test / step |",
        "|---:|---|---:|---:|---:|",
    ]
    for r in results:
        lines.append(f"| {r['width']} | {r['eager_steps']} | {r['step_us']:.2f} | "
                     f"{r['test_us']:.2f} | {r['test_in_steps']:.1f} |")  # fmt: skip
    lines += ["", f"`iresnet_onnx._cadence.CHECK_COST` = {CHECK_COST:g} steps.", ""]
    for r in results:
        lines += [f"n = {r['width']}: " + ", ".join(
            f"K={row['k']} {row['us']:.0f} µs ({row['steps']} steps, {row['tests']} tests)"
            for row in r["rows"]) + "."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", default="16,64,256")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--out", type=Path, default=Path("results/check_cost.json"))
    parser.add_argument("--markdown", type=Path, default=Path("results/check_cost.md"))
    args = parser.parse_args(argv)
    fix_malloc_thresholds()
    results = []
    for width in (int(w) for w in args.widths.split(",")):
        results.append(sweep(width, args.rounds))
        print(f"n={width}: a test costs {results[-1]['test_in_steps']:.1f} steps", file=sys.stderr)
    about = machine()
    args.out.write_text(json.dumps({"machine": about, "results": results}, indent=2) + "\n")
    args.markdown.write_text(markdown(results, about))
    print(args.markdown.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
