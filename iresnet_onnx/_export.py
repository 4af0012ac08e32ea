"""``export(model, out_dir)``: the export folder, written in named steps — build the graphs, write
them, the checkpoint and the golden vectors, validate, record the manifest.

An export folder is complete or absent: everything is written into a temporary folder beside
``out_dir`` and swapped in only once it is whole and validated (:mod:`iresnet_onnx._atomic`), so a
failed, interrupted or racing export never damages the good export already there. An export that
misses parity is moved to ``<out_dir>.rejected`` for inspection, where no pipeline picks it up.
"""

import dataclasses
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx
import torch

from . import parity
from . import runtimes as rt
from ._atomic import atomic_directory, check_replaceable
from ._cadence import auto_steps_per_check
from ._checkpoint import save_checkpoint
from ._golden import verify_golden, write_golden
from ._inspect import graph_summary
from ._layout import CHECKPOINT, MANIFEST, ir_files, ort_file
from ._manifest import write_manifest
from ._torch_session import EagerSession
from .errors import (
    ExportError,
    ParityError,
    RuntimeUnavailableError,
    UnsupportedModelError,
    UsageError,
)
from .exporters import (
    DEFAULT_OPSET,
    STEPS_PER_CHECK_LIMIT,
    ExportOptions,
    ModelSpec,
    build_graphs,
    fixed_steps,
    model_spec,
    with_solver_defaults,
)
from .graphs import GRAPHS

__all__ = ["VALIDATION_RUNTIMES", "ExportResult", "export"]

VALIDATION_RUNTIMES = ["onnxruntime:cpu"]


@dataclass
class ExportResult:
    out_dir: Path
    paths: dict[str, Path]
    """Every file of the folder by role: forward, inverse, density (``…_ort``), checkpoint,
    manifest."""
    seconds: float
    """The whole export: build, write, golden vectors, validation, manifest, folder in place."""
    report: Any = None
    """The :class:`~iresnet_onnx.parity.ParityReport` of the validation, or None."""
    manifest: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def forward(self) -> Path:
        return self.paths["forward"]

    @property
    def inverse(self) -> Path:
        return self.paths["inverse"]

    @property
    def density(self) -> Path:
        return self.paths["density"]

    @property
    def checkpoint(self) -> Path:
        return self.paths["checkpoint"]


def export(
    model: Any,
    out_dir: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    spectral_norm: str = "loop",
    validate: bool = True,
    inverse: str = "loop",
    functions: bool = False,
    ort_format: bool = False,
    steps_per_check: int | str = "auto",
    input_radius: float | None = None,
    runtimes: list[str] | None = None,
    batch_sizes: tuple[int, ...] | None = None,
    seed: int = 0,
    maxiter: int | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    exporter: str = "iresnet_onnx",
    openvino_ir: bool = False,
) -> ExportResult:
    """Export an ``iResNet`` or ``iResNetBlock`` to the folder ``out_dir`` (see the README's
    options list). ``spectral_norm``: "loop" (σ by a power-iteration Loop from the raw weights) or
    "folded" (A′ baked in); ``inverse``: "loop" (data-dependent fixed-point Loops, testing every
    ``steps_per_check`` steps; "auto" picks that K from the model's own step counts,
    :mod:`iresnet_onnx._cadence`) or "fixed" (a gated Scan sized for ‖y‖₂ ≤ ``input_radius``, for
    runtimes without Loop); ``functions``: custom-domain ONNX functions instead of plain nodes;
    ``ort_format``: also ``.ort`` files; ``openvino_ir``: also OpenVINO IR with uncompressed weights,
    checked against the golden vectors on ``openvino:cpu``; ``exporter="torch"``: the same folder
    through ``torch.onnx.export`` and :func:`iresnet_onnx.onnx_translation_table`; ``maxiter``,
    ``atol``, ``rtol``: the inverse's defaults (the model passed in is untouched).

    With ``validate`` the graphs are compared with eager PyTorch on fresh inputs on ``runtimes``
    (default onnxruntime CPU); a miss raises :class:`~iresnet_onnx.errors.ParityError`, leaves the
    previous ``out_dir`` as it was and sets the rejected export aside in ``<out_dir>.rejected``.
    """
    started = time.perf_counter()
    auto = _is_auto(steps_per_check)  # K is the model's: known once its solver settings are
    options = ExportOptions(
        opset=opset, spectral_norm=spectral_norm, steps_per_check=8 if auto else steps_per_check,
        inverse=inverse, functions=functions, input_radius=input_radius, exporter=exporter,
    )  # fmt: skip
    out_dir = Path(out_dir)
    check_replaceable(out_dir, MANIFEST)  # before any work; never someone else's folder
    validation = _validation_runtimes(runtimes) if validate else None
    if openvino_ir:
        _check_openvino_ir(model)
    if maxiter is not None or atol is not None or rtol is not None:
        model = with_solver_defaults(model, maxiter=maxiter, atol=atol, rtol=rtol)

    spec = model_spec(model)  # refuses what no graph can hold before any solve
    if auto and options.inverse == "loop":
        options = dataclasses.replace(options, steps_per_check=auto_steps_per_check(model))
    graphs = build_graphs(spec, options, model)
    if validation is not None:
        _refuse_what_cannot_run(graphs, validation)
    with atomic_directory(out_dir, MANIFEST) as folder:
        paths = _write_graphs(folder, graphs, ort_format, openvino_ir)
        paths["checkpoint"] = save_checkpoint(model, folder / CHECKPOINT)
        solver = {"maxiter": spec.maxiter, "atol": spec.atol, "rtol": spec.rtol}
        golden, golden_files = write_golden(
            folder, lambda graph: EagerSession(model, graph=graph), spec.input_size, spec.dtype,
            solver, seed,
        )  # fmt: skip
        report = None
        if validation is not None:
            report = _validate(model, folder, validation, batch_sizes, seed, openvino_ir, golden)
            report.export_dir = str(out_dir)
        content = _manifest_content(spec, options, graphs, report, golden)
        content["export_seconds"] = round(time.perf_counter() - started, 4)
        write_manifest(folder, content, [*paths.values(), *golden_files])
        if report is not None and not report.passed:
            _reject(folder, out_dir, report)
    final = {role: out_dir / path.name for role, path in paths.items()}
    final["manifest"] = out_dir / MANIFEST
    return ExportResult(out_dir, final, time.perf_counter() - started, report, content)


