#!/usr/bin/env python
"""Every road of issue 21 around the package, measured: the road × model × graph table.

Usage: python scripts/roads.py [--markdown results/roads.md] [--json results/roads.json]
                               [--models 64,2d,f64] [--work DIR] [--iree-venv VENV]

Three models, weights ×10: the benchmark model `suite_model(64)`, the 10-block 2-D mlp/Tanh flow
and `suite_model(64).double()`. Each is exported with `iresnet_onnx.export` (defaults; also
`spectral_norm="folded"`, folded + `inverse="fixed"`, `functions=True` and `openvino_ir=True`
where a road needs them). Each road writes a transformed copy of a graph the way a deployment
engineer would; the package's own verifier holds it against the export's golden vectors
(`verify_golden(..., graph_file=...)`, the rules of `verify --golden --graph`) on onnxruntime:cpu,
or openvino:cpu for the OpenVINO roads. A cell is the worst output (largest |Δ| relative to its
parity tolerance) with pass/fail, whether the inverse's step counts equal those of the export's
own graph on the same runtime, or the first line of the error that stopped the road.

Roads: (a) OpenVINO IR by `convert_model` + `save_model` (fp16 weights by default; also
`compress_to_fp16=False`) and the package's `openvino_ir=True`; (b) `onnxslim.slim`,
`onnxsim.simplify` (Loop nodes and solver inputs before → after); (c) onnxconverter-common's
`convert_float_to_float16`, with and without `keep_io_types`; (d) onnxruntime's
`quantize_dynamic` (quantized MatMuls, at top level and inside Loop/Scan bodies); (e)
`onnx.version_converter` to opsets 13, 17, 21, and of a `functions=True` export to 17, 21;
(f) PyTorch's legacy exporter (`torch.onnx.export(dynamo=False)`) of the forward, the density,
`model.inverse` and `freeze(model).inverse` (also input by input against eager). With
`--iree-venv` (a separate venv holding iree-base-compiler/iree-base-runtime): IREE on the float64
model with and without `--iree-input-demote-f64-to-f32=false` and on the 2-D mlp model.
"""

import argparse
import json
import logging
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from iresnet_onnx import export, freeze
from iresnet_onnx import runtimes as rt
from iresnet_onnx._atomic import write_text_atomic
from iresnet_onnx._golden import _CHECKS as CHECKS
from iresnet_onnx._golden import read_case, verify_golden
from iresnet_onnx._inspect import graph_summary
from iresnet_onnx._manifest import read_manifest
from iresnet_onnx._tolerances import compare
from iresnet_onnx.bench import machine, suite_model
from iresnet_onnx.graphs import GRAPHS as GRAPH_SPECS

MODELS = {
    "64": ("iResNet(64), float32", lambda: suite_model(64)),
    "2d": ("2-D mlp/Tanh ×10 blocks", lambda: suite_model(
        2, nblocks=10, variant="mlp", hidden_size=32, activation="Tanh")),
    "f64": ("iResNet(64), float64", lambda: suite_model(64).double()),
}  # fmt: skip
FORMS = {
    "loop": {},  # the default export: loop / inverse loop
    "folded": {"spectral_norm": "folded"},
    "folded+fixed": {"spectral_norm": "folded", "inverse": "fixed"},
    "functions": {"functions": True},
    "ir": {"openvino_ir": True},
}
GRAPHS = ("forward", "inverse", "density")
ORT, OV = "onnxruntime:cpu", "openvino:cpu"
QUANTIZED = {"MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QLinearMatMul"}


@dataclass
class Job:
    """What a road's transform gets: the model, its export, the graph, where to write."""

    model: Any
    folder: Path
    graph: str
    out: Path


@dataclass(frozen=True)
class Road:
    family: str
    name: str
    form: str
    make: Callable[[Job], Path]
    """Writes the transformed graph (or raises) and returns its path."""
    runtime: str = ORT
    graphs: tuple[str, ...] = GRAPHS


# ----------------------------------------------------------------------------- the transforms


def as_exported(job: Job) -> Path:
    return job.folder / f"{job.graph}.onnx"


def package_ir(job: Job) -> Path:
    return job.folder / f"{job.graph}.xml"


def ovc(compress: bool) -> Callable[[Job], Path]:
    def make(job: Job) -> Path:
        import openvino as ov

        path = job.out.with_suffix(".xml")
        converted = ov.convert_model(str(as_exported(job)))
        ov.save_model(converted, str(path), compress_to_fp16=compress)
        return path

    return make


