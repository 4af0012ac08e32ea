#!/usr/bin/env python
"""Latency of each graph on node:cpu (onnxruntime-node) and web:wasm (onnxruntime-web in headless
Chromium) against Python's onnxruntime:cpu, on the same export: writes results/js.json and
results/js.md.

Model: the benchmark's (iresnet_onnx.bench.suite_model: 5 blocks, default HP, weights ×10), the
default export (loop mode, K chosen by the model), inverse solver maxiter 100, atol = rtol = 1e-6
fed as inputs.
Method: each runtime timed in its own block of calls after a pause, in rounds (time_in_blocks);
ratio = onnxruntime's time / the runtime's, the median of the per-round ratios with their range;
all three engines with the same intra-op threads. A call of node:cpu / web:wasm is timed from
Python (what a caller waits for: the transport included); "in engine" is what session.run took
inside Node.js or the page (performance.now()), the median over the same calls.

Usage: python scripts/bench_js.py [--width 64] [--batches 1,1024] [--threads 1] [--rounds 5]
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from iresnet_onnx import export, runtimes
from iresnet_onnx.bench import fix_malloc_thresholds, machine, ratio, suite_model, time_in_blocks

RUNTIMES = ("onnxruntime:cpu", "node:cpu", "web:wasm")
GRAPHS = ("forward", "inverse", "density")
SOLVER = {"maxiter": 100, "atol": 1e-6, "rtol": 1e-6}
ROOT = Path(__file__).resolve().parents[1]


def calls_for(batch: int) -> int:
    return 200 if batch == 1 else 25


def bench(width: int, batches: list[int], threads: int, rounds: int) -> dict:
    model = suite_model(width, seed=0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        result = export(model, Path(tmp) / "export", validate=False)
        sessions = {
            name: {g: runtimes.load(result.out_dir / f"{g}.onnx", name, threads=threads) for g in GRAPHS}
            for name in RUNTIMES
        }  # fmt: skip
        engines = {name: sessions[name]["forward"].__dict__.get("engine") for name in RUNTIMES}
        for graph in GRAPHS:
            for batch in batches:
                rows.append(_cell(sessions, graph, width, batch, rounds))
                print(_line(rows[-1]), file=sys.stderr)
        for graphs in sessions.values():
            for session in graphs.values():
                session.close()
    return {"rows": rows, "engines": engines, "steps_per_check": result.manifest["steps_per_check"]}


def _cell(sessions: dict, graph: str, width: int, batch: int, rounds: int) -> dict:
    data = np.random.default_rng(batch).standard_normal((batch, width)).astype(np.float32)
    solver = SOLVER if graph == "inverse" else {}
    inside: dict[str, list[float]] = {name: [] for name in RUNTIMES}
    reference = sessions["onnxruntime:cpu"][graph].run_all(data, **solver)

    def timed(name: str):
        session = sessions[name][graph]
        if name == "onnxruntime:cpu":
            return lambda: session.run_all(data, **solver)
        return lambda: inside[name].append(session.run_timed(data, **solver)[1])

    for name in RUNTIMES[1:]:  # the same work: equal step counts before anything is timed
        outputs, _ = sessions[name][graph].run_timed(data, **solver)
        if "iterations" in reference:
            assert outputs["iterations"].tolist() == reference["iterations"].tolist(), name
    timings = time_in_blocks({n: timed(n) for n in RUNTIMES}, calls_for(batch), rounds, 2, 0.2)
    base = timings["onnxruntime:cpu"]
    cell = {"graph": graph, "width": width, "batch": batch}
    for name, timing in timings.items():
        middle, low, high = ratio(base, timing)
        cell[name] = {
            "median_us": timing.median * 1e6, "p10_us": timing.low * 1e6,
            "p90_us": timing.high * 1e6, "ratio": middle, "ratio_low": low, "ratio_high": high,
            "engine_us": statistics.median(inside[name]) * 1e3 if inside[name] else None,
        }  # fmt: skip
    if "iterations" in reference:
        cell["steps_per_block"] = reference["iterations"].tolist()
    return cell


def _us(value: float) -> str:
    return f"{value:,.0f} µs"


def _line(cell: dict) -> str:
    parts = [f"{cell['graph']} B={cell['batch']}:"]
    for name in RUNTIMES:
        parts.append(f"{name} {_us(cell[name]['median_us'])} ({cell[name]['ratio']:.2f}×)")
    return " ".join(parts)


def markdown(report: dict) -> str:
    info = report["machine"]
    lines = [
        "# node:cpu and web:wasm against onnxruntime:cpu",
        "",
        f"`python scripts/bench_js.py --threads {report['threads']}` on {info.get('cpu', '?')} "
        f"({info.get('cores', '?')} CPUs), {report['date']}. Engines: "
        + ", ".join(f"{name} {version}" for name, version in report["engines"].items() if version)
        + f"; Python onnxruntime {info.get('onnxruntime', '?')}. Load average (1 min) "
        f"{report['load_average'][0]} before, {report['load_average'][1]} after: other jobs "
        "shared the machine where it is above the CPU count, so compare ratios (taken within each "
        "round), not times across runs.",
        "",
        f"Model: n = {report['width']}, 5 blocks, default HP, weights ×10; default export (loop "
        f"mode, K = {report['steps_per_check']}); inverse maxiter 100, atol = rtol = 1e-6. Each "
        "engine with "
        f"{report['threads']} intra-op thread(s); each runtime timed in its own block of calls "
        f"after a 0.2 s pause, {report['rounds']} rounds. Cells: median per call from Python "
        "(ratio = onnxruntime's time / this one's, median of the per-round ratios, and their "
        "range) [in engine: session.run alone, timed inside Node.js or the page; both include "
        "copying the arrays into and out of the engine's memory].",
        "",
        "| graph | batch | onnxruntime:cpu (Python) | node:cpu | web:wasm |",
        "|---|---:|---:|---:|---:|",
    ]
    for cell in report["rows"]:
        row = [cell["graph"], str(cell["batch"]), _us(cell["onnxruntime:cpu"]["median_us"])]
        for name in RUNTIMES[1:]:
            c = cell[name]
            row.append(f"{_us(c['median_us'])} ({c['ratio']:.2f}×, {c['ratio_low']:.2f}–"
                       f"{c['ratio_high']:.2f}) [in engine {_us(c['engine_us'])}]")  # fmt: skip
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", _transport(report["rows"])]
    return "\n".join([*lines, "", WEBGPU]) + "\n"


def _transport(rows: list[dict]) -> str:
    """What a call costs beyond the engine: the arrays' trip to the child (and the page) and back."""
    parts = []
    for name in RUNTIMES[1:]:
        extra = {r["batch"]: [] for r in rows}
        for row in rows:
            extra[row["batch"]].append(row[name]["median_us"] - row[name]["engine_us"])
        spans = ", ".join(f"{min(v):,.0f}–{max(v):,.0f} µs at B = {b}" for b, v in extra.items())
        parts.append(f"{name} {spans}")
    return (
        "A call's cost beyond the engine (median from Python minus the engine's own median): "
        + "; ".join(parts)
        + ". node:cpu: Python → pipe → Node.js and back; web:wasm: Python → pipe → Node.js → "
        "a WebSocket → the page and back (raw bytes all the way)."
    )


