"""batch on Ray Data: bit for bit equal to in-process sessions, row order and ids kept, bad input
refused before Ray starts, bad rows found by the workers named in one line, non-finite rows
rejected or flagged, an actor killed mid-job, an interrupted or failed job that leaves nothing
behind (issue 22 where it concerns batch).

One local Ray of 2 CPUs serves the whole module (starting Ray costs 5–10 s here); the argument
tests come first and check that Ray was never needed for them. Each job on Ray costs 5–15 s here
(its actors start), so the default run keeps four jobs and the rest are marked slow (`make test`
runs them).
"""

import errno
import glob
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the [ray] extra is not installed")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from iresnet_onnx import runtimes as rt  # noqa: E402
from iresnet_onnx._manifest import sha256  # noqa: E402
from iresnet_onnx.cli import main  # noqa: E402
from iresnet_onnx.errors import DataError, OutputError, VerificationError  # noqa: E402
from iresnet_onnx.jobs import _sinks  # noqa: E402
from iresnet_onnx.jobs._batch import run_batch  # noqa: E402
from iresnet_onnx.jobs._cluster import plan_workers  # noqa: E402
from tests.conftest import make_model  # noqa: E402

WIDTH = 6


@pytest.fixture(scope="module")
def export_dir(exported):
    return exported("batch", make_model(WIDTH, 2, activation="Tanh")).out_dir


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray of 2 CPUs for this module; run_batch joins it instead of starting its own.
    Its session files go to a folder of its own (a socket path must stay under 108 bytes)."""
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    folder = tempfile.mkdtemp(prefix="iresnet-test-ray-", dir="/tmp")
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR,
             log_to_driver=False, _temp_dir=folder)  # fmt: skip
    yield
    ray.shutdown()
    shutil.rmtree(folder, ignore_errors=True)


def data(rows: int, seed: int = 0, width: int = WIDTH) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, width)).astype(np.float32)


def in_process(export_dir, graph: str, rows: np.ndarray, batch_size: int) -> np.ndarray:
    """The reference: one session in this process, run on the same batches Ray makes (its main
    output as it is: NaN or Inf included, without the session's warning about it)."""
    session = rt.load(export_dir / f"{graph}.onnx", "onnxruntime:cpu", threads=1)
    main = session.graph.main
    return np.concatenate([session.run_all(rows[start : start + batch_size])[main]
                           for start in range(0, len(rows), batch_size)])  # fmt: skip


def vectors(table, name: str) -> np.ndarray:
    return np.stack(table[name].to_numpy(zero_copy_only=False))


# --- refused before Ray starts ----------------------------------------------------------------


def worker_folders() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "iresnet-onnx-batch-*")))


def left_behind(before: set[str]) -> set[str]:
    """The workers' temporary folders made since ``before`` that stay (up to 20 s): an actor
    that Ray restarts after a failed job holds one for a moment as it starts."""
    for _ in range(200):
        new = worker_folders() - before
        if not new:
            break
        time.sleep(0.1)
    return new


def test_bad_arguments_are_refused_before_ray_starts(export_dir, tmp_path):
    np.save(tmp_path / "x.npy", data(10))
    np.save(tmp_path / "wide.npy", data(10, width=WIDTH + 1))
    (tmp_path / "taken.npy").write_bytes(b"a previous result")
    cases = {
        "wide.npy/out.npy": "rows have 7 values, the graph expects 6",
        "x.npy/taken.npy": "exists: pass --overwrite",
        "x.npy/out.txt": "expected a .npy, .csv, .parquet file",
        "missing.npy/out.npy": "no such file",
    }
    for paths, message in cases.items():
        source, out = paths.split("/")
        with pytest.raises(ValueError, match=message):
            run_batch(export_dir, tmp_path / source, tmp_path / out, progress=False)
    with pytest.raises(ValueError, match="graph 'backward'"):
        run_batch(export_dir, tmp_path / "x.npy", tmp_path / "o.npy", graph="backward")
    # the local Ray this job would start has this machine's CPUs: too many threads are refused now
    with pytest.raises(ValueError, match=f"need {2 * (os.cpu_count() or 1)} CPUs"):
        run_batch(export_dir, tmp_path / "x.npy", tmp_path / "o.npy", workers=2,
                  threads=os.cpu_count())  # fmt: skip
    assert not ray.is_initialized()
    assert (tmp_path / "taken.npy").read_bytes() == b"a previous result"


