"""What an export folder or ONNX file holds, for ``iresnet-onnx inspect``."""

from pathlib import Path
from typing import Any

from .errors import InvalidModelError
from .exporters import graph_summary, read_manifest, verify_hashes
from .runtimes import read_model


def inspect_path(path: Path) -> dict[str, Any]:
    """Graph summaries (and, for a folder, its manifest and hash status) as JSON-ready data."""
    if path.is_dir():
        manifest = read_manifest(path)
        graphs = {}
        for direction in ("forward", "inverse"):
            proto, _ = read_model(path / f"{direction}.onnx")
            graphs[f"{direction}.onnx"] = graph_summary(proto)
        return {
            "path": str(path),
            "graphs": graphs,
            "manifest": manifest,
            "hashes": verify_hashes(path, manifest),
        }
    if not path.exists():
        raise InvalidModelError(f"{path}: no such file or folder")
    proto, _ = read_model(path)
    return {"path": str(path), "graphs": {path.name: graph_summary(proto)}}


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
            f"spectral norm {meta.get('iresnet_onnx.spectral_norm', '?')}, {meta.get('iresnet_onnx.dtype', '?')}",
            "  inputs:",
            *(f"    {v['name']}: {v['dtype']}{_shape(v)}{' (optional)' if v['optional'] else ''}"
              for v in graph["inputs"]),
            "  outputs:",
            *(f"    {v['name']}: {v['dtype']}{_shape(v)}" for v in graph["outputs"]),
            f"  functions: {', '.join(graph['functions'])}",
            f"  Loop nodes: {len(graph['loops'])}",
            *(f"    in {loop['where']}: body {loop['body']} ({loop['body_nodes']} nodes)" for loop in graph["loops"]),
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
            f"spectral norm {get('spectral_norm', '?')}, steps per check {get('steps_per_check', 1)}",
            f"  exported in {get('export_seconds', '?')} s with torch {versions.get('torch', '?')}, "
            f"onnx {versions.get('onnx', '?')}, onnxruntime {versions.get('onnxruntime', '-')}",
            f"  validation: {_validation(get('validation'))}",
            "  files:",
            *(f"    {name}: sha256 {entry['sha256'][:16]}…, {_size(entry)}, {info['hashes'][name]}"
              for name, entry in manifest["files"].items()),
        ]  # fmt: skip
    return "\n".join(lines)


def _size(entry: dict[str, Any]) -> str:
    size = entry.get("bytes")
    return f"{size:,} bytes" if isinstance(size, int) else "size unknown"


def _validation(validation: dict[str, Any] | None) -> str:
    if validation is None:
        return "not run"
    worst = max((row["max_abs"] / row["tolerance"] for row in validation["rows"]), default=0.0)
    verdict = "passed" if validation["passed"] else "FAILED"
    return f"{verdict}, {len(validation['rows'])} rows, worst error {worst:.2g} of its tolerance"