WEBGPU = """## What onnxruntime-web's WebGPU backend would lack for these graphs

Not measured (no GPU here); from onnxruntime-web's own documentation:

- **Loop and Scan** (and If) have no WebGPU kernel: the WebGPU operator table
  (`docs/webgpu-operators.md` of onnxruntime-web) does not list them. onnxruntime places such
  nodes on the CPU (WASM) provider, so every `Loop` of these graphs (the power iteration in all
  three, the fixed-point solve in `inverse.onnx`; the gated `Scan` of `inverse="fixed"`) would run
  on the CPU, with tensors copied between GPU and CPU memory around it — at every iteration for
  nodes of a loop body that do get a GPU kernel.
- **float64**: WGSL has no 64-bit float, and onnxruntime-web's GPU tensors
  (`Tensor.GpuBufferDataTypes`) are float32, float16, int32, int64, uint32, uint8 and bool
  only; a float64 export would run wholly on the CPU provider.
- **int64** (`maxiter`, `iterations`, the loop counters): the WebGPU provider handles int64 in a
  few kernels only, narrowed to 32 bits and behind the `enableInt64` option; the rest falls back
  to the CPU provider.

So for these graphs the WebGPU backend would, at best, move the GEMMs of the non-loop parts
(forward's and density's affine layers) to the GPU and run the rest as the WASM backend does,
paying transfers at each boundary; the WASM backend measured above runs all of it in one place.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--batches", default="1,1024")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "results" / "js.json"))
    parser.add_argument("--markdown", default=str(ROOT / "results" / "js.md"))
    args = parser.parse_args()
    fix_malloc_thresholds()
    batches = [int(b) for b in args.batches.split(",")]
    load_before = os.getloadavg()[0]
    measured = bench(args.width, batches, args.threads, args.rounds)
    report = {
        "width": args.width, "threads": args.threads, "rounds": args.rounds,
        "date": time.strftime("%Y-%m-%d"), "machine": machine(),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)], **measured,
    }  # fmt: skip
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    Path(args.markdown).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