def _validate(
    model: Any, folder: Path, runtimes: list[str], batch_sizes: tuple[int, ...] | None, seed: int,
    openvino_ir: bool, golden: dict[str, Any],
) -> Any:  # fmt: skip
    """Parity of the written graphs against eager PyTorch, and of the IR against the golden
    vectors: one report."""
    report = parity.check(
        model, folder, runtimes=runtimes, batch_sizes=batch_sizes or parity.DEFAULT_BATCH_SIZES,
        seed=seed,
    )  # fmt: skip
    if openvino_ir:
        report.rows += _ir_rows(folder, model_spec(model), golden)
    return report


def _is_auto(steps_per_check: Any) -> bool:
    """Whether export chooses K (``"auto"``); any other word is refused, and a number is left
    to :class:`ExportOptions` to check."""
    if isinstance(steps_per_check, str) and steps_per_check != "auto":
        raise UsageError(
            f'steps_per_check must be "auto" or an int in 1–{STEPS_PER_CHECK_LIMIT}, got '
            f"{steps_per_check!r}"
        )
    return steps_per_check == "auto"


def _validation_runtimes(runtimes: list[str] | None) -> list[str]:
    """The runtimes to validate on, each checked to be here before any work."""
    names = runtimes or VALIDATION_RUNTIMES
    for name in names:
        try:
            rt.require(*rt.parse_runtime(name))
        except RuntimeUnavailableError as error:
            raise RuntimeUnavailableError(
                f"cannot validate the export: {error} (or pass validate=False)"
            ) from error
    return names


def _refuse_what_cannot_run(graphs: dict[str, onnx.ModelProto], runtimes: list[str]) -> None:
    """Each validation runtime can run each graph, asked before anything is written (tract and a
    Loop: a validation that could only fail, and a rejected folder, otherwise)."""
    for name in runtimes:
        for graph, proto in graphs.items():
            why = rt.refusal(rt.parse_runtime(name)[0], proto)
            if why is not None:
                raise UnsupportedModelError(
                    f"cannot validate the export on {name}: its {graph} graph: {why} (or leave "
                    f"{name} out of the validation runtimes)"
                )