def slim(job: Job) -> Path:
    import onnxslim

    onnx.save(onnxslim.slim(onnx.load(as_exported(job))), job.out)
    return job.out


def simplify(job: Job) -> Path:
    import onnxsim

    simplified, ok = onnxsim.simplify(onnx.load(as_exported(job)))
    if not ok:
        raise RuntimeError("onnxsim.simplify: its own check failed")
    onnx.save(simplified, job.out)
    return job.out


def fp16(keep_io_types: bool) -> Callable[[Job], Path]:
    def make(job: Job) -> Path:
        from onnxconverter_common import float16

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "the float32 number inf will be truncated"
            converted = float16.convert_float_to_float16(
                onnx.load(as_exported(job)), keep_io_types=keep_io_types
            )
        onnx.save(converted, job.out)
        return job.out

    return make


def quantize(job: Job) -> Path:
    from onnxruntime.quantization import quantize_dynamic

    logging.disable(logging.WARNING)  # "please run pre-processing", "unsupported type": per node
    try:
        quantize_dynamic(as_exported(job), job.out)
    finally:
        logging.disable(logging.NOTSET)
    return job.out


def convert(opset: int) -> Callable[[Job], Path]:
    def make(job: Job) -> Path:
        converted = onnx.version_converter.convert_version(onnx.load(as_exported(job)), opset)
        onnx.save(converted, job.out)
        return job.out

    return make


class Call(torch.nn.Module):
    """``function(model, input)`` as a module, for the tracer."""

    def __init__(self, model: Any, function: Callable[[Any, torch.Tensor], Any]):
        super().__init__()
        self.model, self.function = model, function

    def forward(self, t: torch.Tensor) -> Any:
        return self.function(self.model, t)


LEGACY = {  # graph → (what the module calls, input name, output names)
    "forward": (lambda m, x: m(x), "x", ["y"]),
    "density": (lambda m, x: (m.log_prob(x), m.log_abs_det_jacobian(x), m(x)), "x",
                ["log_prob", "log_det", "z"]),
    "inverse": (lambda m, y: m.inverse(y), "y", ["x"]),
    "frozen inverse": (lambda m, y: m.inverse_with_stats(y), "y", ["x", "iterations", "residual"]),
}  # fmt: skip


def examples(model: Any) -> dict[str, torch.Tensor]:
    """The legacy exporter's trace input (7 standard-normal rows) and inputs it did not see."""
    first = next(model.parameters())
    rows = {"the trace input (7 rows)": (0, 7), "7 other rows": (1, 7), "1 row": (3, 1),
            "64 rows": (4, 64), "128 rows": (7, 128)}  # fmt: skip
    return {
        name: torch.from_numpy(
            np.random.default_rng(seed).standard_normal((n, first.shape[-1]))
        ).to(first.dtype)
        for name, (seed, n) in rows.items()
    }


def legacy(what: str, dynamic: bool = True) -> Callable[[Job], Path]:
    """torch.onnx.export(dynamo=False), traced on 7 rows, with a dynamic batch (``dynamic``) or
    without (the exporter's default: the batch fixed at 7)."""

    def make(job: Job) -> Path:
        function, name, outputs = LEGACY[what]
        model = freeze(job.model) if what.startswith("frozen") else job.model
        example = next(iter(examples(job.model).values()))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings: what this road is about
            torch.onnx.export(
                Call(model, function), (example,), str(job.out), dynamo=False,
                input_names=[name], output_names=outputs,
                dynamic_axes={name: {0: "batch"}} if dynamic else None,
            )  # fmt: skip
        return job.out

    return make


def legacy_probe(model: Any, path: Path, like: Any, work: Path) -> dict[str, str]:
    """A legacy-exported forward or inverse on its trace input and on inputs it did not see:
    max |Δ| against eager, or the error (the golden check stops at the first error)."""
    session = rt.load(path, ORT, like=like)
    eager = model if like.graph.name == "forward" else model.inverse
    probe = {}
    for name, tensor in examples(model).items():
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # an unconverged eager inverse: same for both
                expected = eager(tensor).numpy()
            probe[name] = f"{float(abs(session.run(tensor.numpy()) - expected).max()):.1e}"
        except Exception as error:
            probe[name] = f"✗ {first_line(error, work)[:120]}"
    return probe


