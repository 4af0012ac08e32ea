"""The integrity rule for every command that runs an export: the files it runs are the files the
manifest recorded.

The folder must be an export (its manifest read and checked: otherwise an
:class:`~iresnet_onnx.errors.InvalidModelError`, exit 2); a graph — and, for the eager ``torch``
runtime, the checkpoint — that the manifest lists but that is missing or whose sha256 differs has
changed since export: a :class:`~iresnet_onnx.errors.VerificationError`, exit 1, as ``verify``
says it. The bytes are hashed as read, and those bytes are what a job runs (``batch`` ships them to
its workers), so nothing can change between the check and the run.
"""

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import runtimes as rt
from .._layout import CHECKPOINT
from .._manifest import read_manifest
from ..errors import InvalidModelError, VerificationError
from ..graphs import graph as graph_named

__all__ = ["CheckedExport", "check_runnable", "checked_export"]


@dataclass(frozen=True)
class CheckedExport:
    """A graph of an export folder whose bytes match the manifest."""

    folder: Path
    graph_file: Path
    files: dict[str, bytes] = field(repr=False)
    """File name → the checked bytes: the graph, and the checkpoint for the torch runtime."""


def checked_export(folder: str | Path, graph: str, runtime: str = "onnxruntime") -> CheckedExport:
    """The bytes of ``graph`` (and of the checkpoint, for ``runtime`` torch) in the export
    ``folder``, checked against its manifest."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    name = graph_named(graph).file
    names = [name]
    if runtime.partition(":")[0] == "torch":  # the eager session runs the checkpoint
        names.append(manifest.get("checkpoint", CHECKPOINT))
    files = {file: _checked(folder, file, manifest) for file in names}
    return CheckedExport(folder, folder / name, files)


def _checked(folder: Path, name: str, manifest: dict[str, Any]) -> bytes:
    entry = manifest["files"].get(name)
    if entry is None:
        hint = " (exports made before density.onnx lack it: export again)" if name.startswith(
            "density"
        ) else ""  # fmt: skip
        raise InvalidModelError(f"{folder} has no {name} in its manifest{hint}")
    path = folder / name
    if not path.is_file():
        raise VerificationError(f"{path} is missing since export (the manifest lists it)")
    content = path.read_bytes()
    if hashlib.sha256(content).hexdigest() != entry["sha256"]:
        raise VerificationError(
            f"{path} changed since export: its sha256 differs from the manifest's (run "
            f"iresnet-onnx verify {folder}, or export again)"
        )
    return content


def check_runnable(
    folder: str | Path, graphs: tuple[str, ...], runtimes: tuple[str, ...] | list[str],
    eager: bool = False,
) -> None:  # fmt: skip
    """Before a command runs ``graphs`` of ``folder`` on each of ``runtimes``: the files are the
    exported ones (and the checkpoint, with ``eager``: the command runs the model too), and each
    runtime opens each graph — one that cannot (tract and a ``Loop``) is its
    :class:`~iresnet_onnx.errors.UnsupportedModelError`, not a row left out in silence."""
    for graph in graphs:
        checked = checked_export(folder, graph, "torch" if eager else "onnxruntime")
        for runtime in runtimes:
            with rt.load(checked.graph_file, runtime):
                pass
