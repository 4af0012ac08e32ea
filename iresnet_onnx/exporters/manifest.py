"""``manifest.json``: versions, options, HP, the sha256 of every file, and the validation figures."""

import hashlib
import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import InvalidModelError

MANIFEST_NAME = "manifest.json"
_PACKAGES = ("torch", "onnx", "onnxscript", "onnx-ir", "onnxruntime", "onnxruntime-gpu", "numpy")


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


def write_manifest(out_dir: Path, content: dict[str, Any], files: list[Path]) -> Path:
    """Write ``content`` plus the size and sha256 of each of ``files`` to ``out_dir/manifest.json``."""
    content = {
        "package": "iresnet-onnx",
        "versions": package_versions(),
        **content,
        "files": {
            path.name: {"sha256": sha256(path), "bytes": path.stat().st_size} for path in files
        },
    }
    path = out_dir / MANIFEST_NAME
    path.write_text(json.dumps(content, indent=2, sort_keys=False) + "\n")
    return path


def read_manifest(out_dir: str | Path) -> dict[str, Any]:
    path = Path(out_dir) / MANIFEST_NAME
    if not path.is_file():
        raise InvalidModelError(f"{Path(out_dir)} is not an export folder: no {MANIFEST_NAME}")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidModelError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(manifest, dict) or manifest.get("package") != "iresnet-onnx":
        raise InvalidModelError(f"{path}: not an iresnet-onnx manifest")
    files = manifest.get("files")
    required = ("forward.onnx", "inverse.onnx", manifest.get("checkpoint", "model.pt"))
    if not isinstance(files, dict) or not all(
        isinstance(files.get(name), dict) and isinstance(files[name].get("sha256"), str)
        for name in required
    ):
        raise InvalidModelError(f"{path}: the manifest lacks the sha256 of {', '.join(required)}")
    return manifest


def verify_hashes(out_dir: str | Path, manifest: dict[str, Any]) -> dict[str, str]:
    """Per file of the manifest: ``"ok"``, ``"modified"`` (sha256 differs) or ``"missing"``."""
    status = {}
    for name, entry in manifest.get("files", {}).items():
        path = Path(out_dir) / name
        if not path.is_file():
            status[name] = "missing"
        else:
            status[name] = "ok" if sha256(path) == entry.get("sha256") else "modified"
    return status
