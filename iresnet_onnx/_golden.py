"""Golden vectors: inputs and eager PyTorch's outputs, stored in every export folder, so a device
checks the graphs it runs against what was validated in the build pipeline — with numpy and a
runtime only, no torch and no checkpoint (``iresnet-onnx verify DIR --golden``).

Produced, read and checked here. The layout is ONNX's test-data layout (the model zoo's,
onnxruntime's ``onnx_test_runner``'s), one folder per graph (:mod:`._layout`)::

    golden/forward/test_data_set_0/input_0.pb      x          (TensorProto, named as the input)
    golden/forward/test_data_set_0/output_0.pb     y
    golden/inverse/test_data_set_0/input_0.pb      y
    golden/inverse/test_data_set_0/output_0.pb     x          output_1.pb iterations, output_2.pb residual

The manifest records every file's sha256, the cases and the tolerances (:mod:`._tolerances`): the
same rules as the parity suite, the eager outputs stored instead of recomputed. Torch-free: the
reference outputs come from whatever session the exporter passes in (the eager model's).
"""

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import runtimes as rt
from ._layout import golden_case, golden_tensor
from ._report import ParityReport, load_or_note
from ._tolerances import TOLERANCES, StepRule, compare
from .errors import InvalidModelError
from .graphs import GRAPHS

__all__ = ["GOLDEN_BATCH_SIZES", "read_case", "verify_golden", "write_golden"]

GOLDEN_BATCH_SIZES = (1, 7, 64)


def write_golden(
    folder: Path,
    reference: Callable[[str], rt.Session],
    input_size: int,
    dtype: np.dtype,
    solver: dict[str, Any],
    seed: int = 0,
) -> tuple[dict[str, Any], list[Path]]:
    """Write golden cases of every graph into ``folder``: fresh inputs at batch sizes 1, 7, 64 and
    ``reference(graph)``'s outputs (a session of the eager model). Returns the manifest's
    ``golden`` entry and the files written."""
    rng = np.random.default_rng([seed, 2])  # not the validation's inputs
    cases: dict[str, list[str]] = {}
    files: list[Path] = []
    for name, graph in GRAPHS.items():
        session = reference(name)
        cases[name] = []
        for index, batch in enumerate(GOLDEN_BATCH_SIZES):
            array = rng.standard_normal((batch, input_size)).astype(dtype)
            case = golden_case(name, index)
            files += _write_case(folder / case, {graph.input: array}, session.run_all(array))
            cases[name].append(case)
    entry = {
        "graphs": cases, "batch_sizes": list(GOLDEN_BATCH_SIZES), "solver": solver,
        "seed": seed, "tolerances": TOLERANCES[np.dtype(dtype).name],
    }  # fmt: skip
    return entry, files


def _write_case(
    case: Path, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]
) -> list[Path]:
    from onnx import numpy_helper

    case.mkdir(parents=True, exist_ok=True)
    written = []
    for role, arrays in (("input", inputs), ("output", outputs)):
        for number, (name, array) in enumerate(arrays.items()):
            path = case / golden_tensor(role, number)
            path.write_bytes(numpy_helper.from_array(np.asarray(array), name).SerializeToString())
            written.append(path)
    return written


def read_case(case: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(inputs, outputs)`` of one ``test_data_set_<i>`` folder, by tensor name."""
    from onnx import TensorProto, numpy_helper

    arrays: dict[str, dict[str, np.ndarray]] = {"input": {}, "output": {}}
    for prefix in arrays:
        for path in sorted(case.glob(f"{prefix}_*.pb"), key=lambda p: int(p.stem.split("_")[1])):
            tensor = TensorProto()
            try:
                tensor.ParseFromString(path.read_bytes())
            except Exception as error:  # protobuf's DecodeError
                raise InvalidModelError(
                    f"golden vector {path}: not a TensorProto ({error})"
                ) from error
            arrays[prefix][tensor.name] = numpy_helper.to_array(tensor)
    return arrays["input"], arrays["output"]


def verify_golden(
    folder: str | Path, manifest: dict[str, Any], runtimes: list[str] | None = None
) -> ParityReport:
    """Run every golden case of the export ``folder`` on each runtime (default: every ONNX runtime
    here that can run the graphs) and hold the outputs against the stored ones."""
    folder = Path(folder)
    golden = manifest.get("golden")
    if not isinstance(golden, dict) or not golden.get("graphs"):
        raise InvalidModelError(
            f"{folder}: the manifest lists no golden vectors (an export older than 0.2?)"
        )
    requested = runtimes is not None
    names = runtimes or [name for name in rt.available() if not name.startswith("torch:")]
    for name in names:
        rt.require(*rt.parse_runtime(name))
    dtype = str(manifest.get("dtype", "float32"))
    tolerance = TOLERANCES[dtype]
    solver = golden["solver"]
    report = ParityReport(
        str(folder), dtype, str(manifest.get("spectral_norm")), int(golden.get("seed", 0)),
        dict(tolerance), title="golden vectors",
    )  # fmt: skip
    for graph, cases in golden["graphs"].items():
        path = folder / GRAPHS[graph].file
        for name in names:
            session = load_or_note(report.unsupported if requested else report.skipped, name, path)
            if session is None:
                continue
            steps = StepRule(session.info.steps_per_check, solver, float(np.finfo(dtype).eps))
            for case in cases:
                inputs, expected = read_case(folder / case)
                batch = next(iter(inputs.values()))
                started = time.perf_counter()
                outputs = session.run_all(batch)
                seconds = time.perf_counter() - started
                main = session.graph.main
                row = compare(
                    name, graph, batch.shape, outputs[main], expected[main], tolerance, seconds
                )
                row.case, row.tensor = case, main
                if "iterations" in expected:
                    steps.judge(row, outputs, expected, {})
                report.rows.append(row)
    return report
