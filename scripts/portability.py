#!/usr/bin/env python
"""Which runtime runs which graph, how closely, and how fast: the runtime × graph table.

Usage: python scripts/portability.py [--markdown results/portability.md] [--json ...]
                                     [--no-latency]

Three models, weights ×10 (the contraction bites): the default `iResNet(64)`, a 10-block 2-D
mlp/Tanh flow and `iResNet(64)` in float64. Each exported four ways (spectral norm loop/folded × inverse loop/fixed), opset 18,
the default portable form. For every runtime installed here (onnxruntime, OpenVINO, tract, the
ONNX reference evaluator) `parity.check` at batches 1, 7, 257 gives the largest error per graph
against eager PyTorch, or the reason the runtime cannot run it; `.ort` files are compared with
their `.onnx` twins. Then (unless `--no-latency`) the latency of each runtime against onnxruntime at batch 1 and 1024
(`time_in_blocks`, 2 threads), and the step counts `inverse="fixed"` chose against the Loop's.
"""

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx

from iresnet_onnx import export, parity
from iresnet_onnx import runtimes as rt
from iresnet_onnx._atomic import write_text_atomic
from iresnet_onnx.bench import fix_malloc_thresholds, machine, time_in_blocks
from iresnet_onnx.bench._models import suite_model
from iresnet_onnx.errors import UnsupportedModelError

MODELS = {
    "iResNet(64)": lambda: suite_model(64),
    "2-D mlp/Tanh ×10 blocks": lambda: suite_model(
        2, nblocks=10, variant="mlp", hidden_size=32, activation="Tanh"
    ),
    "iResNet(64), float64": lambda: suite_model(64).double(),
}
FORMS = [("loop", "loop"), ("folded", "loop"), ("loop", "fixed"), ("folded", "fixed")]
GRAPHS = ("forward", "inverse", "density", "log-det vs autograd")
CHECK_COLUMN = {"forward": "forward", "inverse": "inverse", "density": "density",
                    "jacobian": "log-det vs autograd"}  # fmt: skip


def runtime_names() -> list[str]:
    return [name for name in rt.available() if not name.startswith("torch:")]


def parity_cells(model, folder: Path, names: list[str]) -> dict:
    """{(runtime, graph): "max error" or "✗ reason"} over batches 1, 7, 257."""
    report = parity.check(model, folder, runtimes=names, batch_sizes=(1, 7, 257),
                          leading_dims=False)  # fmt: skip
    cells = {}
    for row in report.rows:
        if row.check not in CHECK_COLUMN:
            continue  # capped, roundtrip: the table shows the inverse at the model's settings
        key = (row.runtime, CHECK_COLUMN[row.check])
        error, passed = cells.get(key, (0.0, True))
        cells[key] = (max(error, row.max_abs), passed and row.passed)
    for note in report.unsupported:
        reason = note["reason"].splitlines()[0].replace(f"{folder}/", "")
        reason = reason if len(reason) < 140 else reason[:137] + "…"
        graph = Path(note["graph"]).stem
        for column in (graph, "log-det vs autograd") if graph == "density" else (graph,):
            cells[(note["runtime"], column)] = f"✗ {reason}"
    return {
        key: value if isinstance(value, str) else f"{value[0]:.1e}{'' if value[1] else ' (miss)'}"
        for key, value in cells.items()
    }


def ort_format_cells(folder: Path) -> dict:
    """The `.ort` files against their `.onnx` twins on onnxruntime, max |Δ| over 1, 7, 257."""
    cells = {}
    for graph in ("forward", "inverse"):
        onnx_session = rt.load(folder / f"{graph}.onnx", "onnxruntime:cpu")
        ort_session = rt.load(folder / f"{graph}.ort", "onnxruntime:cpu")
        width = onnx_session.info.input_size
        worst = 0.0
        for batch in (1, 7, 257):
            data = np.random.default_rng(batch).standard_normal((batch, width))
            data = data.astype(onnx_session.info.dtype)
            worst = max(worst, float(np.abs(ort_session.run(data) - onnx_session.run(data)).max()))
        cells[graph] = worst
    return cells