ROADS = [
    *(Road("–", "as exported", form, as_exported) for form in ("loop", "folded", "folded+fixed")),
    Road("–", "as exported", "loop", as_exported, OV),
    Road("a", "convert_model + save_model (default: fp16 weights)", "loop", ovc(True), OV),
    Road("a", "convert_model + save_model(compress_to_fp16=False)", "loop", ovc(False), OV),
    Road("a", "export(openvino_ir=True)", "ir", package_ir, OV),
    *(Road("b", name, form, make) for name, make in (("onnxslim.slim", slim),
      ("onnxsim.simplify", simplify)) for form in ("loop", "folded")),
    *(Road("c", f"convert_float_to_float16{keep}", form, fp16(bool(keep)))
      for keep in ("", "(keep_io_types=True)") for form in ("loop", "folded", "folded+fixed")),
    *(Road("d", "quantize_dynamic", form, quantize) for form in ("loop", "folded", "folded+fixed")),
    *(Road("e", f"version_converter → {opset}", "loop", convert(opset)) for opset in (13, 17, 21)),
    *(Road("e", f"version_converter → {opset}", "functions", convert(opset)) for opset in (17, 21)),
    Road("f", "torch.onnx.export(dynamo=False) of model.forward", "loop", legacy("forward"),
         graphs=("forward",)),
    Road("f", "torch.onnx.export(dynamo=False) of model.forward, no dynamic_axes", "loop",
         legacy("forward", dynamic=False), graphs=("forward",)),
    Road("f", "torch.onnx.export(dynamo=False) of log_prob, log_det, z", "loop",
         legacy("density"), graphs=("density",)),
    Road("f", "torch.onnx.export(dynamo=False) of model.inverse", "loop", legacy("inverse"),
         graphs=("inverse",)),
    Road("f", "torch.onnx.export(dynamo=False) of freeze(model).inverse_with_stats", "loop",
         legacy("frozen inverse"), graphs=("inverse",)),
]  # fmt: skip


# ----------------------------------------------------------------------------- the measurements


def first_line(error: BaseException, work: Path) -> str:
    text = next((line for line in str(error).splitlines() if line.strip()), "")
    return f"{type(error).__name__}: {text.replace(f'{work}/', '').strip()}"


def structure(path: Path, like: Any) -> dict[str, Any]:
    """Loop nodes, quantized MatMuls (all; inside Loop/Scan bodies), float MatMul/Gemm left in
    bodies, the data input's type, float16 initializers and the solver inputs the file still
    takes (`ModelInfo.solver_inputs`)."""
    proto = onnx.load(path)
    summary = graph_summary(proto)
    ops = summary["op_counts"]
    top = [node.op_type for node in proto.graph.node]
    quantized = sum(n for op, n in ops.items() if op.split(".")[-1] in QUANTIZED)
    floats = sum(ops.get(op, 0) for op in ("MatMul", "Gemm"))
    facts = {
        "loops": ops.get("Loop", 0),
        "scans": ops.get("Scan", 0),
        "quantized": quantized,
        "quantized_in_bodies": quantized - sum(op in QUANTIZED for op in top),
        "float_matmul_in_bodies": floats - sum(op in ("MatMul", "Gemm") for op in top),
        "input_dtype": summary["inputs"][0]["dtype"],
        "float16_initializers": sum(
            init.data_type == onnx.TensorProto.FLOAT16 for init in proto.graph.initializer
        ),
    }
    try:
        facts["solver_inputs"] = list(rt.read_model(path, like)[1].solver_inputs)
    except Exception as error:  # a file the package cannot read: the verification says why
        facts["solver_inputs"] = f"unreadable ({type(error).__name__})"
    return facts


def steps_of(report: Any) -> dict[str, list[int]]:
    return {row.case: row.iterations for row in report.rows if row.iterations is not None}


