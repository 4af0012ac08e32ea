"""``web:wasm``: onnxruntime-web's WASM backend in a real headless Chromium (Debian's, never a
browser build downloaded by a driver), driven by playwright-core from a Node.js child
(``js/web_runner.mjs``). The WASM backend is onnxruntime's CPU engine compiled to WebAssembly, so
the graphs run unchanged, Loops and float64 included. A call's arrays go to the child on its stdin
and on to the page over a WebSocket, raw bytes all the way (page.evaluate would carry them as
base64 JSON, several times slower).

The sessions of one Python process share one Chromium and its driver, started with the first
session and ended :data:`IDLE_SECONDS` after the last (or at exit), and within it one runner page
per thread count: a browser start costs about a second, and so does starting onnxruntime-web's
WASM in a page, which a page's later sessions skip (they pay for their graph only). A session that
closes frees its graph and WASM memory in the page. A driver or page that crashes fails the
sessions it served with its stderr, and the next session starts a new one.

Also here: :class:`Browser`, which opens a page (a site built by ``iresnet-onnx web``), waits for its
verdict and can take a screenshot.
"""

import itertools
import threading
from pathlib import Path
from typing import Any

from ._js import JsChild, lacking, require_tools
from ._node import JsSession

__all__ = ["Browser", "WebSession", "available_devices", "missing"]

PACKAGES = ("onnxruntime-web", "playwright-core")
ORT_WEB_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
"""What a page needs of onnxruntime-web for the WASM backend (in its dist/ folder)."""


def available_devices() -> tuple[str, ...]:
    return () if missing() else ("wasm",)


def missing() -> str:
    """What web:wasm lacks here and how to install it ("" when nothing)."""
    tools, missing = lacking(PACKAGES, browser=True)
    if missing:
        return "; ".join(missing)
    dist = tools["node_modules"] / "onnxruntime-web" / "dist"
    absent = [name for name in ORT_WEB_FILES if not (dist / name).is_file()]
    if absent:
        return f"{dist} lacks {', '.join(absent)} (run `npm ci`)"
    return ""


IDLE_SECONDS = 20.0
"""How long the browser outlives its last session: a caller that opens sessions one after another
(parity over several exports, a benchmark's rounds) keeps one browser instead of starting one each
time. A browser left over at exit ends with the process."""


class _Driver:
    """The one Chromium driver of this process, counted by its users."""

    lock = threading.RLock()  # re-entrant: a session's __del__ may run while it is held
    child: JsChild | None = None
    users = 0
    ids = itertools.count()
    idle: threading.Timer | None = None  # ends the driver IDLE_SECONDS after its last user left

    @classmethod
    def acquire(cls, tools: dict[str, Path], timeout: float) -> tuple[JsChild, str]:
        with cls.lock:
            if cls.idle is not None:
                cls.idle.cancel()
                cls.idle = None
            if cls.child is None or not cls.child.alive:
                args = [str(tools["node_modules"]), str(tools["chromium"])]
                cls.child = JsChild("headless Chromium", "web_runner.mjs", args, timeout)
                cls.users = 0
            cls.users += 1
            return cls.child, str(next(cls.ids))

    @classmethod
    def release(cls, child: JsChild) -> None:
        with cls.lock:
            if child is not cls.child:
                child.close()  # a driver that was replaced after a crash
                return
            cls.users -= 1
            if cls.users <= 0 and cls.idle is None:
                cls.idle = threading.Timer(IDLE_SECONDS, cls._end_if_idle, args=(child,))
                cls.idle.daemon = True
                cls.idle.start()

    @classmethod
    def _end_if_idle(cls, child: JsChild) -> None:
        with cls.lock:
            if child is not cls.child or cls.users > 0:
                return
            cls.child, cls.idle = None, None
        child.close()


class WebSession(JsSession):
    """An exported graph on onnxruntime-web (WASM) in headless Chromium, in the runner page of its
    thread count, which the process's other sessions share. ``threads`` > 1 uses WASM threads (the
    runner's page is cross-origin isolated); default 1."""

    runtime = "web"
    device = "wasm"
    packages = PACKAGES
    browser = True

    def _start(self, tools: dict[str, Path], timeout: float) -> JsChild:
        child, self.page_id = _Driver.acquire(tools, timeout)
        return child

    def _request(
        self, header: dict[str, Any], payload: bytes = b"", timeout: float | None = None
    ) -> tuple[dict[str, Any], bytes]:
        return super()._request({**header, "id": self.page_id}, payload, timeout)

    def close(self) -> None:
        """Free this session in its page (the browser ends IDLE_SECONDS after the last session);
        idempotent."""
        child = self.__dict__.pop("child", None)
        if child is None:
            return
        try:
            if child.alive:
                child.request({"op": "unload", "id": self.page_id}, timeout=30)
        except Exception:  # a crashed driver: nothing left to unload
            pass
        finally:
            _Driver.release(child)


class Browser:
    """A headless Chromium that visits pages: ``visit(url)`` waits until the element ``selector``
    has ``data-done="true"`` and returns its text, the page's text and its console lines. Close it
    with ``close()`` or ``with``."""

    def __init__(self, timeout: float = 180.0):
        tools = require_tools("a headless Chromium", ("playwright-core",), browser=True)
        self.child, _ = _Driver.acquire(tools, timeout)

    def visit(
        self,
        url: str,
        *,
        selector: str = "#verdict",
        timeout: float = 120.0,
        screenshot: str | Path | None = None,
        size: tuple[int, int] = (1280, 900),
    ) -> dict[str, Any]:
        """``{"text", "body", "console"}`` of the page at ``url`` once it is done."""
        header = {"op": "visit", "url": url, "selector": selector, "timeout": timeout,
                  "width": size[0], "height": size[1],
                  "screenshot": str(Path(screenshot).resolve()) if screenshot else None}  # fmt: skip
        answer, _ = self.child.request(header, timeout=timeout + 30)
        return answer

    def close(self) -> None:
        child = self.__dict__.pop("child", None)
        if child is not None:
            _Driver.release(child)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