def _write_graphs(
    folder: Path, graphs: dict[str, onnx.ModelProto], ort_format: bool, openvino_ir: bool
) -> dict:
    paths = {}
    for name, proto in graphs.items():
        paths[name] = folder / GRAPHS[name].file
        onnx.save(proto, str(paths[name]))
    for name in graphs:
        if ort_format:
            paths[f"{name}_ort"] = write_ort_format(paths[name], folder / ort_file(name))
        if openvino_ir:
            from .runtimes._openvino import save_ir

            xml, weights = ir_files(name)
            paths[f"{name}_ir"] = save_ir(paths[name], folder / xml)
            paths[f"{name}_ir_weights"] = folder / weights
    return paths


def _check_openvino_ir(model: Any) -> None:
    """OpenVINO IR needs OpenVINO, and a model its CPU plugin computes (float32 at most)."""
    try:
        rt.require("openvino", "cpu")
    except RuntimeUnavailableError as error:
        raise RuntimeUnavailableError(
            f"openvino_ir=True writes OpenVINO IR with OpenVINO's converter: {error} "
            "(pip install 'iresnet-onnx[openvino]')"
        ) from error
    dtype = next(model.parameters()).dtype
    if dtype != torch.float32:
        raise UsageError(
            f"openvino_ir=True: OpenVINO's CPU plugin computes in float32 at most; this model is "
            f"{str(dtype).removeprefix('torch.')} (export a float32 copy for OpenVINO)"
        )


def _ir_rows(folder: Path, spec: ModelSpec, golden: dict[str, Any]) -> list:
    """The IR checked like the ONNX files: every golden case on openvino:cpu, rows marked IR."""
    manifest = {"dtype": spec.dtype.name, "golden": golden}
    rows = []
    for graph in GRAPHS:
        xml = folder / ir_files(graph)[0]
        report = verify_golden(folder, manifest, ["openvino:cpu"], graph_file=xml)
        if report.unsupported:
            raise ExportError(f"OpenVINO cannot run the IR it wrote, {xml.name}: "
                              f"{report.unsupported[0]['reason']}")  # fmt: skip
        for row in report.rows:
            row.runtime = "openvino:cpu (IR)"
        rows += report.rows
    return rows


def write_ort_format(onnx_path: Path, target: Path) -> Path:
    """``forward.onnx`` → ``forward.ort``: onnxruntime's flatbuffer format for mobile and minimal
    builds, written by onnxruntime itself. Basic graph optimisations only, so the file holds
    standard ONNX ops (no contrib-op fusions a minimal build would have to include)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(target)
    options.add_session_config_entry("session.save_model_format", "ORT")
    ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    return target


def _manifest_content(
    spec: ModelSpec, options: ExportOptions, graphs: dict[str, onnx.ModelProto], report: Any,
    golden: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    fixed = options.inverse == "fixed"
    return {
        "kind": spec.kind,
        "input_size": spec.input_size,
        "nblocks": spec.nblocks,
        "dtype": spec.dtype.name,
        "opset": options.opset,
        "spectral_norm": options.spectral_norm,
        "inverse": options.inverse,
        "functions": options.functions,
        "exporter": options.exporter,
        "steps_per_check": None if fixed else options.steps_per_check,
        "fixed_steps": list(fixed_steps(spec, options.input_radius)) if fixed else None,
        "maxiter_cap": spec.maxiter_cap,
        "hp": spec.hp,
        "power_iteration": spec.power_iteration,
        "checkpoint": CHECKPOINT,
        "graphs": {
            GRAPHS[name].file: {k: v for k, v in graph_summary(proto).items() if k != "metadata"}
            for name, proto in graphs.items()
        },
        "validation": report.to_dict() if report is not None else None,
        "golden": golden,
    }


def _first_miss(report: Any) -> str:
    """The first failed row, else the first problem (a graph no runtime row could check)."""
    if report.failures:
        return str(report.failures[0])
    return str(next(iter(report.problems), "no row was compared"))


def _reject(folder: Path, out_dir: Path, report: Any) -> None:
    """Move a rejected export to ``<out_dir>.rejected`` (replacing an older rejected one) and say
    so in a :class:`ParityError`."""
    rejected = out_dir.with_name(out_dir.name + ".rejected")
    shutil.rmtree(rejected, ignore_errors=True)
    os.replace(folder, rejected)
    raise ParityError(
        f"export to {out_dir} misses parity: {_first_miss(report)}; "
        f"{out_dir} is left as it was, the rejected export is in {rejected}\n{report.table()}"
    )