def summarize(report: Any, baseline: dict[str, list[int]], work: Path) -> dict[str, Any]:
    """The cell: worst output against its tolerance, pass/fail, step counts against the export's
    own graph on the same runtime."""
    if report.unsupported:
        reason = report.unsupported[0]["reason"].splitlines()[0].replace(f"{work}/", "")
        return {"passed": False, "text": f"✗ refused: {reason}", "error": reason}
    rows = report.rows
    if not rows:  # the runtime failed on the golden cases: the report says why, as a problem
        reason = report.problems[0].splitlines()[0].replace(f"{work}/", "")
        return {"passed": False, "text": f"✗ {reason}", "error": reason}
    worst = max(rows, key=lambda r: r.max_abs / r.tolerance if r.max_abs == r.max_abs else 1e300)
    steps = steps_of(report)
    equal = (
        None if not steps or not baseline else all(baseline.get(c) == s for c, s in steps.items())
    )
    within = all(row.max_abs <= row.tolerance for row in rows)
    sign = "≤" if worst.max_abs <= worst.tolerance else ">"
    text = f"{'✓' if report.passed else '✗'} {worst.max_abs:.1e} {sign} {worst.tolerance:.1e}"
    text += "" if worst.tensor in ("x", "y") else f" ({worst.tensor})"
    text += "" if equal is None else (", steps =" if equal else ", steps ≠")
    text += " (step rule)" if within and not report.passed else ""
    cell = {"passed": report.passed, "text": text, "max_abs": worst.max_abs,
            "tolerance": worst.tolerance, "tensor": worst.tensor}  # fmt: skip
    if steps:
        eager = {r.case: r.eager_iterations for r in rows if r.eager_iterations}
        cell.update(steps_equal=equal, steps=steps, baseline_steps=baseline, eager_steps=eager)
    return cell


def facts_text(family: str, facts: dict[str, Any], before: dict[str, Any], graph: str) -> str:
    """What a road family changes in the graph's structure, for the cell."""
    if not facts:
        return ""
    if family == "b":
        text = f"; Loops {before.get('loops')}→{facts['loops']}"
        if graph == "inverse":
            kept = facts["solver_inputs"]
            text += f"; solver inputs {', '.join(kept) if kept else 'folded'}"
        return text
    if family == "d":
        return (
            f"; {facts['quantized']} quantized MatMuls, {facts['quantized_in_bodies']} in "
            f"Loop/Scan bodies ({facts['float_matmul_in_bodies']} float MatMul/Gemm left there)"
        )
    if family == "c":
        return f"; input {facts['input_dtype']}, {facts['float16_initializers']} fp16 initializers"
    if family == "f":
        return f"; Loops {facts['loops']}"
    return ""


class Runner:
    """Exports each model once per form (lazily), and measures roads on them."""

    def __init__(self, work: Path):
        self.work = work
        self.exports: dict[tuple[str, str], Path | str] = {}
        self.baselines: dict[tuple[Path, str], dict[str, list[int]]] = {}

    def export(self, key: str, model: Any, form: str) -> Path | str:
        """The export folder, or the first line of the error that refused the export."""
        if (key, form) not in self.exports:
            folder = self.work / key / form
            started = time.perf_counter()
            try:
                export(model, folder, **FORMS[form])
                self.exports[key, form] = folder
            except Exception as error:
                self.exports[key, form] = first_line(error, self.work)
            print(f"  export {key} {form}: {time.perf_counter() - started:.0f} s", flush=True)
        return self.exports[key, form]

    def baseline(self, folder: Path, runtime: str) -> dict[str, list[int]]:
        """The step counts of the export's own inverse graph on ``runtime``, per golden case."""
        if (folder, runtime) not in self.baselines:
            try:
                report = verify_golden(folder, read_manifest(folder), runtimes=[runtime],
                                       graph_file=folder / "inverse.onnx")  # fmt: skip
                self.baselines[folder, runtime] = steps_of(report)
            except Exception:
                self.baselines[folder, runtime] = {}
        return self.baselines[folder, runtime]

    def measure(self, road: Road, key: str, model: Any, graph: str) -> dict[str, Any]:
        folder = self.export(key, model, road.form)
        if isinstance(folder, str):
            return {"passed": False, "text": f"✗ export refused: {folder}", "error": folder}
        slug = "".join(c if c.isalnum() else "-" for c in f"{road.family}-{road.name}")[:60]
        job = Job(
            model, folder, graph, folder.parent / f"roads-{road.form}" / f"{graph}.{slug}.onnx"
        )
        job.out.parent.mkdir(parents=True, exist_ok=True)
        _, like = rt.read_model(folder / f"{graph}.onnx")
        try:
            path = road.make(job)
        except Exception as error:
            text = first_line(error, self.work)
            return {"passed": False, "text": f"✗ {text}", "error": text, "stage": "transform"}
        facts = structure(path, like) if path.suffix == ".onnx" else {}
        before = structure(folder / f"{graph}.onnx", like) if road.family == "b" else {}
        try:
            report = verify_golden(folder, read_manifest(folder), runtimes=[road.runtime],
                                   graph_file=path)  # fmt: skip
        except Exception as error:
            text = first_line(error, self.work)
            cell = {"passed": False, "text": f"✗ {text}", "error": text, "stage": "verify"}
        else:
            cell = summarize(report, self.baseline(folder, road.runtime), self.work)
        cell["text"] += facts_text(road.family, facts, before, graph)
        if road.family == "f" and graph in ("forward", "inverse"):
            cell["probe"] = legacy_probe(model, path, like, self.work)
        return {**cell, "facts": facts, "file": str(path.relative_to(self.work))}


