"""A fresh hostile run (issue 22, "Done when"): new bad inputs for the data jobs, the verifier,
export, inspect, bench and web, each run as a real CLI subprocess (and a few Python API calls in a
child interpreter), each with its expected outcome.

A case is clean when
- the exit code is one of the expected ones (0 ok, 1 export wrong / verification failed,
  2 bad input, 3 internal bug, 130 interrupted, 141 closed pipe);
- no "Traceback" appears on stderr, and a failure says so in one line ("iresnet-onnx CMD: error: …";
  argparse's own usage block is allowed for argument errors);
- the work folder (inputs, existing outputs, the exports, and TMPDIR, which points inside it) is
  unchanged except for the paths the case may write: nothing written where it should not be, no
  temporary file left behind, no existing output lost;
- the case's own check of the result holds (numbers equal to a reference run, a device node still a
  device node, a pickle payload that never ran, …).

Cases that cannot be tried here (permission cases when running as root) are reported as skipped and
not counted.

    .venv/bin/python scripts/hostile.py      # writes results/hostile.md and results/hostile.json
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
CLI = [PY, "-m", "iresnet_onnx"]


# ----------------------------------------------------------------------------------------------
# the work folder and its snapshot


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under root (never following links, never opening FIFOs or devices)."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            rel = str(p.relative_to(root))
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                h = hashlib.sha256(p.read_bytes()).hexdigest() if st.st_size < 64 << 20 else ""
                out[rel] = ("file", st.st_size, h, st.st_mtime_ns if not h else 0)
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir",)
            else:
                out[rel] = ("special", stat.S_IFMT(st.st_mode), st.st_rdev)
    return out


def diff(before: dict, after: dict, allowed: list[str]) -> list[str]:
    def ok(rel: str) -> bool:
        return any(rel == a or rel.startswith(a.rstrip("/") + "/") for a in allowed)

    problems = []
    for rel in sorted(set(before) | set(after)):
        if before.get(rel) == after.get(rel) or ok(rel):
            continue
        if rel not in after:
            problems.append(f"removed {rel}")
        elif rel not in before:
            problems.append(f"left {rel}")
        else:
            problems.append(f"changed {rel}")
    return problems


# ----------------------------------------------------------------------------------------------
# cases


@dataclass
class Case:
    id: str
    what: str
    argv: list[str] | None = None  # after `python -m iresnet_onnx`
    expect: tuple[int, ...] = (2,)
    writes: list[str] = field(default_factory=list)  # paths (relative to W) it may create/change
    check: Callable[[subprocess.CompletedProcess], str | None] | None = None  # None = fine
    api: str | None = None  # Python source run in a child interpreter instead of the CLI
    prepare: Callable[[], str | None] | None = None  # returns a reason to skip, or None
    run: Callable[[Case], subprocess.CompletedProcess] | None = None  # custom runner
    timeout: float = 120
    one_line: bool = True


W = Path(tempfile.mkdtemp(prefix="iresnet-hostile-"))
TMP = W / "tmp"
ENV = dict(os.environ, TMPDIR=str(TMP), PYTHONDONTWRITEBYTECODE="1")
ROWS = np.array([[0.5, -1.0], [1.5, 2.0], [-0.25, 0.75]], dtype=np.float32)


def w(rel: str) -> str:
    return str(W / rel)


def sh(argv: list[str], timeout: float, **kw: Any) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            argv,
            cwd=W,
            env=ENV,
            capture_output=True,
            text=True,
            timeout=timeout,
            errors="replace",
            **kw,
        )
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(argv, -999, e.stdout or "", f"TIMEOUT after {timeout} s")


REF: dict[str, np.ndarray] = {}


def read_scores(path: str) -> np.ndarray:
    p = Path(path)
    if p.suffix == ".npy":
        return np.load(p, allow_pickle=False)
    if p.suffix == ".csv":
        import csv

        with open(p, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        header, body = rows[0], rows[1:]
        col = [i for i, h in enumerate(header) if h not in ("id", "valid", "flags")]
        return np.array([[float(r[i]) for i in col] for r in body]).squeeze(-1)
    import pyarrow.parquet as pq

    t = pq.read_table(p)
    name = next(n for n in t.column_names if n not in ("id", "valid", "flags"))
    return np.asarray(t.column(name).to_pylist(), dtype=np.float64).squeeze()


def same_scores(path: str, ref: str = "score", rows: slice | None = None) -> Callable:
    """A check: if the run succeeded, the file holds the reference scores (not invented ones)."""

    def check(r: subprocess.CompletedProcess) -> str | None:
        if r.returncode != 0:
            return None
        if not Path(path).exists():
            return f"exit 0 but {path} not written"
        got = read_scores(path)
        want = REF[ref] if rows is None else REF[ref][rows]
        if got.shape != want.shape:
            return f"wrong shape {got.shape} vs {want.shape}"
        if not np.allclose(got, want, rtol=1e-5, atol=1e-5, equal_nan=True):
            return f"wrong numbers {got} vs {want}"
        return None

    return check


def all_of(*checks: Callable) -> Callable:
    def check(r):
        for c in checks:
            m = c(r)
            if m:
                return m
        return None

    return check


def error_names(*words: str) -> Callable:
    def check(r):
        if r.returncode in (0,):
            return None
        low = r.stderr.lower()
        if not any(x.lower() in low for x in words):
            return f"message names none of {words}"
        return None

    return check


def write(rel: str, data: bytes | str) -> str:
    p = W / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    return str(p)


def copy_export(src: str, dst: str) -> str:
    shutil.copytree(W / src, W / dst, symlinks=True)
    return w(dst)


def edit_manifest(
    exp: str, fn: Callable[[Any], Any] | None = None, text: str | None = None
) -> None:
    p = W / exp / "manifest.json"
    if text is not None:
        p.write_text(text)
        return
    m = json.loads(p.read_text())
    m2 = fn(m)
    p.write_text(json.dumps(m if m2 is None else m2, indent=2))


def rehash(exp: str, rels: list[str]) -> None:
    def f(m):
        for rel in rels:
            data = (W / exp / rel).read_bytes()
            m["files"][rel] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}

    edit_manifest(exp, f)


def root_can_write_readonly(d: Path) -> bool:
    probe = d / ".probe"
    try:
        probe.write_text("x")
        probe.unlink()
        return True
    except OSError:
        return False


# ----------------------------------------------------------------------------------------------
# set-up: exports, checkpoints, data


def setup() -> None:
    import torch

    import iresnet_onnx

    TMP.mkdir()
    torch.manual_seed(0)
    m = iresnet_onnx.iResNet(2, nblocks=2)
    iresnet_onnx.export(m, W / "exp", runtimes=["onnxruntime:cpu"])
    iresnet_onnx.save_checkpoint(m, W / "model.pt")
    torch.manual_seed(1)
    mb = iresnet_onnx.iResNet(2, nblocks=2)
    iresnet_onnx.export(mb, W / "expB", runtimes=["onnxruntime:cpu"])
    torch.manual_seed(2)
    m64 = iresnet_onnx.iResNet(2, nblocks=2).double()
    iresnet_onnx.export(m64, W / "exp64", runtimes=["onnxruntime:cpu"])
    np.save(W / "good.npy", ROWS)
    write("good.csv", "x,y\n" + "".join(f"{a!r},{b!r}\n" for a, b in ROWS.tolist()))
    r = sh([*CLI, "score", "exp", "good.npy", "--out", "ref.npy", "--quiet"], 120)
    assert r.returncode == 0, r.stderr
    REF["score"] = np.load(W / "ref.npy")
    r = sh([*CLI, "score", "exp64", "good.csv", "--out", "ref64.npy", "--quiet"], 120)
    assert r.returncode == 0, r.stderr
    REF["score64"] = np.load(W / "ref64.npy")


# ----------------------------------------------------------------------------------------------
# custom runners


def run_pipe(case: Case) -> subprocess.CompletedProcess:
    """Read one byte of stdout, then close the pipe (like `| head -c1`)."""
    p = subprocess.Popen(
        CLI + case.argv, cwd=W, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    p.stdout.read(1)
    p.stdout.close()
    try:
        err = p.stderr.read().decode(errors="replace")
        rc = p.wait(timeout=case.timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        return subprocess.CompletedProcess(case.argv, -999, "", "TIMEOUT")
    return subprocess.CompletedProcess(case.argv, rc, "", err)


def run_sigint(case: Case) -> subprocess.CompletedProcess:
    """Ctrl-C (SIGINT to the process group) 1.5 s after the job says it has started reading."""
    p = subprocess.Popen(
        CLI + case.argv,
        cwd=W,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    time.sleep(4.0)
    try:
        os.killpg(p.pid, signal.SIGINT)
    except ProcessLookupError:
        pass
    try:
        out, err = p.communicate(timeout=case.timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        return subprocess.CompletedProcess(case.argv, -999, "", "TIMEOUT after SIGINT")
    return subprocess.CompletedProcess(
        case.argv, p.returncode, out.decode(errors="replace"), err.decode(errors="replace")
    )


def run_fifo_with_timeout(case: Case) -> subprocess.CompletedProcess:
    return sh(CLI + case.argv, 15)


# ----------------------------------------------------------------------------------------------
# the cases


def cases() -> list[Case]:
    C: list[Case] = []
    add = C.append
    q = ["--quiet"]

    # ---- score: what the data path is
    def mk_dir():
        (W / "emptydir").mkdir()

    add(
        Case(
            "S01",
            "score: data is an empty directory (an empty Parquet folder)",
            ["score", "exp", "emptydir", "--out", "o1.npy", *q],
            prepare=mk_dir,
        )
    )

    def mk_fifo():
        os.mkfifo(W / "pipe.csv")

    add(
        Case(
            "S02",
            "score: data is a FIFO nobody writes to (must not hang)",
            ["score", "exp", "pipe.csv", "--out", "o2.npy", *q],
            prepare=mk_fifo,
            run=run_fifo_with_timeout,
        )
    )
    add(
        Case(
            "S03", "score: data is /dev/null", ["score", "exp", "/dev/null", "--out", "o3.npy", *q]
        )
    )

    def mk_dev():
        try:
            os.mknod(W / "nulldev.npy", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        except OSError as e:
            return f"cannot mknod here ({e})"
        return None

    def dev_kept(r):
        st = os.lstat(W / "nulldev.npy")
        return None if stat.S_ISCHR(st.st_mode) else "the character device was replaced by a file"

    add(
        Case(
            "S04",
            "score: --out is a character device (/dev/null's twin made with mknod)",
            ["score", "exp", "good.npy", "--out", "nulldev.npy", *q],
            expect=(0, 2),
            prepare=mk_dev,
            check=dev_kept,
        )
    )

    def no_parent(r):
        if r.returncode == 0:
            return same_scores(w("nodir/deeper/o5.npy"))(r)
        return "the missing folder was created" if (W / "nodir").exists() else None

    add(
        Case(
            "S05",
            "score: --out into a folder that does not exist",
            ["score", "exp", "good.npy", "--out", "nodir/deeper/o5.npy", *q],
            expect=(0, 2),
            writes=["nodir"],
            check=no_parent,
        )
    )

    def mk_ro():
        d = W / "rodir"
        d.mkdir()
        d.chmod(0o555)
        if root_can_write_readonly(d):
            return "running as root: a read-only folder does not stop writes"
        return None

    add(
        Case(
            "S06",
            "score: --out into a read-only folder",
            ["score", "exp", "good.npy", "--out", "rodir/o6.npy", *q],
            prepare=mk_ro,
        )
    )
    add(
        Case(
            "S07",
            "score: --out path with spaces and unicode (folder and file)",
            ["score", "exp", "good.npy", "--out", "sp ace ü€/scöres 1.npy", *q],
            expect=(0,),
            prepare=lambda: (W / "sp ace ü€").mkdir() and None,
            writes=["sp ace ü€/scöres 1.npy"],
            check=same_scores(w("sp ace ü€/scöres 1.npy")),
        )
    )

    def mk_unreadable():
        p = Path(write("secret.csv", "x,y\n1,2\n"))
        p.chmod(0)
        try:
            p.read_bytes()
            return "running as root: chmod 000 does not stop reads"
        except PermissionError:
            return None

    add(
        Case(
            "S08",
            "score: data is chmod 000",
            ["score", "exp", "secret.csv", "--out", "o8.npy", *q],
            prepare=mk_unreadable,
        )
    )

    # ---- score: .npy files
    def npy(rel, arr, **kw):
        return lambda: np.save(W / rel, arr, **kw) and None

    add(
        Case(
            "N01",
            "score: .npy holding a 3-D array [3,2,1]",
            ["score", "exp", "a3d.npy", "--out", "n1.npy", *q],
            prepare=npy("a3d.npy", ROWS[:, :, None]),
        )
    )
    add(
        Case(
            "N02",
            "score: .npy of shape [5, 0] (0 columns)",
            ["score", "exp", "a50.npy", "--out", "n2.npy", *q],
            prepare=npy("a50.npy", np.zeros((5, 0), np.float32)),
        )
    )

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {W / 'PWNED'}",))

    def mk_pickle():
        arr = np.empty((2, 2), dtype=object)
        arr[:] = Payload()
        with open(W / "evil.npy", "wb") as f:
            np.lib.format.write_array(f, arr, allow_pickle=True)

    add(
        Case(
            "N03",
            "score: object .npy whose pickle runs a shell command (must never run)",
            ["score", "exp", "evil.npy", "--out", "n3.npy", *q],
            prepare=mk_pickle,
            check=lambda r: "the pickle payload RAN" if (W / "PWNED").exists() else None,
        )
    )

    def mk_bighdr():
        hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), " + " " * 200_000 + "}"
        hdr += " " * (-(len(hdr) + 13) % 64) + "\n"
        data = b"\x93NUMPY\x02\x00" + len(hdr).to_bytes(4, "little") + hdr.encode() + ROWS.tobytes()
        write("bighdr.npy", data)

    add(
        Case(
            "N04",
            "score: .npy (v2) with a 200 kB header",
            ["score", "exp", "bighdr.npy", "--out", "n4.npy", *q],
            prepare=mk_bighdr,
        )
    )

    def mk_liar():
        hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (4000000000000, 2), }"
        hdr += " " * (-(len(hdr) + 11) % 64) + "\n"
        write(
            "liar.npy",
            b"\x93NUMPY\x01\x00" + len(hdr).to_bytes(2, "little") + hdr.encode() + ROWS.tobytes(),
        )

    add(
        Case(
            "N05",
            "score: .npy whose header claims 4e12 rows (24 bytes of data)",
            ["score", "exp", "liar.npy", "--out", "n5.npy", *q],
            prepare=mk_liar,
        )
    )
    add(
        Case(
            "N06",
            "score: Fortran-ordered .npy (must give the same numbers)",
            ["score", "exp", "fort.npy", "--out", "n6.npy", *q],
            expect=(0,),
            prepare=npy("fort.npy", np.asfortranarray(ROWS)),
            writes=["n6.npy"],
            check=same_scores(w("n6.npy")),
        )
    )
    add(
        Case(
            "N07",
            "score: structured-dtype .npy (x, y fields)",
            ["score", "exp", "rec.npy", "--out", "n7.npy", *q],
            prepare=npy("rec.npy", np.zeros(3, dtype=[("x", "<f4"), ("y", "<f4")])),
        )
    )
    add(
        Case(
            "N08",
            "score: complex64 .npy",
            ["score", "exp", "cplx.npy", "--out", "n8.npy", *q],
            prepare=npy("cplx.npy", ROWS.astype(np.complex64)),
        )
    )
    add(
        Case(
            "N09",
            "score: a non-contiguous strided view saved as [3,2] float32 from a [3,4] (same "
            "numbers)",
            ["score", "exp", "strided.npy", "--out", "n9.npy", *q],
            expect=(0,),
            prepare=npy("strided.npy", np.repeat(ROWS, 2, axis=1)[:, ::2]),
            writes=["n9.npy"],
            check=same_scores(w("n9.npy")),
        )
    )

    # ---- score: CSV dialects
    def csv(rel, text, enc="utf-8"):
        return lambda: write(rel, text.encode(enc)) and None

    rows_txt = [(f"{a!r}", f"{b!r}") for a, b in ROWS.tolist()]
    add(
        Case(
            "C01",
            'score: CSV with every number quoted ("0.5","-1.0")',
            ["score", "exp", "quoted.csv", "--out", "c1.npy", *q],
            expect=(0, 2),
            prepare=csv("quoted.csv", "x,y\n" + "".join(f'"{a}","{b}"\n' for a, b in rows_txt)),
            writes=["c1.npy"],
            check=same_scores(w("c1.npy")),
        )
    )
    add(
        Case(
            "C02",
            "score: tab-separated file named .csv",
            ["score", "exp", "tabs.csv", "--out", "c2.npy", *q],
            expect=(0, 2),
            prepare=csv("tabs.csv", "x\ty\n" + "".join(f"{a}\t{b}\n" for a, b in rows_txt)),
            writes=["c2.npy"],
            check=same_scores(w("c2.npy")),
        )
    )
    add(
        Case(
            "C03",
            "score: semicolon-separated CSV with decimal commas (0,5;-1,0)",
            ["score", "exp", "semi.csv", "--out", "c3.npy", *q],
            prepare=csv("semi.csv", "x;y\n0,5;-1,0\n1,5;2,0\n-0,25;0,75\n"),
        )
    )
    add(
        Case(
            "C04",
            "score: scientific notation (5e-1, 1.5E0, -2.5e-01)",
            ["score", "exp", "sci.csv", "--out", "c4.npy", *q],
            expect=(0,),
            prepare=csv("sci.csv", "x,y\n5e-1,-1E0\n1.5E0,2e+0\n-2.5e-01,7.5e-1\n"),
            writes=["c4.npy"],
            check=same_scores(w("c4.npy")),
        )
    )
    add(
        Case(
            "C05",
            "score: an `inf` cell with --nonfinite reject (nothing written)",
            ["score", "exp", "inf.csv", "--out", "c5.npy", "--nonfinite", "reject", *q],
            prepare=csv("inf.csv", "x,y\n0.5,-1.0\ninf,2\n-0.25,0.75\n"),
            check=error_names("row", "line"),
        )
    )

    def flagged(r):
        if r.returncode != 0:
            return None
        got = read_scores(w("c6.npy"))
        if got.shape != (3,) or not np.isnan(got[1]):
            return f"row 2 not NaN: {got}"
        if not np.allclose(got[[0, 2]], REF["score"][[0, 2]], rtol=1e-5, atol=1e-5):
            return f"good rows changed: {got}"
        return None

    add(
        Case(
            "C06",
            "score: `-Infinity` cell with --nonfinite flag: row 2 NaN, others exact",
            ["score", "exp", "inf2.csv", "--out", "c6.npy", "--nonfinite", "flag", *q],
            expect=(0,),
            prepare=csv("inf2.csv", "x,y\n0.5,-1.0\n-Infinity,2\n-0.25,0.75\n"),
            writes=["c6.npy"],
            check=flagged,
        )
    )
    add(
        Case(
            "C07",
            "score: one line of 200,000 cells",
            ["score", "exp", "wide.csv", "--out", "c7.npy", *q],
            prepare=csv("wide.csv", "x,y\n" + ",".join(["1"] * 200_000) + "\n"),
            check=error_names("200000", "200,000", "width", "column", "cells"),
        )
    )
    add(
        Case(
            "C08",
            "score: Windows line endings (CRLF) everywhere",
            ["score", "exp", "crlf.csv", "--out", "c8.npy", *q],
            expect=(0, 2),
            prepare=csv("crlf.csv", "x,y\r\n" + "".join(f"{a},{b}\r\n" for a, b in rows_txt)),
            writes=["c8.npy"],
            check=same_scores(w("c8.npy")),
        )
    )
    add(
        Case(
            "C09",
            "score: trailing comma on every row (an empty third cell)",
            ["score", "exp", "trail.csv", "--out", "c9.npy", *q],
            prepare=csv("trail.csv", "x,y\n" + "".join(f"{a},{b},\n" for a, b in rows_txt)),
        )
    )
    add(
        Case(
            "C10",
            "score: an empty cell (`1.5,`)",
            ["score", "exp", "hole.csv", "--out", "c10.npy", *q],
            prepare=csv("hole.csv", "x,y\n0.5,-1.0\n1.5,\n-0.25,0.75\n"),
            check=error_names("row", "line"),
        )
    )
    add(
        Case(
            "C11",
            "score: hexadecimal cell (`0x1`)",
            ["score", "exp", "hex.csv", "--out", "c11.npy", *q],
            prepare=csv("hex.csv", "x,y\n0x1,2\n"),
        )
    )
    add(
        Case(
            "C12",
            "score: explicit plus signs and spaces after commas (`+0.5, -1.0`)",
            ["score", "exp", "plus.csv", "--out", "c12.npy", *q],
            expect=(0, 2),
            prepare=csv(
                "plus.csv",
                "x,y\n" + "".join(f"+{a}, {b}\n".replace("+-", "-") for a, b in rows_txt),
            ),
            writes=["c12.npy"],
            check=same_scores(w("c12.npy")),
        )
    )
    add(
        Case(
            "C13",
            "score: a NUL byte inside a number",
            ["score", "exp", "nul.csv", "--out", "c13.npy", *q],
            prepare=csv("nul.csv", "x,y\n0.5,-1\x00.0\n"),
        )
    )
    add(
        Case(
            "C14",
            "score: CSV with no trailing newline, then scored to .csv (same numbers)",
            ["score", "exp", "nonl.csv", "--out", "c14.csv", *q],
            expect=(0,),
            prepare=csv("nonl.csv", "x,y\n" + "\n".join(f"{a},{b}" for a, b in rows_txt)),
            writes=["c14.csv"],
            check=same_scores(w("c14.csv")),
        )
    )
    add(
        Case(
            "C15",
            "score: a float32 CSV into a float64 export (same numbers as the reference)",
            ["score", "exp64", "good.csv", "--out", "c15.npy", *q],
            expect=(0,),
            writes=["c15.npy"],
            check=same_scores(w("c15.npy"), ref="score64"),
        )
    )
    add(
        Case(
            "C16",
            "score: a float32 .npy into a float64 export (never cast silently: 2, or exact)",
            ["score", "exp64", "good.npy", "--out", "c16.npy", *q],
            expect=(0, 2),
            writes=["c16.npy"],
            check=same_scores(w("c16.npy"), ref="score64"),
        )
    )

    # ---- score: Parquet
    def pq_write(rel, table):
        def f():
            import pyarrow.parquet as pq

            pq.write_table(table, W / rel)

        return f

    def t_nested():
        import pyarrow as pa

        return pa.table(
            {
                "x": pa.array(
                    [[[0.5], [-1.0]], [[1.5], [2.0]]], type=pa.list_(pa.list_(pa.float32()))
                )
            }
        )

    def t_nulls():
        import pyarrow as pa

        return pa.table(
            {
                "x": pa.array([0.5, None, -0.25], type=pa.float32()),
                "y": pa.array([-1.0, 2.0, 0.75], type=pa.float32()),
            }
        )

    def t_empty():
        import pyarrow as pa

        return pa.table(
            {"x": pa.array([], type=pa.float32()), "y": pa.array([], type=pa.float32())}
        )

    def t_cols():
        import pyarrow as pa

        return pa.table({"x": pa.array(ROWS[:, 0]), "y": pa.array(ROWS[:, 1])})

    def t_nullitem():
        import pyarrow as pa

        return pa.table(
            {"x": pa.array([[0.5, -1.0], [1.5, None], [-0.25, 0.75]], type=pa.list_(pa.float32()))}
        )

    add(
        Case(
            "P01",
            "score: Parquet with a list-of-lists column",
            ["score", "exp", "nested.parquet", "--out", "p1.npy", *q],
            prepare=lambda: pq_write("nested.parquet", t_nested())(),
        )
    )
    add(
        Case(
            "P02",
            "score: Parquet numeric columns with a null (--nonfinite reject)",
            ["score", "exp", "nulls.parquet", "--out", "p2.npy", "--nonfinite", "reject", *q],
            prepare=lambda: pq_write("nulls.parquet", t_nulls())(),
            check=error_names("row"),
        )
    )
    add(
        Case(
            "P03",
            "score: Parquet with a schema and 0 rows",
            ["score", "exp", "empty.parquet", "--out", "p3.npy", *q],
            prepare=lambda: pq_write("empty.parquet", t_empty())(),
        )
    )
    add(
        Case(
            "P04",
            "score: Parquet with one float column per feature (same numbers)",
            ["score", "exp", "cols.parquet", "--out", "p4.parquet", *q],
            expect=(0,),
            prepare=lambda: pq_write("cols.parquet", t_cols())(),
            writes=["p4.parquet"],
            check=same_scores(w("p4.parquet")),
        )
    )
    add(
        Case(
            "P05",
            "score: Parquet list column with a null item inside a list (--nonfinite reject)",
            ["score", "exp", "nullitem.parquet", "--out", "p5.npy", "--nonfinite", "reject", *q],
            prepare=lambda: pq_write("nullitem.parquet", t_nullitem())(),
            check=error_names("row"),
        )
    )
    add(
        Case(
            "P06",
            "score: CSV text in a file named .parquet",
            ["score", "exp", "fake.parquet", "--out", "p6.npy", *q],
            prepare=csv("fake.parquet", "x,y\n1,2\n"),
        )
    )

    # ---- score: options
    for i, bs in enumerate(["0", "-1", "1e12", "abc"]):
        add(
            Case(
                f"O0{i + 1}",
                f"score: --batch-size {bs}",
                ["score", "exp", "good.npy", "--out", f"ob{i}.npy", "--batch-size", bs, *q],
            )
        )
    add(
        Case(
            "O05",
            "score: --batch-size 1000000000000 (more than the rows: 0 exact, or 2 bounded)",
            ["score", "exp", "good.npy", "--out", "o5.npy", "--batch-size", "1000000000000", *q],
            expect=(0, 2),
            writes=["o5.npy"],
            check=same_scores(w("o5.npy")),
        )
    )
    add(
        Case(
            "O06",
            "score: --runtime nosuchruntime:cpu",
            ["score", "exp", "good.npy", "--out", "o6.npy", "--runtime", "nosuchruntime:cpu", *q],
            check=error_names("available"),
        )
    )
    add(
        Case(
            "O07",
            "score: --runtime onnxruntime:cuda:7 (a device that does not exist)",
            ["score", "exp", "good.npy", "--out", "o7.npy", "--runtime", "onnxruntime:cuda:7", *q],
        )
    )
    add(
        Case(
            "O08",
            "score: --runtime '' (empty)",
            ["score", "exp", "good.npy", "--out", "o8.npy", "--runtime", "", *q],
        )
    )
    add(
        Case(
            "O09",
            "score: --out with an unknown suffix (.txt)",
            ["score", "exp", "good.npy", "--out", "o9.txt", *q],
        )
    )

    # ---- score: outputs that must not be written
    add(
        Case(
            "O10",
            "score: --out is a golden vector inside the export (golden unchanged)",
            [
                "score",
                "exp",
                "good.npy",
                "--out",
                "exp/golden/density/test_data_set_0/output_0.pb",
                *q,
            ],
        )
    )
    add(
        Case(
            "O11",
            "score: --out is the export's manifest.json",
            ["score", "exp", "good.npy", "--out", "exp/manifest.json", *q],
        )
    )
    add(
        Case(
            "O12",
            "score: --out is an existing directory named x.npy",
            ["score", "exp", "good.npy", "--out", "isdir.npy", *q],
            prepare=lambda: (W / "isdir.npy").mkdir() and None,
        )
    )

    def mk_loop():
        os.symlink("loop.csv", W / "loop.csv")
        os.symlink("loopout.npy", W / "loopout.npy")

    add(
        Case(
            "O13",
            "score: data is a symlink loop",
            ["score", "exp", "loop.csv", "--out", "o13.npy", *q],
            prepare=mk_loop,
        )
    )
    add(
        Case(
            "O14",
            "score: --out is a symlink loop",
            ["score", "exp", "good.npy", "--out", "loopout.npy", *q],
        )
    )

    def mk_exploop():
        os.symlink("exploop", W / "exploop")

    add(
        Case(
            "O15",
            "score: the export folder is a symlink loop",
            ["score", "exploop", "good.npy", "--out", "o15.npy", *q],
            prepare=mk_exploop,
        )
    )
    add(
        Case(
            "O16",
            "score: the export folder is a data file",
            ["score", "good.csv", "good.npy", "--out", "o16.npy", *q],
        )
    )

    def mk_sigint():
        rng = np.random.default_rng(0)
        np.save(W / "big.npy", rng.standard_normal((16_000_000, 2), dtype=np.float32))
        np.save(W / "prev.npy", np.arange(3.0))

    def prev_kept(r):
        if r.returncode == 0:
            return None  # finished before the signal: replaced whole, which is fine
        return None if np.array_equal(np.load(W / "prev.npy"), np.arange(3.0)) else "prev.npy lost"

    add(
        Case(
            "O17",
            "score: Ctrl-C (SIGINT) 4 s in, scoring 16M rows over an existing output "
            "(0 if it finished first)",
            ["score", "exp", "big.npy", "--out", "prev.npy", "--batch-size", "4096", *q],
            expect=(130, 0),
            prepare=mk_sigint,
            run=run_sigint,
            check=prev_kept,
            timeout=90,
            writes=["prev.npy"],
        )
    )

    # ---- manifests and golden vectors
    def mf(name, fn=None, text=None):
        def p():
            copy_export("exp", name)
            edit_manifest(name, fn, text)

        return p

    add(
        Case(
            "M01",
            "verify --golden: manifest.json is a JSON list",
            ["verify", "mlist", "--golden", "--runtime", "onnxruntime:cpu"],
            prepare=mf("mlist", text="[1, 2, 3]"),
            check=error_names("manifest"),
        )
    )
    add(
        Case(
            "M02",
            "verify --golden: manifest.json truncated mid-way",
            ["verify", "mtrunc", "--golden", "--runtime", "onnxruntime:cpu"],
            prepare=lambda: (
                (
                    copy_export("exp", "mtrunc"),
                    edit_manifest("mtrunc", text=(W / "exp/manifest.json").read_text()[:5000]),
                )
                and None
            ),
            check=error_names("manifest"),
        )
    )
    add(
        Case(
            "M03",
            "score: with a 0-byte manifest.json",
            ["score", "mempty", "good.npy", "--out", "m3.npy", *q],
            prepare=mf("mempty", text=""),
            check=error_names("manifest"),
        )
    )

    def abs_case(m):
        src = W / "elsewhere"
        shutil.copytree(W / "exp/golden/forward/test_data_set_0", src)
        m["golden"]["graphs"]["forward"][0] = str(src)

    add(
        Case(
            "M04",
            "verify --golden: a golden case path that is absolute (a valid case outside)",
            ["verify", "mabs", "--golden", "--runtime", "onnxruntime:cpu"],
            prepare=mf("mabs", abs_case),
            check=error_names("manifest"),
        )
    )

    def input_size_lie(m):
        m["input_size"] = 3

    add(
        Case(
            "M05",
            "score: the manifest says input_size 3 for a 2-wide graph (refused, or the "
            "graph's own width used and the numbers right)",
            ["score", "mwidth", "good.npy", "--out", "m5.npy", *q],
            expect=(0, 1, 2),
            writes=["m5.npy"],
            prepare=mf("mwidth", input_size_lie),
            check=same_scores(w("m5.npy")),
        )
    )

    def mk_swap():
        copy_export("exp", "mswap")
        a = W / "mswap/golden/forward/test_data_set_1/output_0.pb"
        b = W / "mswap/golden/inverse/test_data_set_1/output_0.pb"
        da, db = a.read_bytes(), b.read_bytes()
        a.write_bytes(db)
        b.write_bytes(da)
        rehash("mswap", [str(a.relative_to(W / "mswap")), str(b.relative_to(W / "mswap"))])

    add(
        Case(
            "M06",
            "verify --golden: forward's y and inverse's x golden outputs swapped, hashes re-signed",
            ["verify", "mswap", "--golden", "--runtime", "onnxruntime:cpu"],
            expect=(1,),
            prepare=mk_swap,
        )
    )

    def mk_other_golden():
        copy_export("exp", "mother")
        shutil.rmtree(W / "mother/golden")
        shutil.copytree(W / "expB/golden", W / "mother/golden")
        rels = [str(p.relative_to(W / "mother")) for p in (W / "mother/golden").rglob("*.pb")]
        rehash("mother", rels)

    add(
        Case(
            "M07",
            "verify --golden: another model's golden folder, hashes re-signed",
            ["verify", "mother", "--golden", "--runtime", "onnxruntime:cpu"],
            expect=(1,),
            prepare=mk_other_golden,
        )
    )

    def mk_loose():
        copy_export("mswap", "mloose")

        def f(m):
            m["golden"]["tolerances"] = {k: 1e9 for k in m["golden"]["tolerances"]}

        edit_manifest("mloose", f)

    add(
        Case(
            "M08",
            "verify --golden: the swapped goldens of M06 plus manifest tolerances of 1e9 "
            "(the manifest must not loosen the check)",
            ["verify", "mloose", "--golden", "--runtime", "onnxruntime:cpu"],
            expect=(1, 2),
            prepare=mk_loose,
        )
    )

    def tol_neg(m):
        m["golden"]["tolerances"]["forward"] = -1.0

    add(
        Case(
            "M09",
            "inspect: a negative golden tolerance in the manifest",
            ["inspect", "mneg"],
            expect=(0, 2),
            prepare=mf("mneg", tol_neg),
        )
    )

    # ---- verify --golden --graph
    add(
        Case(
            "G01",
            "verify --golden --graph: the export's own forward.onnx (control)",
            [
                "verify",
                "exp",
                "--golden",
                "--graph",
                "exp/forward.onnx",
                "--runtime",
                "onnxruntime:cpu",
            ],
            expect=(0,),
        )
    )
    add(
        Case(
            "G02",
            "verify --golden --graph: a text file named forward.onnx",
            [
                "verify",
                "exp",
                "--golden",
                "--graph",
                "txt/forward.onnx",
                "--runtime",
                "onnxruntime:cpu",
            ],
            prepare=lambda: write("txt/forward.onnx", "not onnx\n") and None,
        )
    )
    add(
        Case(
            "G03",
            "verify --golden --graph: a directory",
            ["verify", "exp", "--golden", "--graph", "emptydir", "--runtime", "onnxruntime:cpu"],
        )
    )
    add(
        Case(
            "G04",
            "verify --golden --graph: another export's forward.onnx (same shapes)",
            [
                "verify",
                "exp",
                "--golden",
                "--graph",
                "expB/forward.onnx",
                "--runtime",
                "onnxruntime:cpu",
            ],
            expect=(1,),
        )
    )
    add(
        Case(
            "G05",
            "verify --golden --graph: another export's density.onnx",
            [
                "verify",
                "exp",
                "--golden",
                "--graph",
                "expB/density.onnx",
                "--runtime",
                "onnxruntime:cpu",
            ],
            expect=(1,),
        )
    )
    add(
        Case(
            "G06",
            "verify --golden --graph: a file that does not exist",
            [
                "verify",
                "exp",
                "--golden",
                "--graph",
                "nothere/forward.onnx",
                "--runtime",
                "onnxruntime:cpu",
            ],
        )
    )
    add(
        Case(
            "G07",
            "verify --golden --graph: /dev/null",
            ["verify", "exp", "--golden", "--graph", "/dev/null", "--runtime", "onnxruntime:cpu"],
        )
    )
    add(
        Case(
            "G08",
            "verify --graph without --golden",
            ["verify", "exp", "--graph", "exp/forward.onnx"],
        )
    )
    add(
        Case(
            "G09",
            "verify --golden: --batch-sizes 0,-3",
            ["verify", "exp", "--golden", "--batch-sizes", "0,-3", "--runtime", "onnxruntime:cpu"],
        )
    )

    # ---- inspect
    add(
        Case(
            "I01",
            "inspect: an empty file named x.onnx",
            ["inspect", "empty.onnx"],
            prepare=lambda: write("empty.onnx", b"") and None,
        )
    )
    add(
        Case(
            "I02",
            "inspect: a FIFO named x.onnx (must not hang)",
            ["inspect", "fifo.onnx"],
            prepare=lambda: os.mkfifo(W / "fifo.onnx"),
            run=run_fifo_with_timeout,
        )
    )
    add(Case("I03", "inspect: an empty folder", ["inspect", "emptydir"]))
    add(Case("I04", "inspect: model.pt (a checkpoint, not ONNX)", ["inspect", "model.pt"]))

    def pipe_ok(r):
        return "BrokenPipe message on stderr" if "BrokenPipe" in r.stderr else None

    add(
        Case(
            "I05",
            "inspect --json | head -c1 (closed pipe)",
            ["inspect", "--json", "exp"],
            expect=(0, 141),
            run=run_pipe,
            check=pipe_ok,
        )
    )
    add(
        Case(
            "I06",
            "verify --golden --json | head -c1 (closed pipe)",
            ["verify", "exp", "--golden", "--json", "--runtime", "onnxruntime:cpu"],
            expect=(0, 141),
            run=run_pipe,
            check=pipe_ok,
        )
    )

    # ---- export
    def mk_trunc():
        data = (W / "model.pt").read_bytes()
        write("trunc.pt", data[: len(data) // 2])

    add(
        Case(
            "E01",
            "export: a checkpoint cut in half",
            ["export", "trunc.pt", "--out", "e1"],
            prepare=mk_trunc,
            check=error_names("trunc.pt"),
        )
    )
    add(
        Case(
            "E02",
            "export: --opset 99 over an existing export (kept)",
            ["export", "model.pt", "--out", "ekeep", "--opset", "99"],
            prepare=lambda: copy_export("exp", "ekeep") and None,
        )
    )
    for i, (opt, val) in enumerate(
        [
            ("--maxiter", "0"),
            ("--atol", "-1"),
            ("--atol", "nan"),
            ("--rtol", "1e400"),
            ("--steps-per-check", "0"),
            ("--spectral-norm", "bogus"),
            ("--exporter", "bogus"),
        ]
    ):
        add(
            Case(
                f"E{i + 3:02d}",
                f"export: {opt} {val}",
                ["export", "model.pt", "--out", f"ebad{i}", opt, val],
            )
        )
    add(
        Case(
            "E10",
            "export: --inverse fixed --input-radius -1",
            ["export", "model.pt", "--out", "e10", "--inverse", "fixed", "--input-radius", "-1"],
        )
    )
    add(
        Case(
            "E11",
            "export: --out is an existing regular file (kept)",
            ["export", "model.pt", "--out", "good.csv"],
        )
    )
    add(
        Case(
            "E12",
            "export: --runtime nosuch:cpu",
            ["export", "model.pt", "--out", "e12", "--runtime", "nosuch:cpu"],
        )
    )

    def mk_holder():
        (W / "holder").mkdir()
        shutil.copy(W / "model.pt", W / "holder/model.pt")
        write("holder/notes.txt", "my notes, not part of any export\n")

    add(
        Case(
            "E13",
            "export: --out is the folder holding the checkpoint and the user's notes",
            ["export", "holder/model.pt", "--out", "holder"],
            expect=(2,),
            prepare=mk_holder,
        )
    )
    add(
        Case(
            "E14",
            "export: a float64 checkpoint with --openvino-ir",
            ["export", "exp64/model.pt", "--out", "e14", "--openvino-ir"],
        )
    )

    # ---- web
    add(Case("W01", "web: --out is an existing file (kept)", ["web", "exp", "--out", "good.npy"]))
    add(
        Case(
            "W02",
            "web: --out is the export folder itself (export kept)",
            ["web", "exp", "--out", "exp"],
        )
    )

    def mk_wholder():
        (W / "wholder").mkdir()
        copy_export("exp", "wholder/exp")

    add(
        Case(
            "W03",
            "web: --out is the folder that holds the export",
            ["web", "wholder/exp", "--out", "wholder"],
            prepare=mk_wholder,
        )
    )
    add(
        Case("W04", "web: an export whose manifest is a JSON list", ["web", "mlist", "--out", "w4"])
    )

    # ---- bench
    add(Case("B01", "bench: --threads 0", ["bench", "exp", "--threads", "0"], timeout=90))
    add(
        Case(
            "B02",
            "bench: --repeats 0",
            ["bench", "exp", "--repeats", "0", "--runtime", "onnxruntime:cpu"],
        )
    )
    add(
        Case(
            "B03",
            "bench: --batch 0",
            ["bench", "exp", "--batch", "0", "--runtime", "onnxruntime:cpu"],
        )
    )
    add(
        Case(
            "B04",
            "bench: --batch abc",
            ["bench", "exp", "--batch", "abc", "--runtime", "onnxruntime:cpu"],
        )
    )
    add(Case("B05", "bench: --runtime nosuch:cpu", ["bench", "exp", "--runtime", "nosuch:cpu"]))
    add(
        Case(
            "B06",
            "bench: --batch 1000000000000",
            ["bench", "exp", "--batch", "1000000000000", "--runtime", "onnxruntime:cpu"],
            timeout=90,
        )
    )

    # ---- batch (refused before Ray, then two real jobs)
    add(
        Case(
            "R01",
            "batch: --threads 0",
            ["batch", "exp", "good.npy", "r1.csv", "--threads", "0", *q],
        )
    )
    add(
        Case(
            "R02",
            "batch: --workers 0",
            ["batch", "exp", "good.npy", "r2.csv", "--workers", "0", *q],
        )
    )
    add(
        Case(
            "R03",
            "batch: --batch-size -1",
            ["batch", "exp", "good.npy", "r3.csv", "--batch-size", "-1", *q],
        )
    )
    add(
        Case(
            "R04",
            "batch: input is a FIFO (must not hang)",
            ["batch", "exp", "pipe.csv", "r4.csv", *q],
            run=run_fifo_with_timeout,
        )
    )
    add(
        Case(
            "R05",
            "batch: output is an existing directory",
            ["batch", "exp", "good.npy", "emptydir", *q],
        )
    )
    add(
        Case(
            "R06",
            "batch: output into a folder that does not exist (2, or 0 and complete)",
            ["batch", "exp", "good.npy", "nodir2/r6.csv", *q],
            expect=(0, 2),
            writes=["nodir2"],
            timeout=180,
        )
    )
    add(Case("R07", "batch: a 3-D .npy input", ["batch", "exp", "a3d.npy", "r7.csv", *q]))
    add(
        Case(
            "R08",
            "batch: --runtime onnxruntime:cuda:7",
            ["batch", "exp", "good.npy", "r8.csv", "--runtime", "onnxruntime:cuda:7", *q],
        )
    )
    add(
        Case(
            "R09",
            "batch: an export whose manifest.json is truncated",
            ["batch", "mtrunc", "good.npy", "r9.csv", *q],
        )
    )

    def batch_ok(r):
        if r.returncode != 0:
            return None
        got = read_scores(w("rü n/out put.csv"))
        return None if np.allclose(got, REF["score"], rtol=1e-5, atol=1e-5) else f"wrong {got}"

    add(
        Case(
            "R10",
            "batch --graph density to a .csv path with spaces and unicode (same numbers)",
            ["batch", "exp", "good.npy", "rü n/out put.csv", "--graph", "density", *q],
            expect=(0,),
            prepare=lambda: (W / "rü n").mkdir() and None,
            writes=["rü n/out put.csv"],
            check=batch_ok,
            timeout=180,
        )
    )

    def mk_prev_batch():
        write("prevb.csv", "id,y_0,y_1\n0,1,2\n")

    add(
        Case(
            "R11",
            "batch --overwrite: an `nan` row (rejected), the previous output kept",
            ["batch", "exp", "nanrow.csv", "prevb.csv", "--overwrite", *q],
            prepare=lambda: (mk_prev_batch(), write("nanrow.csv", "x,y\n1,2\nnan,3\n")) and None,
            timeout=180,
            check=error_names("row", "line"),
        )
    )

    # ---- train
    add(Case("T01", "train: --epochs 0", ["train", "good.csv", "--out", "t1", "--epochs", "0"]))
    add(
        Case(
            "T02",
            "train: --batch-size 0",
            ["train", "good.csv", "--out", "t2", "--batch-size", "0"],
        )
    )
    add(
        Case(
            "T03",
            "train: --lr -1",
            ["train", "good.csv", "--out", "t3", "--lr", "-1", "--epochs", "1"],
        )
    )
    add(
        Case(
            "T04",
            "train: --hp file holding a JSON list",
            ["train", "good.csv", "--out", "t4", "--hp", "hplist.json"],
            prepare=lambda: write("hplist.json", "[1,2]") and None,
        )
    )
    add(
        Case(
            "T05",
            "train: --hp file that is invalid TOML",
            ["train", "good.csv", "--out", "t5", "--hp", "bad.toml"],
            prepare=lambda: write("bad.toml", "nblocks = = 3\n") and None,
        )
    )
    add(
        Case(
            "T06",
            "train: the data is a checkpoint (model.pt)",
            ["train", "model.pt", "--out", "t6"],
        )
    )
    add(
        Case(
            "T07",
            "train: --out is an existing export folder (export kept)",
            ["train", "good.csv", "--out", "expT", "--epochs", "1"],
            expect=(2,),
            prepare=lambda: copy_export("exp", "expT") and None,
        )
    )
    add(
        Case(
            "T08",
            "train: --nblocks 1000000000",
            ["train", "good.csv", "--out", "t8", "--nblocks", "1000000000", "--epochs", "1"],
        )
    )

    # ---- Python API, in a child interpreter: a typed error (UsageError etc.), never a builtin
    def api(cid, what, src, expect_type="IresnetOnnxError", writes=()):
        code = (
            "import sys, iresnet_onnx, iresnet_onnx.errors as E\n"
            "try:\n"
            + "".join(f"    {line}\n" for line in src.splitlines())
            + "except E.IresnetOnnxError as e:\n"
            "    print(type(e).__name__, str(e).splitlines()[0][:200], file=sys.stderr); sys.exit(2)\n"
            "print('no error', file=sys.stderr); sys.exit(0)\n"
        )
        add(Case(cid, what, api=code, expect=(2,), writes=list(writes), one_line=True))

    api(
        "A01",
        "score_file(batch_size=2.5)",
        "iresnet_onnx.score_file('exp', 'good.npy', 'a1.npy', batch_size=2.5, progress=False)",
    )
    api(
        "A02",
        "score_file(nonfinite='bogus')",
        "iresnet_onnx.score_file('exp', 'good.npy', 'a2.npy', nonfinite='bogus', progress=False)",
    )
    api(
        "A03",
        "export(runtimes=['nosuch:cpu']) leaves no folder",
        "import torch\nm = iresnet_onnx.iResNet(2, nblocks=2)\n"
        "iresnet_onnx.export(m, 'a3', runtimes=['nosuch:cpu'])",
    )
    api(
        "A04",
        "load_checkpoint(a manifest.json)",
        "iresnet_onnx.load_checkpoint('exp/manifest.json')",
    )
    api(
        "A05",
        "iResNet(2, nblocks=2) on a float16 batch",
        "import torch\nm = iresnet_onnx.iResNet(2, nblocks=2)\nm(torch.zeros(3, 2, dtype=torch.float16))",
    )
    api(
        "A06",
        "runtimes.load(threads=0)",
        "from iresnet_onnx import runtimes\nruntimes.load('exp/forward.onnx', 'onnxruntime:cpu', "
        "threads=0)",
    )
    api(
        "A07",
        "a Session fed a [3,2,1] array",
        "import numpy as np\nfrom iresnet_onnx import runtimes\n"
        "s = runtimes.load('exp/forward.onnx', 'onnxruntime:cpu')\n"
        "s.run(np.zeros((3, 2, 1), np.float32)) if hasattr(s, 'run') else s(np.zeros((3, 2, 1), np.float32))",
    )
    api("A08", "iResNet(float('nan'))", "iresnet_onnx.iResNet(float('nan'), nblocks=2)")
    api(
        "A09",
        "score_file(out=the data file, by a relative path with ./)",
        "iresnet_onnx.score_file('exp', 'good.npy', './good.npy', progress=False)",
    )
    # the 2-core budget (under 6 minutes a run): these were written, then left out of the run
    drop = {
        "N07",
        "N08",
        "C09",
        "C10",
        "C11",
        "C12",
        "C13",
        "C14",
        "C16",
        "P06",
        "O02",
        "O05",
        "O08",
        "O11",
        "O12",
        "O16",
        "M03",
        "M09",
        "G06",
        "G07",
        "G08",
        "G09",
        "I06",
        "E06",
        "E07",
        "E08",
        "E09",
        "E10",
        "E11",
        "E12",
        "W04",
        "B02",
        "B03",
        "B04",
        "R02",
        "R03",
        "R05",
        "R06",
        "R08",
        "R09",
        "T02",
        "T05",
        "T06",
        "T08",
        "A02",
        "A04",
        "A05",
        "A07",
        "A08",
    }
    return [c for c in C if c.id not in drop]


# ----------------------------------------------------------------------------------------------
# running and judging


def stderr_ok(r: subprocess.CompletedProcess, case: Case) -> str | None:
    err = r.stderr
    if "Traceback" in err:
        return "Traceback on stderr"
    if r.returncode in (0, 1, 130, 141):
        return None
    lines = [
        ln
        for ln in err.replace("\r", "\n").splitlines()
        if ln.strip() and "%|" not in ln and not ln.startswith("starting Ray")
    ]
    if lines and lines[0].startswith("usage:"):
        errs = [ln for ln in lines if ": error:" in ln]
        return None if len(errs) == 1 else f"argparse output without one error line: {lines[-1]}"
    if case.api:
        return None if len(lines) == 1 else f"{len(lines)} lines"
    if len(lines) != 1:
        return f"{len(lines)} stderr lines, not one"
    if "error" not in lines[0]:
        return f"the line is not an error: {lines[0][:80]}"
    return None


def run_case(case: Case) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": case.id,
        "case": case.what,
        "command": (
            "python -c <api>"
            if case.api
            else "iresnet-onnx " + " ".join(a if a and " " not in a else repr(a) for a in case.argv)
        ),
        "expected": "/".join(map(str, case.expect)),
    }
    if case.prepare:
        try:
            skip = case.prepare()
        except Exception as e:  # a prepare step that fails is a harness problem: say so
            skip = f"prepare failed: {type(e).__name__}: {e}"
        if skip:
            row.update(got="—", clean=None, note="skipped: " + skip)
            return row
    before = snapshot(W)
    t0 = time.perf_counter()
    if case.api:
        r = sh([PY, "-c", case.api], case.timeout)
    elif case.run:
        r = case.run(case)
    else:
        r = sh(CLI + case.argv, case.timeout)
    row["seconds"] = round(time.perf_counter() - t0, 1)
    after = snapshot(W)
    notes = []
    if r.returncode not in case.expect:
        notes.append(f"exit {r.returncode}, expected {row['expected']}")
    m = stderr_ok(r, case)
    if m:
        notes.append(m)
    allowed = list(case.writes)
    if r.returncode != 0:
        allowed = [a for a in allowed if False]  # a failure may write nothing at all
    # torch's own compile cache (TMPDIR/torchinductor_USER), made by any torch program, is not the
    # tool's temporary file
    problems = [
        x for x in diff(before, after, allowed) if not x.startswith("left tmp/torchinductor_")
    ]
    if problems:
        notes.append("; ".join(problems[:4]) + (" …" if len(problems) > 4 else ""))
    if case.check:
        try:
            m = case.check(r)
        except Exception as e:
            m = f"check failed: {type(e).__name__}: {e}"
        if m:
            notes.append(m)
    last = [ln for ln in r.stderr.replace("\r", "\n").splitlines() if ln.strip() and "%|" not in ln]
    row.update(
        got=str(r.returncode),
        clean=not notes,
        note="; ".join(notes),
        stderr=(last[-1][:240] if last else ""),
    )
    # undo what a good run wrote, so that later snapshots compare like with like
    return row


def md_escape(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def main() -> int:
    t0 = time.perf_counter()
    os.umask(0o022)
    print(f"work folder: {W}", file=sys.stderr)
    setup()
    rows = []
    only = set(filter(None, os.environ.get("HOSTILE_ONLY", "").split(",")))  # debugging a few
    for case in cases():
        if only and case.id not in only:
            continue
        row = run_case(case)
        rows.append(row)
        mark = {True: "clean", False: "NOT CLEAN", None: "skipped"}[row["clean"]]
        print(
            f"{row['id']:4} {mark:9} exit {row['got']:>4} (expected {row['expected']}) "
            f"{row.get('seconds', '')}s {row['case']}  {row.get('note', '')}",
            file=sys.stderr,
        )
    tried = [r for r in rows if r["clean"] is not None]
    clean = sum(1 for r in tried if r["clean"])
    skipped = len(rows) - len(tried)
    total_s = round(time.perf_counter() - t0, 1)
    lines = [
        "# Hostile run (issue 22): new cases",
        "",
        f"`{Path(PY).relative_to(ROOT) if ROOT in Path(PY).parents else PY} scripts/hostile.py`: "
        f"{len(rows)} cases, {len(tried)} tried, **{clean} of {len(tried)} clean**, "
        f"{skipped} skipped (cannot be tried here), {total_s} s.",
        "",
        "Clean: the expected exit code; no traceback and a one-line error on failure; nothing "
        "written, left behind (TMPDIR included) or changed outside what the case may write (a "
        "failure may write nothing); and the case's own check (same numbers as a reference run, "
        "pickle never run, device node kept, previous output kept). Exit -999 means the harness "
        "killed the command at its time limit (a hang).",
        "",
        "| id | case | command | expected | got | clean | note / last stderr line |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mark = {True: "yes", False: "**no**", None: "skipped"}[r["clean"]]
        note = r.get("note") or r.get("stderr", "")
        lines.append(
            f"| {r['id']} | {md_escape(r['case'])} | `{md_escape(r['command'])}` | "
            f"{r['expected']} | {r['got']} | {mark} | {md_escape(note)} |"
        )
    lines += ["", f"**Clean outcomes: {clean} of {len(tried)}** ({skipped} skipped)."]
    text = "\n".join(lines) + "\n"
    print(text)
    out = ROOT / "results"
    if only:
        shutil.rmtree(W, ignore_errors=True)
        return 0
    out.mkdir(exist_ok=True)
    (out / "hostile.md").write_text(text)
    (out / "hostile.json").write_text(
        json.dumps(
            {
                "cases": len(rows),
                "tried": len(tried),
                "clean": clean,
                "skipped": skipped,
                "seconds": total_s,
                "python": PY,
                "rows": rows,
            },
            indent=2,
            ensure_ascii=False,
        )
        + "\n"
    )
    # the work folder: make everything removable (chmod'ed files and folders), then remove it
    for p in W.rglob("*"):
        try:
            if not p.is_symlink():
                p.chmod(0o755 if p.is_dir() else 0o644)
        except OSError:
            pass
    shutil.rmtree(W, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
