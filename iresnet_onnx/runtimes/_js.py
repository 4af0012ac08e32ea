"""What ``node:cpu`` and ``web:wasm`` share: finding Node.js, the npm packages and Chromium, and
one long-lived Node.js child per session that speaks a framed binary protocol on its stdin/stdout.

A frame is ``[u32 header length][u32 payload length][JSON header][payload]`` (little-endian); arrays
travel as their raw little-endian bytes in the payload, never as decimal text, so they arrive
exactly (``js/protocol.mjs`` is the other end). Every read and write has a deadline: a child that
hangs is killed and a child that dies is reported with the end of its stderr, never waited on.

Where the npm packages are: ``$IRESNET_ONNX_NODE_MODULES``, else the first ``node_modules`` folder
holding them in the current directory or above, or above this package (a checkout's root, where
``npm ci`` puts them).
"""

import collections
import json
import logging
import os
import selectors
import shutil
import signal
import subprocess
import threading
import time
import weakref
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidModelError, RuntimeUnavailableError, UnsupportedModelError

__all__ = [
    "JsChild", "chromium", "decode", "encode", "lacking", "node", "node_modules", "require_tools",
]  # fmt: skip

log = logging.getLogger("iresnet_onnx.runtimes.js")

JS = Path(__file__).resolve().parent / "js"
NODE_MIN_MAJOR = 18
INSTALL_NODE = "install Node.js ≥ 18 (Debian: apt-get install nodejs)"
INSTALL_PACKAGES = (
    "run `make js` (npm ci) in the iresnet-onnx checkout, or `npm install "
    "--onnxruntime-node-install=skip {package}` in a folder of yours and set "
    "IRESNET_ONNX_NODE_MODULES to its node_modules"
)
INSTALL_CHROMIUM = (
    "install Debian's Chromium (apt-get install chromium) or set IRESNET_ONNX_CHROMIUM to a "
    "Chromium/Chrome executable"
)
_DTYPES = {"float32": "<f4", "float64": "<f8", "int64": "<i8", "int32": "<i4"}


@cache
def node() -> Path | None:
    """The ``node`` executable ($IRESNET_ONNX_NODE or on PATH) if it is Node.js ≥ 18, else None."""
    found = os.environ.get("IRESNET_ONNX_NODE") or shutil.which("node")
    if not found:
        return None
    try:
        version = subprocess.run(
            [found, "--version"], capture_output=True, text=True, timeout=20, check=True
        ).stdout
        major = int(version.strip().lstrip("v").split(".")[0])
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return Path(found) if major >= NODE_MIN_MAJOR else None


def node_modules(package: str) -> Path | None:
    """The ``node_modules`` folder that holds npm ``package`` (see the module docstring)."""
    named = os.environ.get("IRESNET_ONNX_NODE_MODULES")
    if named:
        candidates = [Path(named)]
    else:
        starts = (Path.cwd().resolve(), Path(__file__).resolve().parent)
        candidates = [
            folder / "node_modules" for start in starts for folder in (start, *start.parents)
        ]
    return next((c for c in candidates if (c / package / "package.json").is_file()), None)


@cache
def chromium() -> Path | None:
    """A Chromium executable: $IRESNET_ONNX_CHROMIUM, else Debian's /usr/bin/chromium or one on
    PATH (never a browser build downloaded by a driver)."""
    named = os.environ.get("IRESNET_ONNX_CHROMIUM")
    if named:
        return Path(named) if Path(named).is_file() else None
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