# ----------------------------------------------------------------------------- IREE


DEMOTE_OFF = "--iree-input-demote-f64-to-f32=false"
IREE_CASES = [  # (model, graph, extra iree-compile flags) on the default export
    *(("f64", graph, flags) for graph in GRAPHS for flags in ((), (DEMOTE_OFF,))),
    *(("2d", graph, ()) for graph in GRAPHS),
]
IREE_RUN = """
import sys, numpy as np, iree.runtime as ireert
vmfb, out, data = sys.argv[1:]
context = ireert.SystemContext(config=ireert.Config("local-task"))
with open(vmfb, "rb") as f:
    module = ireert.VmModule.copy_buffer(context.instance, f.read())
context.add_vm_module(module)
name = next(n for n in module.function_names if not n.startswith("__") and "$" not in n)
result = context.modules.module[name](np.load(data))
result = result if isinstance(result, (tuple, list)) else [result]
np.savez(out, *[np.asarray(r.to_host()) for r in result])
"""


def iree_step(command: list[Any], work: Path) -> tuple[float, str | None]:
    """(seconds, None) or (seconds, the first error line of a failed tool)."""
    started = time.perf_counter()
    try:
        done = subprocess.run([str(c) for c in command], capture_output=True, text=True,
                              timeout=1200)  # fmt: skip
    except subprocess.TimeoutExpired:
        return time.perf_counter() - started, "timed out after 1200 s"
    seconds = time.perf_counter() - started
    if done.returncode == 0:
        return seconds, None
    lines = (done.stderr or done.stdout).splitlines()
    error = next((line for line in lines if "error" in line.lower()), lines[-1] if lines else "")
    error = re.sub(r"(Error invoking function: |Error registering modules: )?c/runtime/src/\S+:\d+: ",
                   "", error)  # fmt: skip
    return seconds, re.sub(r"; while .*$", "", error.replace(f"{work}/", "")).strip()[:300]


def iree_golden(
    venv: Path, out: Path, folder: Path, graph: str, cast: Any, work: Path
) -> dict[str, Any]:
    """The compiled module on every golden case (inputs cast to ``cast`` if given), each output
    against the golden vector's parity tolerance; the inverse: x's max |Δ| and the step counts."""
    golden = read_manifest(folder)["golden"]
    tolerance, rows, iterations = golden["tolerances"], [], {}
    for case in golden["graphs"][graph]:
        batch, expected = read_case(folder / case, graph)
        np.save(out / "input.npy", batch if cast is None else batch.astype(cast))
        _, error = iree_step([venv / "bin" / "python", out / "run.py", out / f"{graph}.vmfb",
                              out / "out.npz", out / "input.npy"], work)  # fmt: skip
        if error:
            return {"text": f"✗ run: {error}", "error": error}
        outputs = dict(zip(GRAPH_SPECS[graph].outputs, np.load(out / "out.npz").values()))
        for tensor in GRAPH_SPECS[graph].per_row:
            rows.append(compare("iree", CHECKS[tensor], batch.shape, outputs[tensor],
                                expected[tensor], tolerance, 0.0))  # fmt: skip
            rows[-1].tensor = tensor
        if "iterations" in outputs:
            iterations[case] = [outputs["iterations"].tolist(), expected["iterations"].tolist()]
    worst = max(rows, key=lambda r: r.max_abs / r.tolerance if r.max_abs == r.max_abs else 1e300)
    if iterations:  # no verdict: the step rule's widening needs the graph's K and eager's steps
        steps, eager = iterations[case]
        text = f"x {worst.max_abs:.1e}; steps at batch {len(batch)} {steps} (eager {eager})"
    else:
        verdict = "✓" if all(r.passed for r in rows) else "✗"
        text = f"{verdict} {worst.max_abs:.1e} vs {worst.tolerance:.1e}"
        text += "" if worst.tensor == "y" else f" ({worst.tensor})"
    return {"text": text, "max_abs": worst.max_abs, "tolerance": worst.tolerance,
            "iterations": iterations, "dtypes": {k: str(v.dtype) for k, v in outputs.items()}}  # fmt: skip


