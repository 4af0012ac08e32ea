"""``iresnet-onnx web DIR --out SITE``: a static site that verifies an export's golden vectors in
the browser with onnxruntime-web (WASM), by the rules of ``verify --golden``. Torch-free.

The site holds::

    SITE/index.html, page.mjs, verify.mjs, flow.mjs    the page (from iresnet_onnx/site/)
    SITE/ort/ort.wasm.min.mjs, ort-wasm-simd-threaded.mjs, ort-wasm-simd-threaded.wasm
                                                        onnxruntime-web's WASM backend (from npm)
    SITE/export/manifest.json, *.onnx, golden/...       the export, less its checkpoint
    SITE/site.json                                      what was built from what

Served over HTTP (any static server: ``python -m http.server -d SITE``), the page hashes every file
against the manifest, runs every golden case, shows the verdict in ``<output id="verdict">``
(PASSED, or FAILED with the graph, case and error), the latency of each graph and, for a 2-D flow,
the density on a grid and samples from the inverse. :func:`check_site` serves it on 127.0.0.1 and
reads the verdict in headless Chromium.
"""

import contextlib
import functools
import http.server
import json
import logging
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from . import __version__
from ._atomic import atomic_directory, write_text_atomic
from ._layout import CHECKPOINT
from ._manifest import read_manifest
from .errors import InvalidModelError, RuntimeUnavailableError

__all__ = ["SiteCheck", "build_site", "check_site", "demo_site", "serve_site"]

log = logging.getLogger("iresnet_onnx.site")

ASSETS = Path(__file__).resolve().parent / "site"
PAGE_FILES = ("index.html", "page.mjs", "verify.mjs", "flow.mjs")
ORT_WEB_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
MARKER = "site.json"
EXPORT = "export"


def _ort_web_dist() -> tuple[Path, str]:
    """onnxruntime-web's dist/ folder and version; a :class:`RuntimeUnavailableError` naming the
    install if the npm package is not there."""
    from .runtimes._js import INSTALL_PACKAGES, node_modules

    found = node_modules("onnxruntime-web")
    dist = found / "onnxruntime-web" / "dist" if found else None
    if dist is None or not all((dist / name).is_file() for name in ORT_WEB_FILES):
        raise RuntimeUnavailableError(
            "the web page needs the npm package onnxruntime-web (its WASM files): "
            + INSTALL_PACKAGES.format(package="onnxruntime-web")
        )
    version = json.loads((dist.parent / "package.json").read_text())["version"]
    return dist, version


def build_site(export_dir: str | Path, out: str | Path) -> Path:
    """Write the site for the export folder ``export_dir`` to ``out`` (replaced whole, if it is a
    site built before; any other non-empty folder is refused). Returns ``out``."""
    export_dir, out = Path(export_dir), Path(out)
    manifest = read_manifest(export_dir)
    if not isinstance(manifest.get("golden"), dict) or not manifest["golden"].get("graphs"):
        raise InvalidModelError(
            f"{export_dir}: the manifest lists no golden vectors, so the page has nothing to "
            "check (export it again with iresnet-onnx ≥ 0.2)"
        )
    dist, ort_version = _ort_web_dist()
    checkpoint = manifest.get("checkpoint", CHECKPOINT)
    with atomic_directory(out, MARKER) as folder:
        for name in PAGE_FILES:
            shutil.copyfile(ASSETS / name, folder / name)
        (folder / "ort").mkdir()
        for name in ORT_WEB_FILES:
            shutil.copyfile(dist / name, folder / "ort" / name)
        copied = [name for name in manifest["files"] if name != checkpoint]
        for name in ["manifest.json", *copied]:
            source = export_dir / name
            if source.is_file():  # a missing file is the page's finding, as verify's
                target = folder / EXPORT / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
        site = {"package": "iresnet-onnx", "version": __version__, "export": str(export_dir),
                "onnxruntime-web": ort_version, "files": len(copied)}  # fmt: skip
        write_text_atomic(folder / MARKER, json.dumps(site, indent=2) + "\n")
    log.info("site of %s written to %s (onnxruntime-web %s)", export_dir, out, ort_version)
    return out


def demo_site(export_dir: Path, out: Path) -> Path | None:
    """The demo's site of its loop-mode export, or None (with a log line saying what to install)
    where onnxruntime-web's npm package is absent: the demo's Python outputs do not depend on it."""
    try:
        return build_site(export_dir, out)
    except RuntimeUnavailableError as error:
        log.warning("no web page in the demo output: %s", error)
        return None


class _Quiet(http.server.SimpleHTTPRequestHandler):
    extensions_map: ClassVar[dict[str, str]] = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        # module scripts must come as JavaScript, and WebAssembly.instantiateStreaming wants
        # application/wasm; older Pythons' mimetypes know neither
        ".mjs": "text/javascript",
        ".wasm": "application/wasm",
    }

    def log_message(self, format: str, *args: object) -> None:
        log.debug("site server: " + format, *args)


@contextlib.contextmanager
def serve_site(folder: str | Path) -> Iterator[str]:
    """``with serve_site(SITE) as url:`` the folder served on 127.0.0.1 (a free port) meanwhile."""
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="site server")
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class SiteCheck:
    """What the page said in headless Chromium."""

    verdict: str
    text: str
    """The page's whole text (tables included)."""
    console: list[str]

    @property
    def passed(self) -> bool:
        return self.verdict == "PASSED"


def check_site(
    folder: str | Path,
    *,
    screenshot: str | Path | None = None,
    timeout: float = 300.0,
    browser: object | None = None,
) -> SiteCheck:
    """Serve the site ``folder`` on 127.0.0.1, open it in headless Chromium and wait for its
    verdict; optionally save a screenshot of the whole page. ``browser``: a
    :class:`~iresnet_onnx.runtimes._web.Browser` to reuse (default: one for this call)."""
    from .runtimes._web import Browser

    if not (Path(folder) / MARKER).is_file():
        raise InvalidModelError(f"{folder} is not a site built by iresnet-onnx web (no {MARKER})")
    owned = browser is None
    visitor = Browser() if owned else browser
    try:
        with serve_site(folder) as url:
            answer = visitor.visit(url, timeout=timeout, screenshot=screenshot)
    finally:
        if owned:
            visitor.close()
    return SiteCheck(answer["text"].strip(), answer["body"], answer.get("console", []))
