"""torch module → ONNX. ``export(model, out_dir)`` writes an export folder:

``forward.onnx``, ``inverse.onnx``  the graphs (power iteration and inverse as real Loop nodes)
``model.pt``                        the model's checkpoint, so the folder verifies on its own
``manifest.json``                   versions, options, HP, sha256 of each file, validation figures

The stages live in their own modules, as in optimum's exporter: what (``config``), how (``convert``),
whether it is right (``validate`` for the structure, :mod:`iresnet_onnx.parity` for the numbers).
"""

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from ..checkpoint import save_checkpoint
from ..errors import RuntimeUnavailableError
from .config import (
    DEFAULT_OPSET,
    SPECTRAL_NORM_MODES,
    SUPPORTED_OPSETS,
    ExportOptions,
    describe,
    with_solver_defaults,
)
from .convert import build_forward, build_inverse
from .manifest import MANIFEST_NAME, read_manifest, verify_hashes, write_manifest
from .summary import graph_summary
from .validate import check_onnxruntime_kernels, check_structure

__all__ = [
    "DEFAULT_OPSET",
    "MANIFEST_NAME",
    "SPECTRAL_NORM_MODES",
    "SUPPORTED_OPSETS",
    "ExportResult",
    "export",
    "graph_summary",
    "read_manifest",
    "verify_hashes",
]

VALIDATION_RUNTIMES = ["onnxruntime:cpu"]


@dataclass
class ExportResult:
    out_dir: Path
    forward: Path
    inverse: Path
    checkpoint: Path
    manifest: Path
    seconds: float
    """Time to build, check and write the graphs (validation not included)."""
    report: Any = None
    """The :class:`~iresnet_onnx.parity.ParityReport` of the validation, or None."""

    @property
    def paths(self) -> dict[str, Path]:
        return {
            "forward": self.forward,
            "inverse": self.inverse,
            "checkpoint": self.checkpoint,
            "manifest": self.manifest,
        }


def export(
    model: Any,
    out_dir: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    spectral_norm: str = "loop",
    steps_per_check: int = 1,
    validate: bool = True,
    runtimes: list[str] | None = None,
    batch_sizes: tuple[int, ...] | None = None,
    seed: int = 0,
    maxiter: int | None = None,
    atol: float | None = None,
    rtol: float | None = None,
) -> ExportResult:
    """Export an ``iResNet`` or ``iResNetBlock`` to ``out_dir``.

    ``spectral_norm="loop"`` computes each σ in the graph by a power-iteration Loop from the raw
    weights; ``"folded"`` bakes A′ into the initializers. With ``validate`` (the default) the graphs
    are compared with eager PyTorch on fresh inputs (batch sizes 1, 7, 257 and leading dims) on
    ``runtimes`` (default onnxruntime CPU); a miss raises :class:`~iresnet_onnx.errors.ParityError`
    after the folder (manifest included) is written, so the failure can be inspected.

    ``maxiter``, ``atol``, ``rtol`` replace the model's solver defaults in ``inverse.onnx`` (and in
    the folder's checkpoint, so that the folder stays consistent); the model passed in is untouched.
    """
    from .. import parity

    options = ExportOptions(
        opset=opset, spectral_norm=spectral_norm, steps_per_check=steps_per_check
    )
    validation_runtimes = runtimes or VALIDATION_RUNTIMES
    if validate:
        from .. import runtimes as rt

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
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    graphs = {"forward": build_forward(spec, options), "inverse": build_inverse(spec, options)}
    paths = {}
    for direction, proto in graphs.items():
        name = f"{direction}.onnx"
        check_structure(proto, name, "y" if direction == "forward" else "x", spec.input_size)
        if spec.dtype.name != "float32":
            check_onnxruntime_kernels(proto, name)
        paths[direction] = out_dir / name
        onnx.save(proto, str(paths[direction]))
    checkpoint = save_checkpoint(model, out_dir / "model.pt")
    seconds = time.perf_counter() - started

    report = None
    if validate:
        report = parity.check(
            model, out_dir, runtimes=validation_runtimes,
            batch_sizes=batch_sizes or parity.DEFAULT_BATCH_SIZES, seed=seed,
        )  # fmt: skip
    content = {
        "kind": spec.kind,
        "input_size": spec.input_size,
        "nblocks": spec.nblocks,
        "dtype": spec.dtype.name,
        "opset": options.opset,
        "spectral_norm": options.spectral_norm,
        "steps_per_check": options.steps_per_check,
        "hp": spec.hp,
        "power_iteration": spec.power_iteration,
        "checkpoint": checkpoint.name,
        "export_seconds": round(seconds, 4),
        "graphs": {
            direction: {k: v for k, v in graph_summary(proto).items() if k != "metadata"}
            for direction, proto in graphs.items()
        },
        "validation": report.to_dict() if report is not None else None,
    }
    manifest = write_manifest(out_dir, content, [paths["forward"], paths["inverse"], checkpoint])
    result = ExportResult(
        out_dir, paths["forward"], paths["inverse"], checkpoint, manifest, seconds, report
    )
    if report is not None and not report.passed:
        from ..errors import ParityError

        first = report.failures[0]
        raise ParityError(
            f"export to {out_dir} misses parity: {first.describe()}\n{report.table()}"
        )
    return result
