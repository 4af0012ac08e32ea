"""score, and the data-job engine it shares with batch and train: the readers (.npy, CSV, Parquet),
the sinks, the integrity rule; hostile input (issue 22) refused by name, with nothing written.

No Ray here: everything runs in this process, in a second or less per test.
"""

import errno
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from iresnet_onnx import runtimes as rt
from iresnet_onnx._data import load_data
from iresnet_onnx._manifest import sha256
from iresnet_onnx.cli import main
from iresnet_onnx.errors import DataError, VerificationError
from iresnet_onnx.jobs import _sinks
from iresnet_onnx.jobs._score import score_file
from tests.conftest import make_model

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

WIDTH = 5


@pytest.fixture(scope="module")
def model_and_export(exported):
    model = make_model(WIDTH, 2, variant="mlp", activation="Tanh")
    return model, exported("scoring", model)


@pytest.fixture(scope="module")
def export_dir(model_and_export):
    return model_and_export[1].out_dir


def rows(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, WIDTH)).astype(np.float32)


def session_scores(export_dir, data: np.ndarray) -> np.ndarray:
    """The reference: one session, the same float32 rows."""
    return rt.load(export_dir / "density.onnx").run_all(data)["log_prob"]


def score(export_dir, data, out, *extra) -> int:
    return main(
        ["score", str(export_dir), str(data), "--out", str(out), "--quiet", *map(str, extra)]
    )


def files(folder: Path) -> list[str]:
    """Every name in ``folder``, hidden temporary files included."""
    return sorted(path.name for path in folder.iterdir())


