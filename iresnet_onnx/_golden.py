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
from ._report import ParityReport, ParityRow, load_or_note
from ._tolerances import TOLERANCES, StepRule, compare
from .errors import InvalidModelError, UsageError, VerificationError
from .graphs import GRAPHS

__all__ = [
    "GOLDEN_BATCH_SIZES", "golden_entry", "read_case", "reduced_precision", "verify_golden",
    "write_golden",
]  # fmt: skip

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


def read_case(case: Path, graph: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(input, outputs by name)`` of one ``test_data_set_<i>`` folder of ``graph``; a
    :class:`VerificationError` naming the file when one is missing or not a tensor (a broken
    golden vector is a failed verification, not bad input)."""
    from onnx import TensorProto, numpy_helper

    def tensor(path: Path) -> tuple[str, np.ndarray]:
        if not path.is_file():
            raise VerificationError(f"golden vector {path} is missing")
        proto = TensorProto()
        try:
            proto.ParseFromString(path.read_bytes())
            return proto.name, numpy_helper.to_array(proto)
        except Exception as error:  # protobuf's DecodeError, numpy_helper's ValueError
            raise VerificationError(f"golden vector {path}: not a tensor ({error})") from error

    spec = GRAPHS[graph]
    _, batch = tensor(case / golden_tensor("input", 0))
    outputs = dict(tensor(case / golden_tensor("output", k)) for k in range(len(spec.outputs)))
    missing = set(spec.outputs) - set(outputs)
    if missing:
        raise VerificationError(f"golden case {case}: no stored {', '.join(sorted(missing))}")
    return batch, outputs


def golden_entry(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest's ``golden`` entry, checked: an :class:`InvalidModelError` (bad input) for a
    manifest that does not describe golden vectors of this folder's graphs."""
    golden, where = manifest.get("golden"), f"{folder}/manifest.json"
    if not isinstance(golden, dict) or not golden.get("graphs"):
        raise InvalidModelError(f"{where} lists no golden vectors (an export older than 0.2?)")
    graphs, solver = golden.get("graphs"), golden.get("solver")
    if not isinstance(graphs, dict) or set(graphs) - set(GRAPHS):
        raise InvalidModelError(f"{where}: golden.graphs must map graph names to case folders")
    for graph, cases in graphs.items():
        if not isinstance(cases, list) or not all(_inside(folder, case) for case in cases):
            raise InvalidModelError(
                f"{where}: golden.graphs.{graph} must list case folders inside the export"
            )
    if not isinstance(solver, dict) or set(solver) != {"maxiter", "atol", "rtol"}:
        raise InvalidModelError(f"{where}: golden.solver must hold maxiter, atol and rtol")
    if manifest.get("dtype", "float32") not in TOLERANCES:
        raise InvalidModelError(
            f"{where}: dtype {manifest.get('dtype')!r}; expected one of {', '.join(TOLERANCES)}"
        )
    return golden


def _inside(folder: Path, case: Any) -> bool:
    if not isinstance(case, str) or "\\" in case or case.startswith("/"):
        return False
    resolved = (folder / case).resolve()
    return resolved.is_relative_to(folder.resolve()) and ".." not in Path(case).parts


_CHECKS = {"y": "forward", "x": "inverse", "log_prob": "density", "log_det": "density",
           "z": "forward"}  # fmt: skip
"""The tolerance each stored output is held to (the parity suite's rows)."""


def verify_golden(
    folder: str | Path, manifest: dict[str, Any], runtimes: list[str] | None = None,
    graph_file: str | Path | None = None,
) -> ParityReport:  # fmt: skip
    """Run every golden case of the export ``folder`` on each runtime (default: every ONNX runtime
    here that can run the graphs) and hold every output against the stored ones.

    ``graph_file``: check that file — a simplified, converted, quantized or fp16 copy of one of the
    export's graphs, or OpenVINO IR — against that graph's golden vectors instead, on the
    runtimes that can load it; its inputs are cast to the file's input type (what a converted
    graph expects), so a reduced-precision graph fails with its measured error."""
    folder = Path(folder)
    golden = golden_entry(folder, manifest)
    requested = runtimes is not None
    names = runtimes or [name for name in rt.available() if not name.startswith("torch:")]
    for name in names:
        rt.require(*rt.parse_runtime(name))
    dtype = str(manifest.get("dtype", "float32"))
    report = ParityReport(
        str(folder), dtype, str(manifest.get("spectral_norm")), int(golden.get("seed", 0)),
        dict(TOLERANCES[dtype]), title="golden vectors",
    )  # fmt: skip
    targets = _targets(folder, golden, graph_file)
    for graph, path, like in targets:
        if graph_file is not None:
            report.problems += reduced_precision(path, dtype)
        for name in names:
            notes = report.unsupported if requested else report.skipped
            session = load_or_note(notes, name, path, **({"like": like} if like else {}))
            if session is None:
                continue
            with session:
                try:
                    report.rows += _case_rows(folder, golden, graph, session, name, dtype)
                except Exception as error:
                    if graph_file is None:
                        raise  # the export's own graphs ran at export: a failure now is ours
                    # a transformed file that loads but cannot run a golden case fails the check
                    text = str(error).splitlines()[0] if str(error) else ""
                    report.problems.append(
                        f"{name} cannot run {path.name} on its golden cases: "
                        f"{type(error).__name__}: {text}"
                    )
    return report


_REDUCED = ("float16", "bfloat16", "int8", "uint8", "float8", "int4", "uint4")
"""Element types that hold weights below float32: a converter's fp16, a quantizer's int8."""
_IR_TYPES = {"f64": "float64", "f32": "float32", "f16": "float16", "bf16": "bfloat16",
             "i8": "int8", "u8": "uint8", "f8e4m3": "float8e4m3", "f8e5m2": "float8e5m2",
             "i4": "int4", "u4": "uint4"}  # fmt: skip
"""OpenVINO IR's element type names, in numpy's words."""


def reduced_precision(path: Path, dtype: str) -> list[str]:
    """What in a transformed graph (ONNX, or OpenVINO IR ``.xml``) holds numbers below the
    export's precision: its data input's type, and its weights' (fp16 by an fp16 converter or
    OpenVINO's default ``compress_to_fp16``, int8 by a quantizer). Empty when none does."""
    if path.suffix == ".xml":
        import xml.etree.ElementTree as ElementTree

        layers = ElementTree.parse(path).getroot().iter("layer")
        typed = [
            (layer.get("type"), _IR_TYPES.get(data.get("element_type", ""), ""))
            for layer in layers for data in layer.iter("data")
        ]  # fmt: skip
        types = [kind for layer, kind in typed if layer == "Const"]
        first_input = next((kind for layer, kind in typed if layer == "Parameter"), "")
    else:
        types, first_input = _onnx_tensor_types(path)
    counts: dict[str, int] = {}
    for kind in types:
        if kind.startswith(_REDUCED) or (dtype == "float64" and kind == "float32"):
            counts[kind] = counts.get(kind, 0) + 1
    problems = []
    if first_input.startswith("float") and first_input != dtype:
        problems.append(f"{path.name} takes {first_input} input; the export is {dtype}")
    if counts:
        held = ", ".join(f"{count} {kind}" for kind, count in sorted(counts.items()))
        problems.append(f"{path.name} holds weights below {dtype} ({held} tensors)")
    return problems


def _onnx_tensor_types(path: Path) -> tuple[list[str], str]:
    """The element types of every initializer and Constant of an ONNX file (subgraphs and
    functions included), and its first input's."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:
        return [], ""  # not ONNX: the runtime that loads it will say so
    name = onnx.helper.tensor_dtype_to_np_dtype

    def tensors(graph: onnx.GraphProto):
        yield from graph.initializer
        for node in graph.node:
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.TENSOR:
                    yield attribute.t
                for sub in [attribute.g, *attribute.graphs]:
                    if sub.node or sub.initializer:
                        yield from tensors(sub)

    def dtype_name(code: int) -> str:
        try:
            return name(code).name
        except (KeyError, ValueError, TypeError):
            return onnx.TensorProto.DataType.Name(code).lower()

    found = [dtype_name(t.data_type) for t in tensors(model.graph)]
    for function in model.functions:
        for node in function.node:
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.TENSOR:
                    found.append(dtype_name(attribute.t.data_type))
    inputs = model.graph.input
    first = dtype_name(inputs[0].type.tensor_type.elem_type) if inputs else ""
    return found, first


def _targets(folder: Path, golden: dict, graph_file: Any) -> list[tuple[str, Path, Any]]:
    """``(graph, file, info of the export's own graph or None)`` to check."""
    if graph_file is None:
        return [(graph, folder / GRAPHS[graph].file, None) for graph in golden["graphs"]]
    path = Path(graph_file)
    graph = _graph_of(path, golden)
    _, like = rt.read_model(folder / GRAPHS[graph].file)
    return [(graph, path, like)]


def _graph_of(path: Path, golden: dict) -> str:
    """Which of the export's graphs a transformed file is: its metadata's, else its file name's."""
    if not path.is_file():
        raise UsageError(f"--graph {path}: no such file")
    if path.suffix == ".onnx":
        try:
            return rt.read_model(path)[1].graph.name
        except InvalidModelError:
            pass  # the metadata were dropped: the name must say
    stem = next((name for name in golden["graphs"] if path.stem.startswith(name)), None)
    if stem is None:
        raise UsageError(
            f"--graph {path}: cannot tell which graph it is (no iresnet-onnx metadata, and its "
            f"name starts with none of {', '.join(golden['graphs'])})"
        )
    return stem


def _case_rows(
    folder: Path, golden: dict, graph: str, session: rt.Session, name: str, dtype: str
) -> list[ParityRow]:
    tolerance = TOLERANCES[dtype]
    steps = StepRule(session.info.steps_per_check, golden["solver"], float(np.finfo(dtype).eps))
    rows = []
    for case in golden["graphs"][graph]:
        batch, expected = read_case(folder / case, graph)
        started = time.perf_counter()
        outputs = session.run_all(batch.astype(session.info.dtype, copy=False))
        seconds = time.perf_counter() - started
        for tensor in GRAPHS[graph].per_row:
            row = compare(name, _CHECKS[tensor], batch.shape, outputs[tensor], expected[tensor],
                          tolerance, seconds)  # fmt: skip
            row.case, row.tensor = case, tensor
            if tensor == "x":
                steps.judge(row, outputs, expected, {})
            rows.append(row)
    return rows