def test_bad_input_and_outputs_are_refused_before_ray_starts(export_dir, tmp_path, monkeypatch):
    """issue 22, items 1, 4, 6, 7, 8, 15: what the driver can know is known before Ray starts
    (and an address where no Ray answers is said at once, not after minutes of retries)."""
    np.save(tmp_path / "x.npy", data(100))
    (tmp_path / "link.npy").symlink_to(tmp_path / "x.npy")
    (tmp_path / "empty.npy").write_bytes(b"")
    (tmp_path / "ragged.csv").write_text("# sensors\n1,2,3,4,5,6\n\n1,2,3\n")
    (tmp_path / "latin1.csv").write_bytes(b"1,2,3,4,5,6\n\xe9,2,3,4,5,6\n")
    strings = pa.array([[str(v) for v in row] for row in data(3).tolist()])
    pq.write_table(pa.table({"x": strings}), tmp_path / "strings.parquet")
    pq.write_table(pa.table({"id": ["a", "b"], "x": pa.array(data(2).tolist())}),
                   tmp_path / "ids.parquet")  # fmt: skip
    before = {path.name: sha256(path) for path in tmp_path.iterdir() if path.is_file()}
    cases = [
        ("x.npy", "x.npy", {}, OutputError, "is the same file as the input"),
        ("x.npy", "link.npy", {}, OutputError, "is the same file as the input"),
        ("empty.npy", "o.npy", {}, DataError, "the file is empty"),
        ("ragged.csv", "o.npy", {}, DataError, r"row 1 \(line 4\) has 3 cells"),
        ("latin1.csv", "o.npy", {}, DataError, "line 2 is not UTF-8 text"),
        ("strings.parquet", "o.npy", {}, DataError, "holds lists of string, not of numbers"),
        ("ids.parquet", "o.npy", {}, DataError, "'id' column holds string, not integers"),
        ("x.npy", "o.npy", {"runtime": "tract:cpu"}, ValueError, "tract cannot run"),
        ("x.npy", "o.npy", {"address": "127.0.0.1:1"}, ValueError, "no Ray cluster answers"),
    ]
    folders = worker_folders()
    for source, out, options, error, message in cases:
        with pytest.raises(error, match=message):
            run_batch(export_dir, tmp_path / source, tmp_path / out, overwrite=True,
                      progress=False, **options)  # fmt: skip
    Usage = type(shutil.disk_usage(tmp_path))
    monkeypatch.setattr(_sinks.shutil, "disk_usage", lambda path: Usage(10**9, 10**9, 1000))
    with pytest.raises(OutputError, match="no space left on the device"):
        run_batch(export_dir, tmp_path / "x.npy", tmp_path / "o.npy", progress=False)
    assert not ray.is_initialized()
    assert {path.name: sha256(path) for path in tmp_path.iterdir() if path.is_file()} == before
    assert left_behind(folders) == set()


def test_a_changed_graph_is_refused(export_dir, tmp_path, capsys):
    copy = tmp_path / "export"
    shutil.copytree(export_dir, copy)
    shutil.copy(copy / "inverse.onnx", copy / "forward.onnx")
    np.save(tmp_path / "x.npy", data(10))
    with pytest.raises(VerificationError, match="forward.onnx changed since export"):
        run_batch(copy, tmp_path / "x.npy", tmp_path / "o.npy")
    assert main(["batch", str(copy), str(tmp_path / "x.npy"), str(tmp_path / "o.npy")]) == 1
    assert "changed since export" in capsys.readouterr().err
    assert not ray.is_initialized() and not (tmp_path / "o.npy").exists()


def test_threads_times_workers_never_exceed_the_cpus():
    assert plan_workers(2.0, 1, None, reads=False) == (2, 2.0)
    assert plan_workers(2.0, 2, None, reads=False) == (1, 1.0)
    # Ray's read tasks need a whole CPU: the actors leave one free
    assert plan_workers(2.0, 2, None, reads=True) == (1, 0.5)
    assert plan_workers(8.0, 2, None, reads=True) == (4, 3)
    with pytest.raises(ValueError, match="3 workers × 1 threads need 3 CPUs; Ray has 2"):
        plan_workers(2.0, 3, None, reads=False)


def test_without_ray_the_command_names_the_extra(monkeypatch, tmp_path, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a)
    )
    code = main(["batch", str(tmp_path), "in.npy", "out.npy"])
    assert code == 2
    assert "pip install 'iresnet-onnx[ray]'" in capsys.readouterr().err