def test_scores_equal_eager_log_prob_in_row_order(model_and_export, tmp_path):
    model, result = model_and_export
    data = rows(1000)
    np.save(tmp_path / "data.npy", data)
    np.savetxt(tmp_path / "data.csv", data, delimiter=",", header="a,b,c,d,e", comments="")
    with torch.no_grad():
        expected = model.log_prob(torch.from_numpy(data)).numpy()
    npy = score_file(result.out_dir, tmp_path / "data.npy", tmp_path / "s.npy", batch_size=64,
                     progress=False)  # fmt: skip
    assert npy.rows == 1000
    np.testing.assert_allclose(np.load(tmp_path / "s.npy"), expected, rtol=1e-5, atol=1e-4)
    score_file(result.out_dir, tmp_path / "data.csv", tmp_path / "s.csv", batch_size=300,
               progress=False)  # fmt: skip
    from_csv = np.loadtxt(tmp_path / "s.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(from_csv, expected, rtol=1e-5, atol=1e-4)


def test_every_input_and_output_format_gives_the_same_scores(export_dir, tmp_path):
    data = rows(700, seed=2)
    expected = session_scores(export_dir, data)
    np.save(tmp_path / "x.npy", data)
    column = pa.FixedSizeListArray.from_arrays(pa.array(data.reshape(-1)), WIDTH)
    pq.write_table(pa.table({"x": column}), tmp_path / "x.parquet", row_group_size=300)
    wide = {f"f{j}": data[:, j] for j in range(WIDTH)}
    pq.write_table(pa.table(wide), tmp_path / "columns.parquet")
    for source in ("x.npy", "x.parquet", "columns.parquet"):
        for suffix in (".npy", ".csv", ".parquet"):
            out = tmp_path / f"{Path(source).stem}-out{suffix}"
            summary = score_file(export_dir, tmp_path / source, out, batch_size=128, progress=False)
            assert summary.rows == 700
            if suffix == ".npy":
                got = np.load(out)
            elif suffix == ".csv":
                got = np.loadtxt(out, delimiter=",", skiprows=1, dtype=np.float32)
            else:
                got = pq.read_table(out)["log_prob"].to_numpy()
            # same session, same float32 rows: equal (the CSV keeps 9 digits, float32's round trip)
            np.testing.assert_array_equal(got, expected, err_msg=f"{source} → {out.name}")


def test_a_bad_row_is_named_and_nothing_is_written(export_dir, tmp_path, capsys):
    out = tmp_path / "scores.npy"
    np.save(out, np.arange(3.0))
    before = sha256(out)
    data = rows(500, seed=1)
    data[321, 2] = np.nan
    np.save(tmp_path / "nan.npy", data)
    assert score(export_dir, tmp_path / "nan.npy", out, "--batch-size", 100) == 2
    assert "row 321 holds NaN or Inf" in capsys.readouterr().err
    np.save(tmp_path / "wide.npy", np.zeros((4, 7), np.float32))
    assert score(export_dir, tmp_path / "wide.npy", out) == 2
    assert "rows have 7 values, the graph expects 5" in capsys.readouterr().err
    assert sha256(out) == before and files(tmp_path) == ["nan.npy", "scores.npy", "wide.npy"]


# --- issue 22: the output is never the input (item 1) -----------------------------------------


def test_the_output_is_never_the_input(export_dir, tmp_path, capsys):
    np.save(tmp_path / "data.npy", rows(50))
    np.savetxt(tmp_path / "data.csv", rows(50), delimiter=",")
    (tmp_path / "link.npy").symlink_to(tmp_path / "data.npy")
    os.link(tmp_path / "data.csv", tmp_path / "hard.csv")
    before = {name: sha256(tmp_path / name) for name in ("data.npy", "data.csv")}
    for data, out in (("data.npy", "data.npy"), ("data.csv", "data.csv"), ("data.npy", "link.npy"),
                      ("link.npy", "data.npy"), ("data.csv", "hard.csv")):  # fmt: skip
        assert score(export_dir, tmp_path / data, tmp_path / out) == 2, (data, out)
        assert "is the same file as the input" in capsys.readouterr().err
    assert {name: sha256(tmp_path / name) for name in before} == before
    assert files(tmp_path) == ["data.csv", "data.npy", "hard.csv", "link.npy"]


def test_pipes_devices_and_link_loops_are_refused_before_any_work(export_dir, tmp_path, capsys):
    """A FIFO as input blocked the job for ever; a device or a symlink loop as output was replaced
    by the scores file (found by scripts/hostile.py)."""
    np.save(tmp_path / "data.npy", rows(5))
    os.mkfifo(tmp_path / "pipe.csv")
    (tmp_path / "loop.npy").symlink_to(tmp_path / "loop.npy")
    os.mkfifo(tmp_path / "fifo.npy")  # a FIFO stands for any special file (mknod needs root)
    before = files(tmp_path)
    cases = (
        ("pipe.csv", "s.npy", "not a regular file or folder"),
        ("data.npy", "loop.npy", "ymlink loop"),
        ("data.npy", "fifo.npy", "is not a regular file"),
    )
    for data, out, said in cases:
        assert score(export_dir, tmp_path / data, tmp_path / out) == 2, (data, out)
        assert said in capsys.readouterr().err, (data, out)
    assert files(tmp_path) == before
    assert (tmp_path / "loop.npy").is_symlink() and stat.S_ISFIFO(
        os.lstat(tmp_path / "fifo.npy").st_mode
    )


# --- CSV text: byte-order mark, comments, blank lines (items 2, 3; the review's blank run) ------


def test_a_byte_order_mark_keeps_the_first_row(export_dir, tmp_path):
    data = rows(3, seed=3)
    text = "".join(",".join(f"{v:.9g}" for v in row) + "\n" for row in data)
    for name, content in (("plain.csv", text), ("header.csv", "a,b,c,d,e\n" + text)):
        (tmp_path / name).write_bytes(b"\xef\xbb\xbf" + content.encode())
        summary = score_file(export_dir, tmp_path / name, tmp_path / "s.npy", progress=False)
        assert summary.rows == 3
        np.testing.assert_array_equal(np.load(tmp_path / "s.npy"), session_scores(export_dir, data))


def test_comment_and_blank_lines_hold_no_rows_and_rows_written_equal_rows_counted(
    export_dir, tmp_path
):
    data = rows(5, seed=4)
    lines = ["# exported 2026-01-01", "a,b,c,d,e"] + [",".join(map(str, row)) for row in data]
    lines[3:3] = ["   # a note between rows", ""]
    lines[5:5] = [""] * 10_000  # more than a chunk of blank lines in one run
    (tmp_path / "x.csv").write_text("\n".join(lines) + "\n# the end\n")
    parsed = np.array([[float(v) for v in row.split(",")] for row in lines if row[:1].isdigit()
                       or row[:1] == "-"], np.float32)  # fmt: skip
    assert parsed.shape == (5, WIDTH)
    for suffix in (".npy", ".csv"):
        out = tmp_path / f"s{suffix}"
        summary = score_file(export_dir, tmp_path / "x.csv", out, batch_size=4, progress=False)
        got = np.load(out) if suffix == ".npy" else np.loadtxt(out, delimiter=",", skiprows=1)
        assert summary.rows == len(got) == 5
        np.testing.assert_allclose(got, session_scores(export_dir, parsed), rtol=1e-6)


def test_csv_text_that_is_not_rows_is_named_by_line(export_dir, tmp_path, capsys):
    cases = {
        "latin1.csv": (b"a,b,c,d,e\n1,2,3,4,5\n\xe9,2,3,4,5\n", "line 3 is not UTF-8 text (byte 0xe9"),
        "ragged.csv": (b"1,2,3,4,5\n1,2,3\n", "row 1 (line 2) has 3 cells; the first row has 5"),
        "words.csv": (b"a,b,c,d,e\n1,2,3,4,5\n1,2,x,4,5\n", "row 1: column 'c' holds 'x', not a number"),
        "mac.csv": (b"1,2,3,4,5\r1,2,3,4,5\r", "line 1 holds a carriage return"),
        "twice.csv": (b"a,b,id,c,id,d\n1,2,3,4,5,6\n", "the header names 'id' twice"),
        "huge.csv": (b"1,2,3,4,5\n1,2,3,4," + b"9" * 400 + b"\n", "row 1: 99999999999999999… is beyond float64's range"),
    }  # fmt: skip
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        assert score(export_dir, tmp_path / name, tmp_path / "s.npy") == 2
        assert message in capsys.readouterr().err, name
    assert not (tmp_path / "s.npy").exists() and not any(p.startswith(".") for p in files(tmp_path))


# --- numbers the model cannot take or give (items 9, 14) ---------------------------------------


def test_npy_files_that_are_not_arrays_of_numbers_are_named(export_dir, tmp_path, capsys):
    data = rows(6)
    np.save(tmp_path / "objects.npy", np.array([[1, None]], dtype=object), allow_pickle=True)
    np.save(tmp_path / "flags.npy", data > 0)
    np.save(tmp_path / "flat.npy", data[:, 0])
    np.savez(tmp_path / "archive.npz", data=data)
    (tmp_path / "archive.npz").rename(tmp_path / "archive.npy")
    (tmp_path / "short.npy").write_bytes((tmp_path / "flags.npy").read_bytes()[:-7])
    cases = {
        "objects.npy": "not a readable .npy array",  # never unpickled
        "flags.npy": "holds bool values, not numbers",
        "flat.npy": "expected shape [N, n], got [6]",
        "archive.npy": "an .npz archive of arrays, not a .npy array",
        "short.npy": "not a readable .npy array",
    }
    for name, message in cases.items():
        assert score(export_dir, tmp_path / name, tmp_path / "s.npy") == 2
        assert message in capsys.readouterr().err, name
    assert not (tmp_path / "s.npy").exists()


def test_values_beyond_float32_name_their_row(export_dir, tmp_path, capsys):
    data = rows(10, seed=5).astype(np.float64)
    data[6, 1] = 1e308
    np.save(tmp_path / "big.npy", data)
    np.savetxt(tmp_path / "big.csv", data, delimiter=",")
    for name in ("big.npy", "big.csv"):
        assert score(export_dir, tmp_path / name, tmp_path / "s.npy") == 2
        assert "row 6: 1e+308 is beyond float32's range" in capsys.readouterr().err


def test_big_endian_arrays_are_read_as_the_numbers_they_hold(export_dir, tmp_path):
    data = rows(20, seed=6)
    np.save(tmp_path / "big-endian.npy", data.astype(">f4"))
    summary = score_file(
        export_dir, tmp_path / "big-endian.npy", tmp_path / "s.npy", progress=False
    )
    assert summary.rows == 20
    np.testing.assert_array_equal(np.load(tmp_path / "s.npy"), session_scores(export_dir, data))
    np.save(tmp_path / "complex.npy", data.astype(">c8"))
    with pytest.raises(DataError, match=r"big-endian complex64 \(>c8\) values, not numbers"):
        score_file(export_dir, tmp_path / "complex.npy", tmp_path / "s.npy", progress=False)


def test_scores_that_overflow_are_named_counted_or_refused(export_dir, tmp_path):
    data = rows(40, seed=7)
    data[[11, 30]] = np.float32(3.4e38) * np.array([1, -1, 1, -1, 1], np.float32)
    np.save(tmp_path / "x.npy", data)
    finite = np.isfinite(session_scores(export_dir, data))
    assert np.flatnonzero(~finite).tolist() == [
        11,
        30,
    ]  # finite rows the float32 graph overflows on
    with pytest.warns(
        RuntimeWarning, match=r"2 rows have a NaN or Inf log_prob \(row 11, row 30\)"
    ):
        summary = score_file(export_dir, tmp_path / "x.npy", tmp_path / "s.npy", progress=False)
    assert summary.nonfinite_results == 2 and summary.rows == 40
    assert np.array_equal(np.isfinite(np.load(tmp_path / "s.npy")), finite)
    (tmp_path / "s.npy").unlink()
    with pytest.raises(DataError, match="row 11: its log_prob is NaN or Inf"):
        score_file(export_dir, tmp_path / "x.npy", tmp_path / "s.npy", nonfinite="reject",
                   progress=False)  # fmt: skip
    assert files(tmp_path) == ["x.npy"]


def test_rows_with_nan_are_skipped_and_flagged_when_asked(export_dir, tmp_path):
    data = rows(30, seed=8)
    data[[4, 17], 0] = [np.nan, -np.inf]
    np.save(tmp_path / "x.npy", data)
    summary = score_file(export_dir, tmp_path / "x.npy", tmp_path / "s.parquet", nonfinite="flag",
                         batch_size=8, progress=False)  # fmt: skip
    table = pq.read_table(tmp_path / "s.parquet")
    valid = table["valid"].to_numpy()
    assert summary.skipped == 2 and np.flatnonzero(~valid).tolist() == [4, 17]
    scores = table["log_prob"].to_numpy()
    assert np.isnan(scores[~valid]).all()
    np.testing.assert_array_equal(scores[valid], session_scores(export_dir, data[valid]))


# --- empty inputs (item 8) ---------------------------------------------------------------------


def test_empty_inputs_are_refused_by_name(export_dir, tmp_path, capsys):
    (tmp_path / "zero-bytes.npy").write_bytes(b"")
    np.save(tmp_path / "zero-rows.npy", np.zeros((0, WIDTH), np.float32))
    (tmp_path / "zero-bytes.csv").write_bytes(b"")
    (tmp_path / "header.csv").write_text("a,b,c,d,e\n\n# nothing yet\n")
    column = pa.FixedSizeListArray.from_arrays(pa.array([], pa.float32()), WIDTH)
    pq.write_table(pa.table({"x": column}), tmp_path / "zero-rows.parquet")
    expected = {"zero-bytes.npy": "the file is empty, not a .npy array"}
    for name in ("zero-bytes.npy", "zero-rows.npy", "header.csv", "zero-rows.parquet"):
        assert score(export_dir, tmp_path / name, tmp_path / "s.npy") == 2
        assert expected.get(name, "no rows") in capsys.readouterr().err, name
    assert score(export_dir, tmp_path / "zero-bytes.csv", tmp_path / "s.npy") == 2
    assert "zero-bytes.csv" in capsys.readouterr().err
    assert not (tmp_path / "s.npy").exists()


# --- Parquet that is not a table of numbers (items 7, 15) --------------------------------------


def test_parquet_columns_that_are_not_numbers_are_refused(export_dir, tmp_path):
    strings = pa.array([[str(v) for v in row] for row in rows(4).tolist()])
    pq.write_table(pa.table({"x": strings}), tmp_path / "strings.parquet")
    with pytest.raises(DataError, match="column 'x' holds lists of string, not of numbers"):
        score_file(export_dir, tmp_path / "strings.parquet", tmp_path / "s.npy", progress=False)
    ids = pa.array(["a", "b", "c", "d"])
    pq.write_table(pa.table({"id": ids, "x": pa.array(rows(4).tolist())}), tmp_path / "ids.parquet")
    with pytest.raises(DataError, match="its 'id' column holds string, not integers"):
        score_file(export_dir, tmp_path / "ids.parquet", tmp_path / "s.npy", progress=False)
    ragged = rows(9).tolist()
    ragged[7] = ragged[7][:3]
    pq.write_table(pa.table({"id": np.arange(100, 109), "x": pa.array(ragged)}),
                   tmp_path / "ragged.parquet")  # fmt: skip
    with pytest.raises(DataError, match=r"row 7 \(id 107\): column 'x' holds 3 values, not 5"):
        score_file(export_dir, tmp_path / "ragged.parquet", tmp_path / "s.npy", batch_size=4,
                   progress=False)  # fmt: skip
    assert not (tmp_path / "s.npy").exists()


# --- a full disk, and sinks closed on every path (item 4; the review's open sinks) -------------


def test_a_full_disk_is_refused_before_any_work(export_dir, tmp_path, monkeypatch, capsys):
    np.save(tmp_path / "x.npy", rows(1000))
    np.save(tmp_path / "s.npy", np.arange(3.0))
    before = sha256(tmp_path / "s.npy")
    Usage = type(shutil.disk_usage(tmp_path))
    monkeypatch.setattr(_sinks.shutil, "disk_usage", lambda path: Usage(10**9, 10**9 - 100, 100))
    assert score(export_dir, tmp_path / "x.npy", tmp_path / "s.npy") == 2
    assert "no space left on the device (0.0 MB needed" in capsys.readouterr().err
    monkeypatch.undo()

    def full(fd, offset, length):  # the disk filled up after the check: the reservation fails
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(_sinks.os, "posix_fallocate", full)
    assert score(export_dir, tmp_path / "x.npy", tmp_path / "s.npy") == 2
    assert "no space left on the device" in capsys.readouterr().err
    assert sha256(tmp_path / "s.npy") == before and files(tmp_path) == ["s.npy", "x.npy"]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_failed_write_closes_the_sink_and_leaves_nothing(export_dir, tmp_path, monkeypatch,
                                                           suffix, capsys):  # fmt: skip
    np.save(tmp_path / "x.npy", rows(100))
    sink_type = _sinks.SINKS[suffix]
    closed, write = [], sink_type._write

    def write_until_full(self, output, ids, flags):
        if self.written:  # the second chunk finds the disk full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        write(self, output, ids, flags)

    monkeypatch.setattr(sink_type, "_write", write_until_full)
    monkeypatch.setattr(sink_type, "close", lambda self, close=sink_type.close: (
        closed.append(self), close(self)))  # fmt: skip
    assert score(export_dir, tmp_path / "x.npy", tmp_path / f"s{suffix}", "--batch-size", 40) == 2
    assert "no space left on the device" in capsys.readouterr().err
    assert len(closed) == 1 and files(tmp_path) == ["x.npy"]
    monkeypatch.undo()
    data = rows(100)
    data[70, 0] = np.nan  # a bad row in the second chunk: the sink is closed as well
    np.save(tmp_path / "x.npy", data)
    with pytest.raises(DataError, match="row 70"):
        score_file(export_dir, tmp_path / "x.npy", tmp_path / f"s{suffix}", batch_size=40,
                   progress=False)  # fmt: skip
    assert files(tmp_path) == ["x.npy"]


# --- one integrity rule; runtimes that cannot run a graph (items 6, 10, 11) ---------------------


def test_a_graph_changed_since_export_is_a_verification_failure(export_dir, exported, tmp_path,
                                                                capsys):  # fmt: skip
    other = exported("scoring-other", make_model(WIDTH, 1, seed=3), validate=False).out_dir
    copy = tmp_path / "export"
    shutil.copytree(export_dir, copy)
    shutil.copy(other / "density.onnx", copy / "density.onnx")  # a valid graph of another model
    np.save(tmp_path / "x.npy", rows(10))
    assert score(copy, tmp_path / "x.npy", tmp_path / "s.npy") == 1
    assert "density.onnx changed since export" in capsys.readouterr().err
    (copy / "density.onnx").unlink()
    with pytest.raises(VerificationError, match="missing since export"):
        score_file(copy, tmp_path / "x.npy", tmp_path / "s.npy", progress=False)
    assert not (tmp_path / "s.npy").exists()


def test_bench_refuses_runtimes_and_threads_it_cannot_use_before_any_work(export_dir, capsys):
    for extra, message in ((["--runtime", "tract:cpu"], "tract cannot run"),
                           (["--threads", "100000"], "threads must be an int in 1…")):  # fmt: skip
        code = main(["bench", str(export_dir), "--batch", "1", "--repeats", "1", *extra])
        assert code == 2 and message in capsys.readouterr().err


# --- train's files, by the same readers (items 1, 4, 14) ---------------------------------------


def test_train_reads_by_the_same_rules_and_refuses_bad_files_before_training(tmp_path, capsys):
    data = rows(64, seed=9)
    text = "\ufeff# a comment\nx0,x1,x2,x3,x4\n" + "".join(
        ",".join(map(str, r)) + "\n\n" for r in data
    )
    (tmp_path / "x.csv").write_text(text)
    np.testing.assert_allclose(load_data(tmp_path / "x.csv"), data, rtol=1e-6)
    np.save(tmp_path / "x.npy", data)
    before = sha256(tmp_path / "x.npy")
    (tmp_path / "hp.json").write_text('{"input_size": 3, "nblocks": 1}')
    train = ["train", str(tmp_path / "x.npy"), "--epochs", "1", "--out"]
    cases = (
        ([str(tmp_path / "x.npy")], "output folder", "is a file"),
        ([str(tmp_path / "run"), "--seed", str(2**64)], "--seed", "2**64-1"),
        ([str(tmp_path / "run"), "--hp", str(tmp_path / "hp.json")], "input_size is 3", "have 5"),
    )
    for extra, *messages in cases:
        assert main([*train, *extra]) == 2, extra
        err = capsys.readouterr().err
        assert all(message in err for message in messages), err
    assert sha256(tmp_path / "x.npy") == before and not (tmp_path / "run").exists()
    (tmp_path / "hp.json").write_text('{"input_size": 5, "nblocks": 1}')  # a model's own HP
    assert main([*train, str(tmp_path / "run"), "--hp", str(tmp_path / "hp.json")]) == 0
    assert (tmp_path / "run" / "model.pt").is_file()