def latency(folder: Path, names: list[str], threads: int = 2) -> dict:
    """{(runtime, graph, batch): (ms, ratio vs onnxruntime)}; runtimes that cannot run a graph
    are left out."""
    result = {}
    for graph in ("forward", "inverse"):
        sessions = {}
        for name in names:
            if name.startswith("reference:"):
                continue  # a Python interpreter of ONNX: a checker, not a deployment target
            runtime, device = rt.parse_runtime(name)
            options = {"threads": threads} if runtime in ("onnxruntime", "openvino") else {}
            try:
                sessions[name] = rt.load(folder / f"{graph}.onnx", runtime, device, **options)
            except UnsupportedModelError:
                continue
        info = next(iter(sessions.values())).info
        for batch in (1, 1024):
            data = np.random.default_rng(0).standard_normal((batch, info.input_size))
            data = data.astype(info.dtype)
            calls = 200 if batch == 1 else 40
            timings = time_in_blocks(
                {name: (lambda s=s, x=data: s.run_all(x)) for name, s in sessions.items()}, calls
            )
            base = timings["onnxruntime:cpu"]  # each export against onnxruntime on itself
            for name, timing in timings.items():
                ratios = [b / t for b, t in zip(base.rounds, timing.rounds)]
                result[(name, graph, batch)] = (timing.median * 1e3, statistics.median(ratios))
    return result


def step_counts(loop_folder: Path, fixed_folder: Path) -> dict:
    """The per-block steps of `inverse="fixed"` (from its metadata) against what the K = 1 Loop
    took on N(0, I) latents (the batch's count: its slowest row)."""
    meta = {p.key: p.value for p in onnx.load(fixed_folder / "inverse.onnx").metadata_props}
    fixed = json.loads(meta["iresnet_onnx.fixed_steps"])
    session = rt.load(loop_folder / "inverse.onnx", "onnxruntime:cpu")
    y = np.random.default_rng(1).standard_normal((257, session.info.input_size))
    y = y.astype(session.info.dtype)
    return {"fixed": fixed, "loop_batch_257": session.run_all(y)["iterations"].tolist()}


def model_section(model_name: str, work: Path, names: list[str], data: dict, timed: bool) -> list:
    """One model: the four export forms on every runtime (and `.ort` vs `.onnx`), the fixed
    steps against the Loop's, and (``timed``) the latencies; fills ``data``, returns the table."""
    model = MODELS[model_name]()
    slug = "".join(c for c in model_name if c.isalnum())
    header = "| export | runtime | " + " | ".join(GRAPHS) + " |"
    lines = [f"### {model_name}", "", header, "|---|---|" + "---|" * len(GRAPHS)]
    for spectral_norm, inverse in FORMS:
        form = f"{spectral_norm} / inverse {inverse}"
        folder = work / f"{slug}-{spectral_norm}-{inverse}"
        export(model, folder, spectral_norm=spectral_norm, inverse=inverse,
               ort_format=inverse == "loop", validate=False)  # fmt: skip
        cells = parity_cells(model, folder, names)
        data["parity"][f"{model_name} {form}"] = {f"{k[0]} {k[1]}": v for k, v in cells.items()}
        for name in names:
            row = [cells.get((name, graph), "–") for graph in GRAPHS]
            lines.append(f"| {form} | {name} | " + " | ".join(row) + " |")
        if inverse == "loop":
            ort = ort_format_cells(folder)
            data["ort_format"][f"{model_name} {form}"] = ort
            lines.append(
                f"| {form} | onnxruntime `.ort` vs `.onnx` | {ort['forward']:.1e} | "
                f"{ort['inverse']:.1e} | | |"
            )
    lines.append("")
    exact_folder = work / f"{slug}-exact"  # K = 1: eager's own step counts
    export(model, exact_folder, steps_per_check=1, validate=False)
    data["steps"][model_name] = step_counts(exact_folder, work / f"{slug}-loop-fixed")
    if timed:
        timings = latency(work / f"{slug}-loop-loop", names)
        portable = latency(work / f"{slug}-folded-fixed", names)
        timings.update({(k[0] + " (portable)", *k[1:]): v for k, v in portable.items()})
        data["latency"][model_name] = {" ".join(map(str, k)): v for k, v in timings.items()}
    return lines