# --- on a local Ray ---------------------------------------------------------------------------


@pytest.mark.slow  # starts Ray: seconds per job
def test_npy_forward_on_two_workers_equals_one_session_bit_for_bit(local_ray, export_dir, tmp_path):
    rows = data(20_000)
    np.save(tmp_path / "x.npy", rows)
    summary = run_batch(export_dir, tmp_path / "x.npy", tmp_path / "y.npy", workers=2,
                        batch_size=1024, progress=False)  # fmt: skip
    assert summary.rows == 20_000 and sum(w.rows for w in summary.workers.values()) == 20_000
    expected = in_process(export_dir, "forward", rows, 1024)
    assert np.array_equal(np.load(tmp_path / "y.npy"), expected)


@pytest.mark.slow
def test_parquet_inverse_keeps_the_ids_in_input_order(local_ray, export_dir, tmp_path):
    rows = data(5000, seed=1)
    ids = np.random.default_rng(2).choice(10**9, 5000, replace=False).astype(np.int64)
    column = pa.FixedSizeListArray.from_arrays(pa.array(rows.reshape(-1)), WIDTH)
    pq.write_table(pa.table({"id": ids, "y": column}), tmp_path / "y.parquet")
    summary = run_batch(export_dir, tmp_path / "y.parquet", tmp_path / "x.parquet",
                        graph="inverse", workers=2, batch_size=512, progress=False)  # fmt: skip
    table = pq.read_table(tmp_path / "x.parquet")
    assert table.column_names == ["id", "x", "converged"]
    assert np.array_equal(table["id"].to_numpy(), ids)
    assert np.array_equal(vectors(table, "x"), in_process(export_dir, "inverse", rows, 512))
    assert table["converged"].to_numpy().all() and summary.not_converged == 0


@pytest.mark.slow
def test_csv_without_header_density(local_ray, export_dir, tmp_path):
    rows = data(3000, seed=3)
    np.savetxt(tmp_path / "x.csv", rows, delimiter=",", fmt="%.9g")
    run_batch(export_dir, tmp_path / "x.csv", tmp_path / "p.npy", graph="density",
              batch_size=700, progress=False)  # fmt: skip
    parsed = np.loadtxt(tmp_path / "x.csv", delimiter=",", dtype=np.float32)
    assert np.array_equal(
        np.load(tmp_path / "p.npy"), in_process(export_dir, "density", parsed, 700)
    )


@pytest.mark.slow  # starts Ray: seconds per job
def test_nonfinite_rows_reject_or_flag(local_ray, export_dir, tmp_path):
    rows = data(3000, seed=4)
    rows[[17, 2500], 3] = [np.nan, np.inf]
    np.save(tmp_path / "x.npy", rows)
    out = tmp_path / "y.parquet"
    out.write_bytes(b"the previous good output")
    with pytest.raises(DataError, match="row 17 holds NaN or Inf"):
        run_batch(export_dir, tmp_path / "x.npy", out, overwrite=True, batch_size=500,
                  progress=False)  # fmt: skip
    assert out.read_bytes() == b"the previous good output"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy", "y.parquet"]

    summary = run_batch(export_dir, tmp_path / "x.npy", out, overwrite=True, batch_size=500,
                        nonfinite="flag", progress=False)  # fmt: skip
    table = pq.read_table(out)
    valid = table["valid"].to_numpy()
    assert summary.nonfinite == 2 and np.flatnonzero(~valid).tolist() == [17, 2500]
    got = vectors(table, "y")
    assert np.isnan(got[~valid]).all()
    session = rt.load(export_dir / "forward.onnx", threads=1)
    np.testing.assert_array_equal(got[valid], session.run(rows[valid]))


@pytest.mark.slow
def test_rows_that_miss_the_tolerance_are_counted(local_ray, exported, tmp_path):
    model = make_model(WIDTH, 2, activation="Tanh")
    # one row at a time, block 2 takes 9 to 14 steps to reach atol on these rows: 12 is too few for some
    folder = exported("batch-maxiter12", model, maxiter=12, steps_per_check=1).out_dir
    rows = data(200, seed=5)
    np.save(tmp_path / "y.npy", rows)
    summary = run_batch(folder, tmp_path / "y.npy", tmp_path / "x.parquet", graph="inverse",
                        batch_size=64, progress=False)  # fmt: skip
    session = rt.load(folder / "inverse.onnx")
    atol = session.info.atol
    missed = [not (session.run_all(row[None])["residual"] <= atol).all() for row in rows]
    assert 0 < sum(missed) < len(rows)
    assert summary.not_converged == sum(missed)
    converged = pq.read_table(tmp_path / "x.parquet")["converged"].to_numpy()
    assert np.array_equal(~converged, np.array(missed))


