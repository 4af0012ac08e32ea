"""``manifest.json`` of an export folder: versions, options, HP, validation, and the sha256 of every
file. Reading it needs neither torch nor onnx (an edge device verifies an export with it).

The manifest is data from disk, so it is trusted no further than it is checked: every file it names
must be a plain name inside the folder (no ``/``, no ``..``), every hash a hex string; anything else
is an :class:`~iresnet_onnx.errors.InvalidModelError` about the manifest.
"""

import hashlib
import json
import platform
import re
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

from . import __version__
from ._atomic import write_text_atomic
from ._layout import CHECKPOINT, MANIFEST, REQUIRED_GRAPHS
from .errors import InvalidModelError

__all__ = ["read_manifest", "sha256", "verify_hashes", "write_manifest"]
_PACKAGES = ("torch", "onnx", "onnx-ir", "onnxruntime", "onnxruntime-gpu", "numpy")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "iresnet-onnx": __version__}
    for package in _PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return versions


def write_manifest(folder: Path, content: dict[str, Any], files: list[Path]) -> Path:
    """Write ``content`` plus the size and sha256 of each of ``files`` (paths inside ``folder``)."""
    content = {
        "package": "iresnet-onnx",
        "versions": package_versions(),
        **content,
        "files": {
            path.relative_to(folder).as_posix(): {
                "sha256": sha256(path),
                "bytes": path.stat().st_size,
            }
            for path in files
        },
    }
    return write_text_atomic(folder / MANIFEST, json.dumps(content, indent=2) + "\n")


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of an export folder, checked (see the module docstring)."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise InvalidModelError(f"{folder} is not an export folder: no {MANIFEST}")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidModelError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(manifest, dict) or manifest.get("package") != "iresnet-onnx":
        raise InvalidModelError(f"{path}: not an iresnet-onnx manifest")
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise InvalidModelError(
            f"{path}: the manifest lacks the sha256 of {', '.join(REQUIRED_GRAPHS)}"
        )
    for name, entry in files.items():
        if not _is_inside(name):
            raise InvalidModelError(f"{path}: file entry {name!r} points outside the export folder")
        if not isinstance(entry, dict) or not _HEX64.fullmatch(str(entry.get("sha256", ""))):
            raise InvalidModelError(f"{path}: file entry {name!r} has no valid sha256")
    checkpoint = manifest.get("checkpoint", CHECKPOINT)
    if not isinstance(checkpoint, str) or not _is_inside(checkpoint):
        raise InvalidModelError(
            f"{path}: 'checkpoint' must name a file in the folder, got {checkpoint!r}"
        )
    missing = [name for name in REQUIRED_GRAPHS if name not in files]
    if missing:
        raise InvalidModelError(f"{path}: the manifest lacks the sha256 of {', '.join(missing)}")
    return manifest


def _is_inside(name: Any) -> bool:
    """A relative POSIX path of plain parts: no absolute path, no ``..``, no backslash."""
    if not isinstance(name, str) or not name or "\\" in name:
        return False
    pure = PurePosixPath(name)
    return not pure.is_absolute() and all(part not in ("", ".", "..") for part in pure.parts)


def verify_hashes(folder: str | Path, manifest: dict[str, Any]) -> dict[str, str]:
    """Per file of the manifest: ``"ok"``, ``"modified"`` (sha256 differs) or ``"missing"``."""
    status = {}
    for name, entry in manifest["files"].items():
        path = Path(folder) / name
        if not path.is_file():
            status[name] = "missing"
        else:
            status[name] = "ok" if sha256(path) == entry["sha256"] else "modified"
    return status
