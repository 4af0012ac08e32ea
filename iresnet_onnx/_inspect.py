"""What an export folder or ONNX file holds, for ``iresnet-onnx inspect`` (no torch needed): opset,
interface, Loop nodes and where they sit, functions, sizes, manifest and hash status."""

from collections import Counter
from pathlib import Path
from typing import Any

import onnx
from onnx import numpy_helper

from ._manifest import read_manifest, verify_hashes
from .errors import InvalidModelError
from .graphs import GRAPHS
from .runtimes import read_model


def _subgraphs(node: onnx.NodeProto) -> list[onnx.GraphProto]:
    graphs = []
    for attribute in node.attribute:
        if attribute.type == onnx.AttributeProto.GRAPH:
            graphs.append(attribute.g)
        graphs.extend(attribute.graphs)
    return graphs


def _walk(nodes: Any, where: str, ops: Counter, loops: list[dict[str, Any]]) -> None:
    for node in nodes:
        ops[node.op_type if not node.domain else f"{node.domain}.{node.op_type}"] += 1
        for graph in _subgraphs(node):
            if node.op_type in ("Loop", "Scan"):
                loops.append({
                    "op": node.op_type, "where": where, "node": node.name,
                    "body": graph.name, "body_nodes": len(graph.node),
                })  # fmt: skip
            _walk(graph.node, f"{where} › {graph.name}", ops, loops)


def _value_info(value: onnx.ValueInfoProto) -> dict[str, Any]:
    tensor = value.type.tensor_type
    shape = (
        [d.dim_param or d.dim_value for d in tensor.shape.dim] if tensor.HasField("shape") else None
    )
    return {
        "name": value.name,
        "dtype": onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name,
        "shape": shape,
        "doc": value.doc_string,
    }


def graph_summary(model: onnx.ModelProto) -> dict[str, Any]:
    """A JSON-ready description of ``model``; Loop nodes are counted inside functions too."""
    ops: Counter = Counter()
    loops: list[dict[str, Any]] = []
    _walk(model.graph.node, "main graph", ops, loops)
    for function in model.functions:
        _walk(function.node, f"function {function.domain}.{function.name}", ops, loops)
    initializers = {init.name for init in model.graph.initializer}
    optional = [v.name for v in model.graph.input if v.name in initializers]
    return {
        "ir_version": model.ir_version,
        "opsets": {entry.domain or "ai.onnx": entry.version for entry in model.opset_import},
        "inputs": [{**_value_info(v), "optional": v.name in optional} for v in model.graph.input],
        "outputs": [_value_info(v) for v in model.graph.output],
        "functions": [f"{f.domain}.{f.name}" for f in model.functions],
        "loops": loops,
        "nodes": sum(ops.values()),
        "op_counts": dict(sorted(ops.items())),
        "initializers": len(model.graph.initializer),
        "initializer_bytes": sum(numpy_helper.to_array(i).nbytes for i in model.graph.initializer),
        "metadata": {p.key: p.value for p in model.metadata_props},
    }


def inspect_path(path: Path) -> dict[str, Any]:
    """Graph summaries (and, for a folder, its manifest and hash status) as JSON-ready data."""
    if path.is_dir():
        manifest = read_manifest(path)
        graphs = {}
        for graph in GRAPHS.values():
            file = path / graph.file
            if graph.file in manifest["files"] or file.exists():  # density.onnx: since 0.2
                graphs[graph.file] = _summary(file)
        return {
            "path": str(path),
            "graphs": graphs,
            "manifest": manifest,
            "hashes": verify_hashes(path, manifest),
        }
    if not path.exists():
        raise InvalidModelError(f"{path}: no such file or folder")
    return {"path": str(path), "graphs": {path.name: _summary(path)}}


def _summary(path: Path) -> dict[str, Any]:
    """:func:`graph_summary` of an exported graph, with the solver inputs it still takes."""
    proto, info = read_model(path)
    summary = graph_summary(proto)
    if info.graph.optional_inputs:
        summary["solver_inputs"] = list(info.solver_inputs)
        summary["solver_defaults"] = info.solver
    return summary