@pytest.mark.slow
def test_an_actor_killed_mid_job_loses_and_repeats_no_row(local_ray, export_dir, tmp_path):
    rows = data(100_000, seed=6)
    np.save(tmp_path / "x.npy", rows)
    killed = {}

    def kill_the_first_worker(progress):
        if not killed:
            killed["pid"], killed["at"] = progress.worker_pid, progress.rows_done
            os.kill(progress.worker_pid, signal.SIGKILL)

    summary = run_batch(export_dir, tmp_path / "x.npy", tmp_path / "y.parquet", workers=2,
                        batch_size=256, progress=False, on_batch=kill_the_first_worker)  # fmt: skip
    assert killed["at"] < 100_000 / 4  # the kill came early: most rows were still to run
    assert len(summary.workers) >= 3  # the killed actor was replaced by a new process
    table = pq.read_table(tmp_path / "y.parquet")
    assert np.array_equal(table["id"].to_numpy(), np.arange(100_000))
    assert np.array_equal(vectors(table, "y"), in_process(export_dir, "forward", rows, 256))


@pytest.mark.slow
def test_an_interrupted_job_leaves_nothing(local_ray, export_dir, tmp_path):
    np.save(tmp_path / "x.npy", data(50_000, seed=7))

    def interrupt(progress):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(export_dir, tmp_path / "x.npy", tmp_path / "y.npy", batch_size=1024,
                  progress=False, on_batch=interrupt)  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy"]


@pytest.mark.slow  # starts Ray: seconds per job
def test_the_command_prints_its_summary(local_ray, export_dir, tmp_path, capsys):
    np.save(tmp_path / "x.npy", data(4000, seed=8))
    out = tmp_path / "y.npy"
    args = ["batch", str(export_dir), str(tmp_path / "x.npy"), str(out), "--graph", "inverse",
            "--workers", "2", "--batch-size", "1000", "--quiet"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "inverse: 4,000 rows on onnxruntime:cpu" in printed
    assert "rows that did not converge: 0" in printed and printed.count("worker pid") >= 1
    before = sha256(out)
    assert main(args) == 2  # exists, no --overwrite
    assert "exists: pass --overwrite" in capsys.readouterr().err and sha256(out) == before


# --- issue 22 on Ray: what only the workers see, and what is left afterwards -------------------


@pytest.mark.slow
def test_a_csv_with_a_bom_comments_and_ids_runs_on_ray(local_ray, export_dir, tmp_path):
    rows = data(2000, seed=9)
    ids = np.arange(10**9, 10**9 + 2000)
    lines = ["# sensors, exported today", "id," + ",".join(f"f{j}" for j in range(WIDTH))]
    for index, (id_, row) in enumerate(zip(ids.tolist(), rows)):
        lines.append(f"{id_}," + ",".join(f"{value:.9g}" for value in row))  # float32 round trip
        lines += ["# a note"] * (index % 97 == 0) + [""] * (index % 89 == 0)
    (tmp_path / "x.csv").write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode())
    summary = run_batch(export_dir, tmp_path / "x.csv", tmp_path / "p.parquet", graph="density",
                        workers=2, batch_size=128, progress=False)  # fmt: skip
    table = pq.read_table(tmp_path / "p.parquet")
    assert summary.rows == table.num_rows == 2000
    assert np.array_equal(table["id"].to_numpy(), ids)
    expected = in_process(export_dir, "density", rows, 128)
    assert np.array_equal(table["log_prob"].to_numpy(), expected)


@pytest.mark.slow
def test_rows_only_the_workers_can_judge_are_named_in_one_line(local_ray, export_dir, tmp_path):
    rows = data(1000, seed=10)
    text = [",".join(f"{value:.9g}" for value in row) for row in rows]
    text[777] = text[777].replace(text[777].split(",")[2], "abc", 1)
    (tmp_path / "words.csv").write_text("\n".join(text) + "\n")
    ragged = rows.tolist()
    ragged[555] = ragged[555][:3]
    pq.write_table(pa.table({"x": pa.array(ragged)}), tmp_path / "ragged.parquet")
    folders = worker_folders()
    for source, message in (("words.csv", "row 777: cell 3 holds 'abc', not a number"),
                            ("ragged.parquet", "row 555: column 'x' holds 3 values, not 6")):  # fmt: skip
        with pytest.raises(DataError, match=message) as caught:
            run_batch(export_dir, tmp_path / source, tmp_path / "y.npy", batch_size=100,
                      progress=False)  # fmt: skip
        assert "\n" not in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ragged.parquet", "words.csv"]
    assert left_behind(folders) == set()