def iree_case(venv: Path, folder: Path, graph: str, flags: tuple, work: Path) -> dict[str, Any]:
    """iree-import-onnx → iree-compile (llvm-cpu) → iree.runtime on the golden cases; a float64
    graph whose module refuses float64 inputs (IREE demotes f64 to f32 by default) is also run
    with its inputs cast to float32."""
    out = work / "iree" / folder.parent.name / (graph + ("-flagged" if flags else ""))
    out.mkdir(parents=True, exist_ok=True)
    mlir, vmfb = out / f"{graph}.mlir", out / f"{graph}.vmfb"
    (out / "run.py").write_text(IREE_RUN)
    record: dict[str, Any] = {"flags": list(flags)}
    steps = [("import", [venv / "bin" / "iree-import-onnx", folder / f"{graph}.onnx", "-o", mlir]),
             ("compile", [venv / "bin" / "iree-compile", mlir, "--iree-hal-target-backends=llvm-cpu",
                          *flags, "-o", vmfb])]  # fmt: skip
    for stage, command in steps:
        record[f"{stage}_s"], error = iree_step(command, work)
        if error:
            return {**record, "text": f"✗ {stage}: {error}"}
    result = iree_golden(venv, out, folder, graph, None, work)
    if "buffer view byte length" in result.get("error", ""):  # the module wants float32 inputs
        cast = iree_golden(venv, out, folder, graph, np.float32, work)
        found = re.search(r"OUT_OF_RANGE; (.*)", result["error"])
        reason = found.group(1) if found else result["error"][:80]
        text = f"float64 inputs fail ({reason}); inputs cast to float32: {cast['text']}"
        result = {**result, "text": text, "float32_inputs": cast}
    return {**record, **result}


def iree_checks(runner: Runner, venv: Path) -> dict[str, Any]:
    from importlib.metadata import version

    checks: dict[str, Any] = {"cases": []}
    done = subprocess.run([venv / "bin" / "pip", "list"], capture_output=True, text=True)
    checks["versions"] = [line for line in done.stdout.splitlines() if "iree" in line.lower()]
    checks["onnx_here"] = version("onnx")
    for key, graph, flags in IREE_CASES:
        folder = runner.export(key, MODELS[key][1](), "loop")
        if isinstance(folder, str):
            continue
        result = iree_case(venv, folder, graph, flags, runner.work)
        checks["cases"].append({"model": key, "graph": graph, **result})
        print(f"  IREE {key} {graph} {' '.join(flags)}: {result['text'][:120]}", flush=True)
    return checks


def render_iree(checks: dict[str, Any], venv: Path) -> list[str]:
    lines = [
        "## IREE",
        "",
        f"In a separate venv ({', '.join(' '.join(v.split()) for v in checks['versions'])}), on",
        "the default export (loop / inverse loop): `iree-import-onnx GRAPH.onnx -o G.mlir`,",
        "`iree-compile G.mlir --iree-hal-target-backends=llvm-cpu [FLAGS] -o G.vmfb`, then",
        "`iree.runtime` (local-task) on the golden cases (batch 1, 7, 64), each output against the",
        "golden vector's parity tolerance (✓/✗ max |Δ| vs tolerance; the inverse: x's max |Δ| to",
        "eager — onnxruntime's on the same graph is in the tables above — and the per-block steps",
        "at batch 64, eager's in brackets). IREE folds the inverse's initializer-backed solver",
        "inputs (the module takes y only).",
        "",
        "| model | graph | iree-compile flags | import / compile s | outcome |",
        "|---|---|---|---|---|",
    ]
    for case in checks["cases"]:
        seconds = "/".join(f"{case[k]:.0f}" for k in ("import_s", "compile_s") if k in case)
        flags = " ".join(f"`{f}`" for f in case["flags"]) or "(defaults)"
        text = short(case["text"], 240)
        lines.append(
            f"| {MODELS[case['model']][0]} | {case['graph']} | {flags} | {seconds} | {text} |"
        )
    return [*lines, ""]


