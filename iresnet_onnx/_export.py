"""``export(model, out_dir)``: build the graphs, write the folder, check its numbers, record the
manifest — one level above the exporters and the parity suite, which it joins.

An export folder is complete or absent: everything is written into a temporary folder beside
``out_dir`` and swapped in only once it is whole and validated (:mod:`iresnet_onnx._atomic`), so a
failed, interrupted or racing export never damages the good export already there. An export that
misses parity is moved to ``<out_dir>.rejected`` for inspection, where no pipeline picks it up.
"""

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from . import parity
from . import runtimes as rt
from ._atomic import atomic_directory, check_replaceable
from ._checkpoint import save_checkpoint
from ._golden import GOLDEN_BATCH_SIZES, GOLDEN_DIR, write_cases
from ._inspect import graph_summary
from ._manifest import MANIFEST_NAME, write_manifest
from ._tolerances import TOLERANCES
from ._torch_session import EagerSession
from .errors import ParityError, RuntimeUnavailableError
from .exporters import (
    DEFAULT_OPSET,
    ExportOptions,
    build_graphs,
    describe,
    fixed_steps,
    with_solver_defaults,
)
from .runtimes._session import GRAPHS

__all__ = ["VALIDATION_RUNTIMES", "ExportResult", "export"]

VALIDATION_RUNTIMES = ["onnxruntime:cpu"]
CHECKPOINT_NAME = "model.pt"


@dataclass
class ExportResult:
    out_dir: Path
    paths: dict[str, Path]
    """Every file of the folder by role: forward, inverse, checkpoint, manifest."""
    seconds: float
    """Time to build, check and write the graphs (validation not included)."""
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
    steps_per_check: int = 8,
    input_radius: float | None = None,
    runtimes: list[str] | None = None,
    batch_sizes: tuple[int, ...] | None = None,
    seed: int = 0,
    maxiter: int | None = None,
    atol: float | None = None,
    rtol: float | None = None,
) -> ExportResult:
    """Export an ``iResNet`` or ``iResNetBlock`` to the folder ``out_dir``.

    ``spectral_norm="loop"`` computes each σ in the graph by a power-iteration Loop from the raw
    weights; ``"folded"`` bakes A′ into the initializers. ``inverse="loop"`` solves each block by a
    data-dependent fixed-point Loop; ``"fixed"`` by a gated Scan of a step count fixed at export
    from the contraction bound (for inputs with ‖y‖₂ ≤ ``input_radius``; for runtimes without
    Loop). ``functions=True`` keeps the graph's components as custom-domain ONNX functions (for
    Netron); the default writes plain standard-domain nodes that every runtime loads.
    ``ort_format=True`` also writes ``forward.ort`` / ``inverse.ort`` (onnxruntime's format for
    mobile and minimal builds). ``steps_per_check=K`` (default 8) makes the inverse Loop test
    every K steps, which is twice as fast at batch 1; ``steps_per_check=1`` stops every row exactly
    where eager does. With ``validate`` (the default) the graphs
    are compared with eager PyTorch on fresh inputs (batch sizes 1, 7, 257 and leading dims) on
    ``runtimes`` (default onnxruntime CPU); a miss raises :class:`~iresnet_onnx.errors.ParityError`
    and leaves the previous ``out_dir`` as it was (the rejected export goes to
    ``<out_dir>.rejected``).

    ``maxiter``, ``atol``, ``rtol`` replace the model's solver defaults in ``inverse.onnx`` (and in
    the folder's checkpoint, so that the folder stays consistent); the model passed in is untouched.
    """
    options = ExportOptions(
        opset=opset, spectral_norm=spectral_norm, steps_per_check=steps_per_check,
        inverse=inverse, functions=functions, input_radius=input_radius,
    )  # fmt: skip
    out_dir = Path(out_dir)
    check_replaceable(out_dir, MANIFEST_NAME)  # before any work; never someone else's folder
    validation_runtimes = runtimes or VALIDATION_RUNTIMES
    if validate:
        for name in validation_runtimes:
            try:
                rt.require(*rt.parse_runtime(name))
            except RuntimeUnavailableError as error:
                raise RuntimeUnavailableError(
                    f"cannot validate the export: {error} (or pass validate=False)"
                ) from error
    if maxiter is not None or atol is not None or rtol is not None:
        model = with_solver_defaults(model, maxiter=maxiter, atol=atol, rtol=rtol)

    started = time.perf_counter()
    spec = describe(model)
    graphs = build_graphs(spec, options)
    seconds = time.perf_counter() - started
    with atomic_directory(out_dir, MANIFEST_NAME) as folder:
        paths = {}
        for kind, proto in graphs.items():
            paths[kind] = folder / f"{kind}.onnx"
            onnx.save(proto, str(paths[kind]))
        if ort_format:
            for kind in graphs:
                paths[f"{kind}_ort"] = write_ort_format(paths[kind])
        paths["checkpoint"] = save_checkpoint(model, folder / CHECKPOINT_NAME)
        golden, golden_files = _write_golden(model, folder, spec, seed)
        report = None
        if validate:
            report = parity.check(
                model, folder, runtimes=validation_runtimes,
                batch_sizes=batch_sizes or parity.DEFAULT_BATCH_SIZES, seed=seed,
            )  # fmt: skip
            report.export_dir = str(out_dir)
        content = {
            "kind": spec.kind,
            "input_size": spec.input_size,
            "nblocks": spec.nblocks,
            "dtype": spec.dtype.name,
            "opset": options.opset,
            "spectral_norm": options.spectral_norm,
            "inverse": options.inverse,
            "functions": options.functions,
            "steps_per_check": options.steps_per_check if options.inverse == "loop" else None,
            "fixed_steps": list(fixed_steps(spec, input_radius)) if inverse == "fixed" else None,
            "maxiter_cap": spec.maxiter_cap,
            "hp": spec.hp,
            "power_iteration": spec.power_iteration,
            "checkpoint": CHECKPOINT_NAME,
            "export_seconds": round(seconds, 4),
            "graphs": {
                f"{kind}.onnx": {k: v for k, v in graph_summary(proto).items() if k != "metadata"}
                for kind, proto in graphs.items()
            },
            "validation": report.to_dict() if report is not None else None,
            "golden": golden,
        }
        write_manifest(folder, content, [*paths.values(), *golden_files])
        if report is not None and not report.passed:
            rejected = _set_aside(folder, out_dir)
            raise ParityError(
                f"export to {out_dir} misses parity: {report.failures[0].describe()}; "
                f"{out_dir} is left as it was, the rejected export is in {rejected}\n"
                f"{report.table()}"
            )
    final = {kind: out_dir / path.name for kind, path in paths.items()}
    final["manifest"] = out_dir / MANIFEST_NAME
    return ExportResult(out_dir, final, seconds, report, content)