def lacking(packages: tuple[str, ...], browser: bool) -> tuple[dict[str, Path], list[str]]:
    """The tools found (``node``, ``node_modules``, ``chromium``) and, for each one missing, what
    to install."""
    found: dict[str, Path | None] = {"node": node()}
    missing = [] if found["node"] else [INSTALL_NODE]
    folders = {package: node_modules(package) for package in packages}
    absent = [package for package, folder in folders.items() if folder is None]
    if absent:
        missing.append(
            f"the npm package {', '.join(absent)} is missing: "
            + INSTALL_PACKAGES.format(package=" ".join(absent))
        )
    found["node_modules"] = next(iter(folders.values()))
    if browser:
        found["chromium"] = chromium()
        if found["chromium"] is None:
            missing.append(INSTALL_CHROMIUM)
    return {name: path for name, path in found.items() if path is not None}, missing


def require_tools(runtime: str, packages: tuple[str, ...], browser: bool) -> dict[str, Path]:
    """``node``, ``node_modules`` (and ``chromium``) for ``runtime``, or one
    :class:`RuntimeUnavailableError` naming everything that is missing and how to install it."""
    found, missing = lacking(packages, browser)
    if missing:
        raise RuntimeUnavailableError(f"{runtime} is not available here: {'; '.join(missing)}")
    return found


def encode(arrays: dict[str, np.ndarray]) -> tuple[list[dict[str, Any]], bytes]:
    """Header entries and payload of named arrays: their raw little-endian bytes."""
    entries, parts, offset = [], [], 0
    for name, array in arrays.items():
        array = np.asarray(array)
        if array.dtype.name not in _DTYPES:
            raise UnsupportedModelError(f"the JavaScript runtimes take no {array.dtype} tensor")
        raw = np.ascontiguousarray(array, dtype=_DTYPES[array.dtype.name]).tobytes()
        entries.append({"name": name, "dtype": array.dtype.name, "dims": list(array.shape),
                        "offset": offset, "bytes": len(raw)})  # fmt: skip
        parts.append(raw)
        offset += len(raw)
    return entries, b"".join(parts)


def decode(entries: list[dict[str, Any]], payload: bytes) -> dict[str, np.ndarray]:
    """Named arrays from header entries and a payload (copied: the arrays own their memory)."""
    arrays = {}
    for entry in entries:
        dtype = _DTYPES.get(entry["dtype"])
        if dtype is None:
            raise UnsupportedModelError(f"the graph returned a {entry['dtype']} tensor")
        start = entry["offset"]
        raw = payload[start : start + entry["bytes"]]
        array = np.frombuffer(raw, dtype=dtype).reshape(entry["dims"])
        arrays[entry["name"]] = array.astype(np.dtype(entry["dtype"]), copy=True)
    return arrays


def _widen_pipe(fd: int) -> None:
    """Give a pipe 1 MiB of buffer where Linux allows it: a 256 KiB batch then crosses in one
    write instead of four 64 KiB turns, each a context switch (milliseconds on a loaded machine)."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (ImportError, OSError):
        pass  # not Linux, or above /proc/sys/fs/pipe-max-size: the default buffer works too


def _frame(header: dict[str, Any], payload: bytes = b"") -> bytes:
    """``[u32 header length][u32 payload length][JSON header][payload]``, little-endian."""
    text = json.dumps(header).encode()
    return len(text).to_bytes(4, "little") + len(payload).to_bytes(4, "little") + text + payload


def _terminate(process: subprocess.Popen) -> None:
    """Stop a child and everything it started (Chromium): its own process group."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            stream.close()