def _solver(graph: dict[str, Any]) -> list[str]:
    if "solver_inputs" not in graph:
        return []
    defaults = ", ".join(f"{k}={v}" for k, v in graph["solver_defaults"].items())
    if graph["solver_inputs"]:
        return [f"  solver inputs: {', '.join(graph['solver_inputs'])} (defaults {defaults})"]
    return [f"  solver inputs: none — folded into the graph, which runs at {defaults}"]


def _shape(value: dict[str, Any]) -> str:
    return (
        "[" + ", ".join(str(d) for d in value["shape"]) + "]" if value["shape"] is not None else "?"
    )


def render(info: dict[str, Any]) -> str:
    lines = [f"{info['path']}"]
    for name, graph in info["graphs"].items():
        opsets = ", ".join(f"{domain} {version}" for domain, version in graph["opsets"].items())
        meta = graph["metadata"]
        lines += [
            "",
            f"{name}: IR {graph['ir_version']}, opsets {opsets}, "
            f"spectral norm {meta.get('iresnet_onnx.spectral_norm', '?')}, "
            f"{_inverse_mode(meta)}{meta.get('iresnet_onnx.dtype', '?')}",
            "  inputs:",
            *(f"    {v['name']}: {v['dtype']}{_shape(v)}{' (optional)' if v['optional'] else ''}"
              for v in graph["inputs"]),
            "  outputs:",
            *(f"    {v['name']}: {v['dtype']}{_shape(v)}" for v in graph["outputs"]),
            *_solver(graph),
            f"  functions: {', '.join(graph['functions']) or 'none (plain standard-domain nodes)'}",
            f"  Loop nodes: {sum(loop['op'] == 'Loop' for loop in graph['loops'])}, Scan nodes: "
            f"{sum(loop['op'] == 'Scan' for loop in graph['loops'])}",
            *(f"    {loop['op']} {loop['node'] or '(unnamed)'} in {loop['where']}: body {loop['body']} "
              f"({loop['body_nodes']} nodes)" for loop in graph["loops"]),
            f"  nodes: {graph['nodes']} (functions and Loop bodies included)",
            f"  initializers: {graph['initializers']} ({graph['initializer_bytes']:,} bytes)",
        ]  # fmt: skip
    if "manifest" in info:
        manifest = info["manifest"]
        get = manifest.get  # read_manifest guarantees the files; the rest may be missing
        versions = get("versions") if isinstance(get("versions"), dict) else {}
        lines += [
            "",
            f"manifest: iresnet-onnx {versions.get('iresnet-onnx', '?')}, {get('kind', '?')} "
            f"n={get('input_size', '?')} nblocks={get('nblocks', '?')}, opset {get('opset', '?')}, "
            f"spectral norm {get('spectral_norm', '?')}, inverse {get('inverse', 'loop')}, "
            f"maxiter cap {get('maxiter_cap', '?')}",
            f"  exported in {get('export_seconds', '?')} s with torch {versions.get('torch', '?')}, "
            f"onnx {versions.get('onnx', '?')}, onnxruntime {versions.get('onnxruntime', '-')}",
            f"  validation: {_validation(get('validation'))}",
            "  files:",
            *(f"    {name}: sha256 {entry['sha256'][:16]}…, {_size(entry)}, {info['hashes'][name]}"
              for name, entry in manifest["files"].items()),
        ]  # fmt: skip
    return "\n".join(lines)


def _inverse_mode(meta: dict[str, str]) -> str:
    if "inverse" not in (meta.get("iresnet_onnx.graph"), meta.get("iresnet_onnx.direction")):
        return ""
    if meta.get("iresnet_onnx.inverse") == "fixed":
        return f"inverse fixed, steps per block {meta.get('iresnet_onnx.fixed_steps', '?')}, "
    return f"inverse loop, steps per check {meta.get('iresnet_onnx.steps_per_check', '1')}, "


def _size(entry: dict[str, Any]) -> str:
    size = entry.get("bytes")
    return f"{size:,} bytes" if isinstance(size, int) else "size unknown"


def _validation(validation: dict[str, Any] | None) -> str:
    if validation is None:
        return "not run"
    worst = max(
        (row["max_abs"] / row["tolerance"] if row["tolerance"] > 0 else float("inf")
         for row in validation["rows"]),
        default=0.0,
    )  # fmt: skip
    verdict = "passed" if validation["passed"] else "FAILED"
    return f"{verdict}, {len(validation['rows'])} rows, worst error {worst:.2g} of its tolerance"