@pytest.mark.slow
def test_outputs_that_overflow_are_refused_or_named(local_ray, export_dir, tmp_path):
    rows = data(500, seed=11)
    rows[[123, 400]] = np.float32(3.4e38) * np.where(np.arange(WIDTH) % 2, -1, 1)
    np.save(tmp_path / "x.npy", rows)
    finite = np.isfinite(in_process(export_dir, "density", rows, 500))
    assert np.flatnonzero(~finite).tolist() == [
        123,
        400,
    ]  # finite rows the float32 graph overflows on
    with pytest.raises(DataError, match="row 123: its log_prob is NaN or Inf"):
        run_batch(export_dir, tmp_path / "x.npy", tmp_path / "p.csv", graph="density",
                  batch_size=100, progress=False)  # fmt: skip
    with pytest.warns(
        RuntimeWarning, match=r"2 rows have a NaN or Inf log_prob \(row 123, row 400\)"
    ):
        summary = run_batch(export_dir, tmp_path / "x.npy", tmp_path / "p.csv", graph="density",
                            batch_size=100, nonfinite="warn", progress=False)  # fmt: skip
    assert summary.nonfinite_results == 2
    written = np.loadtxt(tmp_path / "p.csv", delimiter=",", skiprows=1)
    assert np.array_equal(written[:, 0], np.arange(500))
    assert np.array_equal(np.isfinite(written[:, 1]), finite)


@pytest.mark.slow  # starts Ray: seconds per job
def test_a_write_that_fails_during_the_job_leaves_nothing(
    local_ray, export_dir, tmp_path, monkeypatch
):
    np.save(tmp_path / "x.npy", data(3000, seed=12))
    write = _sinks.ParquetSink._write

    def write_then_full(self, output, ids, flags):
        write(self, output, ids, flags)  # the file is open and holds rows when the disk fills up
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_sinks.ParquetSink, "_write", write_then_full)
    with pytest.raises(OutputError, match="no space left on the device; nothing was written"):
        run_batch(export_dir, tmp_path / "x.npy", tmp_path / "y.parquet", batch_size=500,
                  progress=False)  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy"]


@pytest.mark.slow  # two commands, each starting its own Ray (side by side: ~20 s each)
def test_a_job_on_its_own_ray_is_quiet_and_leaves_nothing_behind(export_dir, tmp_path):
    np.save(tmp_path / "x.npy", data(300, seed=13))
    text = [",".join(f"{value:.9g}" for value in row) for row in data(300, seed=13)]
    text[250] = "1,2,3,4,5,nan"
    (tmp_path / "nan.csv").write_text("\n".join(text) + "\n")
    folders = worker_folders()
    jobs = [  # a good job and a failing one, at once: each Ray of its own spends its start-up idle
        (source, output, code, subprocess.Popen(
            [sys.executable, "-m", "iresnet_onnx", "batch", str(export_dir), str(tmp_path / source),
             str(tmp_path / output), "--quiet", "--overwrite", "--batch-size", "100"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))
        for source, output, code in (("x.npy", "y.npy", 0), ("nan.csv", "z.npy", 2))
    ]  # fmt: skip
    for source, _, code, process in jobs:
        _, err = process.communicate(timeout=300)
        assert process.returncode == code, err
        said = [line for line in err.splitlines() if line != "starting Ray (local)"]
        assert said == ([] if code == 0 else [
            f"iresnet-onnx batch: error: input {tmp_path / source}: row 250 holds NaN or Inf "
            "(values must be finite numbers); nothing was written (--nonfinite flag / "
            "nonfinite='flag' skips such rows)"
        ])  # fmt: skip
        # Ray names its session folder after the driver's pid: none is left, no process runs it
        session = f"_{process.pid}"
        assert not [p for p in glob.glob("/tmp/ray/session_*") if p.endswith(session)]
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        assert not [line for line in ps.splitlines() if f"{session}/" in line or
                    line.endswith(session)]  # fmt: skip
    assert left_behind(folders) == set()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.csv", "x.npy", "y.npy"]
