"""batch on Ray Data: bit for bit equal to in-process sessions, row order and ids kept, bad input
refused before Ray starts, non-finite rows rejected or flagged, an actor killed mid-job, an
interrupted job that leaves nothing behind.

One local Ray of 2 CPUs serves the whole module (starting Ray costs 5–10 s here); the argument
tests come first and check that Ray was never needed for them. Each job on Ray costs 3–10 s
(its actors start), so the default run keeps three jobs and the rest are marked slow (`make test`
runs them).
"""

import logging
import os
import shutil
import signal

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the [ray] extra is not installed")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from iresnet_onnx import runtimes as rt  # noqa: E402
from iresnet_onnx._manifest import sha256  # noqa: E402
from iresnet_onnx.cli import main  # noqa: E402
from iresnet_onnx.errors import InvalidModelError  # noqa: E402
from iresnet_onnx.jobs._batch import _plan_workers, run_batch  # noqa: E402
from tests.conftest import make_model  # noqa: E402

WIDTH = 6


@pytest.fixture(scope="module")
def export_dir(exported):
    return exported("batch", make_model(WIDTH, 2, activation="Tanh")).out_dir


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray of 2 CPUs for this module; run_batch joins it instead of starting its own."""
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR,
             log_to_driver=False)  # fmt: skip
    yield
    ray.shutdown()


def data(rows: int, seed: int = 0, width: int = WIDTH) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, width)).astype(np.float32)


def in_process(export_dir, graph: str, rows: np.ndarray, batch_size: int) -> np.ndarray:
    """The reference: one session in this process, run on the same batches Ray makes."""
    session = rt.load(export_dir / f"{graph}.onnx", "onnxruntime:cpu", threads=1)
    return np.concatenate(
        [session.run(rows[start : start + batch_size]) for start in range(0, len(rows), batch_size)]
    )


def vectors(table, name: str) -> np.ndarray:
    return np.stack(table[name].to_numpy(zero_copy_only=False))


# --- refused before Ray starts ----------------------------------------------------------------


def test_bad_arguments_are_refused_before_ray_starts(export_dir, tmp_path):
    np.save(tmp_path / "x.npy", data(10))
    np.save(tmp_path / "wide.npy", data(10, width=WIDTH + 1))
    (tmp_path / "taken.npy").write_bytes(b"a previous result")
    cases = {
        "wide.npy/out.npy": "rows have 7 values, the graph expects 6",
        "x.npy/taken.npy": "exists: pass --overwrite",
        "x.npy/out.txt": "expected a .npy or .parquet file",
        "missing.npy/out.npy": "no such file",
    }
    for paths, message in cases.items():
        source, out = paths.split("/")
        with pytest.raises(ValueError, match=message):
            run_batch(export_dir, tmp_path / source, tmp_path / out, progress=False)
    with pytest.raises(ValueError, match="graph 'backward'"):
        run_batch(export_dir, tmp_path / "x.npy", tmp_path / "o.npy", graph="backward")
    assert not ray.is_initialized()
    assert (tmp_path / "taken.npy").read_bytes() == b"a previous result"


def test_a_changed_graph_is_refused(export_dir, tmp_path):
    copy = tmp_path / "export"
    shutil.copytree(export_dir, copy)
    (copy / "forward.onnx").write_bytes((copy / "forward.onnx").read_bytes() + b"\0")
    np.save(tmp_path / "x.npy", data(10))
    with pytest.raises(InvalidModelError, match="changed since export"):
        run_batch(copy, tmp_path / "x.npy", tmp_path / "o.npy")
    assert not ray.is_initialized()


def test_threads_times_workers_never_exceed_the_cpus():
    assert _plan_workers(2.0, 1, None, reads=False) == (2, 2.0)
    assert _plan_workers(2.0, 2, None, reads=False) == (1, 1.0)
    # Ray's read tasks need a whole CPU: the actors leave one free
    assert _plan_workers(2.0, 2, None, reads=True) == (1, 0.5)
    assert _plan_workers(8.0, 2, None, reads=True) == (4, 3)
    with pytest.raises(ValueError, match="3 workers × 1 threads need 3 CPUs; Ray has 2"):
        _plan_workers(2.0, 3, None, reads=False)


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


def test_nonfinite_rows_reject_or_flag(local_ray, export_dir, tmp_path):
    rows = data(3000, seed=4)
    rows[[17, 2500], 3] = [np.nan, np.inf]
    np.save(tmp_path / "x.npy", rows)
    out = tmp_path / "y.parquet"
    out.write_bytes(b"the previous good output")
    with pytest.raises(ValueError, match="row 17 holds NaN or Inf; nothing was written"):
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