# ----------------------------------------------------------------------------- the report

TOOLS = ("torch", "onnx", "onnxruntime", "openvino", "onnxslim", "onnxsim",
         "onnxconverter-common")  # fmt: skip
LEGEND = [
    "A cell: ✓/✗ (the package's verdict: `verify_golden(..., graph_file=FILE)`, the rules of",
    "`iresnet-onnx verify DIR --golden --graph FILE`), then the worst output's max |Δ| against its",
    "parity tolerance (relative to the output's scale; the tensor named where it is not x/y),",
    "golden cases at batch 1, 7, 64. `steps =`/`≠`: the inverse's per-block step counts equal /",
    "differ from those of the export's own inverse.onnx on the same runtime (the step rule",
    "against eager is part of ✓/✗; `(step rule)`: within tolerance, failed on step counts or",
    "convergence flags). Otherwise the first line of the error that stopped the road. Runtime:",
    "onnxruntime:cpu except the OpenVINO roads. Export forms: loop (the default: loop /",
    'inverse loop), folded (`spectral_norm="folded"`), folded+fixed (also `inverse="fixed"`),',
    "functions (`functions=True`), ir (`openvino_ir=True`).",
]


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in TOOLS:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} not installed")
    return ", ".join(found)


def short(text: str, limit: int = 170) -> str:
    """A cell's text for the table: onnxruntime's boilerplate, file paths and C++ signatures
    out, cut at ``limit`` (the JSON keeps the whole first line)."""
    text = re.sub(r"\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    text = re.sub(r"Load model from \S+ failed:", "", text)
    text = re.sub(r"/onnxruntime_src/\S+ onnxruntime::[^)]*\) ", "", text)
    text = re.sub(r"\S*/\S+\.(onnx|xml)\b", "FILE", text).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def compact(cell: dict[str, Any], family: str) -> str:
    """One graph's outcome in a word or two, for the summary (`no-op`: an fp16 converter that
    left no fp16 tensor, a quantizer that quantized nothing)."""
    if "max_abs" in cell:
        steps = " steps≠" if cell.get("steps_equal") is False else ""
        facts = cell.get("facts", {})
        untouched = (family == "c" and facts.get("float16_initializers") == 0) or (
            family == "d" and facts.get("quantized") == 0
        )
        noop = " (no-op)" if untouched else ""
        return f"{'✓' if cell['passed'] else '✗'} {cell['max_abs']:.0e}{steps}{noop}"
    text = cell["text"]
    if "refused" in text or "UsageError" in text:
        return "✗ refused"
    if cell.get("stage") == "transform":
        return "✗ no file"
    return "✗ load" if "cannot load" in text else "✗ run"


def summary_lines(results: dict[str, list[dict[str, Any]]]) -> list[str]:
    keys = list(results)
    lines = [
        "## Summary: forward / inverse / density",
        "",
        "Worst max |Δ| per graph with the verdict (`✗ no file`: the tool failed; `✗ load` / `✗ run`:",
        "the runtime failed on the file; `✗ refused`: the package or runtime refused, with a",
        "reason; `steps≠`: step counts differ from the export's own graph; `(no-op)`: the converter",
        "left no fp16 tensor / the quantizer quantized nothing). Details below.",
        "",
        "| road | export | runtime | " + " | ".join(MODELS[k][0] for k in keys) + " |",
        "|---|---|---|" + "---|" * len(keys),
    ]
    for index, row in enumerate(results[keys[0]]):
        cells = []
        for key in keys:
            entry = results[key][index]["cells"]
            family = results[key][index]["family"]
            cells.append(" / ".join(compact(entry[g], family) for g in GRAPHS if g in entry))
        name = row["road"] if row["family"] == "–" else f"({row['family']}) {row['road']}"
        lines.append(f"| {name} | {row['form']} | {row['runtime']} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def probe_text(value: str) -> str:
    """A probe's error as the node that failed (onnxruntime's Reshape of the traced gather)."""
    found = re.search(r"running (\w+) node\. Name:'([^']+)'", value)
    return f"✗ {found.group(1)} {found.group(2)} fails" if found else short(value, 110)


def probe_lines(results: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = [
        "## The legacy exporter, input by input",
        "",
        "`torch.onnx.export(dynamo=False)` with a dynamic batch, traced on 7 rows; then the file on",
        "onnxruntime:cpu against eager on the trace input and on inputs it did not see (max |Δ|,",
        "or the error).",
        "",
    ]
    header = None
    for key, rows in results.items():
        for row in rows:
            for cell in row["cells"].values():
                if "probe" not in cell:
                    continue
                if header is None:
                    header = list(cell["probe"])
                    lines += ["| model | road | " + " | ".join(header) + " |",
                              "|---|---|" + "---|" * len(header)]  # fmt: skip
                values = [probe_text(cell["probe"][name]) for name in header]
                lines.append(f"| {MODELS[key][0]} | {row['road']} | " + " | ".join(values) + " |")
    return [*lines, ""]


def render(results: dict[str, list[dict[str, Any]]], about: dict[str, Any]) -> list[str]:
    lines = [
        "# Every road around the package, measured (issue 21)",
        "",
        f"`python scripts/roads.py` — {about['cpu']}, {about['cores']} CPUs; {versions()}.",
        "Weights ×10 (the contraction bites), opset 18.",
        "",
        *LEGEND,
        "",
        *summary_lines(results),
    ]
    for key, rows in results.items():
        lines += [f"## {MODELS[key][0]}", "", "| road | export | runtime | " + " | ".join(GRAPHS)
                  + " |", "|---|---|---|" + "---|" * len(GRAPHS)]  # fmt: skip
        for row in rows:
            cells = [short(row["cells"][g]["text"]) if g in row["cells"] else "–" for g in GRAPHS]
            name = row["road"] if row["family"] == "–" else f"({row['family']}) {row['road']}"
            lines.append(
                f"| {name} | {row['form']} | {row['runtime']} | " + " | ".join(cells) + " |"
            )
        lines.append("")
    return [*lines, *probe_lines(results)]


def run_roads(runner: Runner, keys: list[str]) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = {}
    for key in keys:
        name, build = MODELS[key]
        model = build()
        print(f"{name}", flush=True)
        results[key] = []
        for road in ROADS:
            started = time.perf_counter()
            cells = {graph: runner.measure(road, key, model, graph) for graph in road.graphs}
            results[key].append({"family": road.family, "road": road.name, "form": road.form,
                                 "runtime": road.runtime, "cells": cells})  # fmt: skip
            verdicts = " | ".join(cells[graph]["text"][:60] for graph in road.graphs)
            print(f"  ({road.family}) {road.name} [{road.form}, {road.runtime}] "
                  f"{time.perf_counter() - started:.0f} s: {verdicts}", flush=True)  # fmt: skip
    return results


NUMBERS = re.compile(r"\[\s*([-+.\deE]+(?:,\s*[-+.\deE]+)*)\s*\]")


def dump_json(data: dict[str, Any]) -> str:
    """Indented JSON with lists of numbers (step counts) on one line."""
    text = json.dumps(data, indent=2, default=str)
    return NUMBERS.sub(lambda m: "[" + ", ".join(re.split(r",\s*", m.group(1))) + "]", text) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", type=Path, default=Path("results/roads.json"))
    parser.add_argument("--markdown", type=Path, default=Path("results/roads.md"))
    parser.add_argument("--models", default=",".join(MODELS), help="of " + ", ".join(MODELS))
    parser.add_argument("--work", type=Path, help="keep the exports and files here")
    parser.add_argument("--iree-venv", type=Path,
                        help="a venv with iree-base-compiler/runtime: adds the IREE section")  # fmt: skip
    args = parser.parse_args()
    keys = args.models.split(",")
    if set(keys) - set(MODELS):
        parser.error(f"--models: {args.models!r}; choose from {', '.join(MODELS)}")
    import onnxruntime

    onnxruntime.set_default_logger_severity(3)  # a failing road's kernel errors are in its cell
    work = args.work or Path(tempfile.mkdtemp(prefix="roads-"))
    runner = Runner(work)
    about = machine()
    results = run_roads(runner, keys)
    lines = render(results, about)
    data: dict[str, Any] = {"machine": about, "versions": versions(), "results": results}
    if args.iree_venv:
        data["iree"] = iree_checks(runner, args.iree_venv)
        lines += render_iree(data["iree"], args.iree_venv)
    report = "\n".join(lines) + "\n"
    print(report)
    write_text_atomic(args.json, dump_json(data))
    write_text_atomic(args.markdown, report)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