def write_ort_format(onnx_path: Path) -> Path:
    """``forward.onnx`` → ``forward.ort``: onnxruntime's flatbuffer format for mobile and minimal
    builds, written by onnxruntime itself. Basic graph optimisations only, so the file holds
    standard ONNX ops (no contrib-op fusions a minimal build would have to include)."""
    import onnxruntime as ort

    target = onnx_path.with_suffix(".ort")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(target)
    options.add_session_config_entry("session.save_model_format", "ORT")
    ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    return target


def _write_golden(
    model: Any, folder: Path, spec: Any, seed: int
) -> tuple[dict[str, Any], list[Path]]:
    """Golden vectors of both graphs: fresh inputs at batch sizes 1, 7, 64, eager outputs."""
    rng = np.random.default_rng([seed, 2])  # not the validation's inputs
    cases: dict[str, list[str]] = {}
    files: list[Path] = []
    for graph, (input_name, _) in GRAPHS.items():
        session = EagerSession(model, direction=graph)
        written = []
        for batch in GOLDEN_BATCH_SIZES:
            array = rng.standard_normal((batch, spec.input_size)).astype(spec.dtype)
            written.append(({input_name: array}, session.run_all(array)))
        files += write_cases(folder, graph, written)
        cases[graph] = [
            f"{GOLDEN_DIR}/{graph}/test_data_set_{index}" for index in range(len(written))
        ]
    solver = {"maxiter": spec.maxiter, "atol": spec.atol, "rtol": spec.rtol}
    return {"graphs": cases, "batch_sizes": list(GOLDEN_BATCH_SIZES), "solver": solver,
            "seed": seed, "tolerances": TOLERANCES[spec.dtype.name]}, files  # fmt: skip


def _set_aside(folder: Path, out_dir: Path) -> Path:
    """Move a rejected export to ``<out_dir>.rejected`` (replacing an older rejected one)."""
    rejected = out_dir.with_name(out_dir.name + ".rejected")
    shutil.rmtree(rejected, ignore_errors=True)
    os.replace(folder, rejected)
    return rejected