class JsChild:
    """One Node.js child running ``script`` (a runner in ``js/``): ``request()`` sends a frame and
    waits for the answer, with a deadline. Thread-safe (one request at a time); closed by
    ``close()``, by garbage collection, or at interpreter exit."""

    def __init__(self, what: str, script: str, args: list[str], timeout: float = 120.0):
        self.what, self.timeout = what, float(timeout)
        argv = [str(node()), str(JS / script), *args]
        # its own session (process group): close() ends the child and the Chromium it started in
        # one signal, and a Ctrl-C in the terminal reaches Python, which closes it in order
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True, cwd=str(JS),
        )  # fmt: skip
        self._finalizer = weakref.finalize(self, _terminate, self.process)
        for stream in (self.process.stdin, self.process.stdout):
            _widen_pipe(stream.fileno())
        self._stderr: collections.deque[str] = collections.deque(maxlen=30)
        self._lock = threading.Lock()
        self._failed: str | None = None
        threading.Thread(target=self._drain, daemon=True, name=f"{what} stderr").start()

    def _drain(self) -> None:
        for line in iter(self.process.stderr.readline, b""):
            text = line.decode("utf-8", "replace").rstrip()
            self._stderr.append(text)
            log.debug("%s: %s", self.what, text)

    @property
    def alive(self) -> bool:
        return self._failed is None and self.process.poll() is None

    def request(
        self, header: dict[str, Any], payload: bytes = b"", timeout: float | None = None
    ) -> tuple[dict[str, Any], bytes]:
        """Send one frame, return the answer's (header, payload); a failed answer raises."""
        with self._lock:
            if self._failed is not None:
                raise RuntimeUnavailableError(self._failed)
            try:
                answer, body = self._exchange(_frame(header, payload), timeout or self.timeout)
            except RuntimeUnavailableError as error:
                self._failed = str(error)
                _terminate(self.process)
                raise
        if not answer.pop("ok", False):
            kind = answer.get("kind")
            error = UnsupportedModelError if kind == "unsupported" else InvalidModelError
            raise error(f"{self.what}: {answer.get('error', 'failed without a message')}")
        return answer, body

    def _exchange(self, frame: bytes, timeout: float) -> tuple[dict[str, Any], bytes]:
        deadline = time.monotonic() + timeout
        stdin, stdout = self.process.stdin.fileno(), self.process.stdout.fileno()
        os.set_blocking(stdin, False)
        received, sent, wanted = bytearray(), 0, None
        with selectors.DefaultSelector() as selector:
            selector.register(stdin, selectors.EVENT_WRITE)
            selector.register(stdout, selectors.EVENT_READ)
            while wanted is None or len(received) < wanted:
                left = deadline - time.monotonic()
                events = selector.select(max(left, 0)) if left > 0 else []
                if not events:
                    raise RuntimeUnavailableError(
                        f"{self.what} gave no answer within {timeout:g} s; it was stopped "
                        f"(stderr: {self._stderr_tail()})"
                    )
                for key, _ in events:
                    if key.fd == stdin:
                        sent += self._write(stdin, frame[sent:])
                        if sent == len(frame):
                            selector.unregister(stdin)
                        continue
                    chunk = os.read(stdout, 1 << 20)
                    if not chunk:
                        raise RuntimeUnavailableError(self._died())
                    received += chunk
                    if wanted is None and len(received) >= 8:
                        lengths = received[:4], received[4:8]
                        wanted = 8 + sum(int.from_bytes(n, "little") for n in lengths)
        size = int.from_bytes(received[:4], "little")
        return json.loads(received[8 : 8 + size]), bytes(received[8 + size :])

    def _write(self, fd: int, data: bytes) -> int:
        try:
            return os.write(fd, data[: 1 << 20])
        except BlockingIOError:
            return 0
        except (BrokenPipeError, ConnectionResetError):
            raise RuntimeUnavailableError(self._died()) from None

    def _died(self) -> str:
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        time.sleep(0.05)  # let the drain thread collect the last stderr lines
        return f"{self.what} exited (code {code}): {self._stderr_tail()}"

    def _stderr_tail(self) -> str:
        lines = [line for line in self._stderr if line.strip()]
        return " | ".join(lines[-6:]) if lines else "nothing on stderr"

    def close(self, timeout: float = 10.0) -> None:
        """Ask the child to end (it closes its browser), then make sure it has; idempotent."""
        if not self._finalizer.alive:
            return
        with self._lock:
            if self.alive:
                try:
                    self._exchange(_frame({"op": "close"}), timeout)
                except RuntimeUnavailableError:
                    pass
                try:
                    self.process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    pass
            self._finalizer()