def latency_lines(data: dict) -> list[str]:
    lines = [
        "## Latency against onnxruntime (the default export; `(portable)`: folded +",
        'inverse="fixed", the export with no Loop at all; each against onnxruntime on that export)',
        "",
    ]
    if not data["latency"]:
        return [*lines, "Not measured in this run (`--no-latency`).", ""]
    lines += [
        "Median ms per call, 2 threads, 5 rounds in blocks; ratio = onnxruntime / runtime, the",
        "median of the per-round ratios (> 1: faster than onnxruntime).",
        "",
    ]
    for model_name, entries in data["latency"].items():
        lines += [
            f"### {model_name}",
            "",
            "| runtime | graph | B=1 | B=1024 |",
            "|---|---|---:|---:|",
        ]
        keys = sorted({tuple(k.split(" ")[:-1]) for k in entries})
        for key in keys:
            cells = []
            for batch in (1, 1024):
                value = entries.get(" ".join((*key, str(batch))))
                cells.append(f"{value[0]:.3f} ms ({value[1]:.2f}×)" if value else "–")
            name, graph = " ".join(key[:-1]), key[-1]
            lines.append(f"| {name} | {graph} | {cells[0]} | {cells[1]} |")
        lines.append("")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", type=Path, default=Path("results/portability.json"))
    parser.add_argument("--markdown", type=Path, default=Path("results/portability.md"))
    parser.add_argument("--no-latency", action="store_true", help="the accuracy part only")
    args = parser.parse_args()
    fix_malloc_thresholds()
    names = runtime_names()
    work = Path(tempfile.mkdtemp(prefix="portability-"))
    about = machine()
    lines = [
        "# Runtime × graph",
        "",
        f"`python scripts/portability.py` — {about['cpu']}, {about['cores']} CPUs; "
        + ", ".join(f"{k} {about[k]}" for k in ("onnxruntime", "openvino", "tract") if k in about)
        + ". Weights ×10, opset 18, the default portable export (plain nodes, no functions).",
        "",
        "## Largest error against eager PyTorch, batches 1, 7, 257",
        "",
        "Max |Δ| over the batches (the parity tolerances, per dtype, are in the README). ✗: the",
        "runtime cannot run the graph, with its reason. `(miss)`: outside the tolerance.",
        "",
    ]
    data: dict = {"machine": about, "parity": {}, "ort_format": {}, "latency": {}, "steps": {}}
    for model_name in MODELS:
        lines += model_section(model_name, work, names, data, timed=not args.no_latency)
        print(f"{model_name}: done", flush=True)
    lines += latency_lines(data)
    lines += [
        '## Steps per block: inverse="fixed" (chosen at export) vs the Loop',
        "",
        "The Loop's count is the batch's (its slowest row), K = 1, N(0, I) latents, batch 257;",
        "the fixed count is the Banach bound for ‖y‖₂ ≤ √n + 5 at the model's atol, capped by maxiter.",
        "",
    ]
    for model_name, steps in data["steps"].items():
        lines.append(f"- {model_name}: fixed {steps['fixed']}; Loop {steps['loop_batch_257']}")
    report = "\n".join(lines) + "\n"
    print(report)
    write_text_atomic(args.json, json.dumps(data, indent=2) + "\n")
    write_text_atomic(args.markdown, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
