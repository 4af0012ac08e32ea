"""The command line: exit codes, one-line errors on stderr, no tracebacks.

Most cases call ``main()`` in-process (fast); a few go through a subprocess end to end (the module
entry point, pipes, the environment). Each case of the README's bad-input catalogue that reaches the
CLI is here.
"""

import importlib.util
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from iresnet_onnx import runtimes, save_checkpoint
from iresnet_onnx._manifest import sha256
from iresnet_onnx.cli import main
from tests.conftest import make_model

REPO = Path(__file__).resolve().parents[1]


def subprocess_cli(*args: str, cwd: Path | None = None, **kwargs) -> subprocess.CompletedProcess:
    """The CLI in its own process (hang guard only: a slow machine is not a failure)."""
    return subprocess.run(
        [sys.executable, "-m", "iresnet_onnx", *map(str, args)],
        capture_output=True, text=True, cwd=cwd, timeout=3600, **kwargs,
    )  # fmt: skip


@pytest.fixture
def cli(capsys):
    """``cli(*args)``: ``main()`` in this process, as a CompletedProcess-like result."""

    def run(*args: str) -> subprocess.CompletedProcess:
        capsys.readouterr()
        try:
            code = main([str(arg) for arg in args])
        except SystemExit as exit_:  # argparse's usage errors and --help
            code = exit_.code
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, captured.out, captured.err)

    return run


def assert_clean_failure(result: subprocess.CompletedProcess, code: int, *fragments: str) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return save_checkpoint(
        make_model(4, 2, activation="ELU"), tmp_path_factory.mktemp("ckpt") / "model.pt"
    )


@pytest.fixture(scope="module")
def export_dir(checkpoint, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "out"
    result = subprocess_cli("export", checkpoint, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "forward" in result.stdout and "PASSED" in result.stdout
    return out


def test_help_of_every_command(cli):
    for command in ("", "demo", "train", "export", "verify", "bench", "inspect"):
        result = cli(*([command] if command else []), "--help")
        assert result.returncode == 0 and "usage: iresnet-onnx" in result.stdout


def test_usage_errors_exit_2(cli):
    assert_clean_failure(cli(), 2, "required: COMMAND")
    assert_clean_failure(cli("compile"), 2, "invalid choice: 'compile'")
    assert_clean_failure(cli("bench", "x", "--batch", "0,1"), 2, "positive integers")


def test_verify_passes_and_reports_json(cli, export_dir):
    result = cli("verify", export_dir, "--runtime", "onnxruntime:cpu,reference:cpu", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] is True and set(report["hashes"].values()) == {"ok"}
    assert {row["runtime"] for row in report["parity"]["rows"]} == {
        "onnxruntime:cpu",
        "reference:cpu",
    }


def test_tampered_graph_reports_hash_and_parity(cli, export_dir, tmp_path):
    tampered = copy_export(export_dir, tmp_path / "tampered")
    proto = onnx.load(tampered / "forward.onnx")
    for initializer in proto.graph.initializer:
        if initializer.name == "blocks.0.bottleneck.0.bias":
            array = numpy_helper.to_array(initializer) + 0.5
            initializer.CopyFrom(numpy_helper.from_array(array, initializer.name))
    onnx.save(proto, tampered / "forward.onnx")
    result = cli("verify", tampered, "--runtime", "onnxruntime:cpu")
    assert_clean_failure(
        result, 1, "forward.onnx modified since export", "onnxruntime:cpu forward on"
    )
    assert "sha256 forward.onnx: modified" in result.stdout and "FAILED" in result.stdout


def copy_export(export_dir: Path, target: Path) -> Path:
    target.mkdir()
    for name in ("forward.onnx", "inverse.onnx", "model.pt", "manifest.json"):
        (target / name).write_bytes((export_dir / name).read_bytes())
    return target


def test_file_broken_since_export_is_a_verification_failure(cli, export_dir, tmp_path):
    broken = copy_export(export_dir, tmp_path / "broken")
    (broken / "forward.onnx").write_bytes(b"\x00not onnx any more")
    result = cli("verify", broken, "--runtime", "onnxruntime:cpu")
    assert_clean_failure(result, 1, "forward.onnx modified since export", "cannot run parity")


def test_manifest_without_hashes_is_bad_input(cli, export_dir, tmp_path):
    folder = copy_export(export_dir, tmp_path / "nohash")
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["files"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert_clean_failure(cli("verify", folder), 2, "lacks the sha256 of forward.onnx")
    assert_clean_failure(cli("inspect", folder), 2, "lacks the sha256")


@pytest.mark.parametrize(
    ("runtime", "fragment"),
    [
        pytest.param(
            "onnxruntime:cuda", "onnxruntime:cuda is not available here; available: ",
            marks=pytest.mark.skipif("onnxruntime:cuda" in runtimes.available(), reason="CUDA is here"),
        ),
        ("tvm:cpu", "unknown runtime"),
    ],
)  # fmt: skip
def test_unavailable_runtime_exits_2_with_the_list(cli, export_dir, runtime, fragment):
    assert_clean_failure(
        cli("verify", export_dir, "--runtime", runtime), 2, fragment, "onnxruntime:cpu"
    )


def write_bad_checkpoints(folder: Path) -> dict[str, Path]:
    folder.mkdir(exist_ok=True)
    corrupt = folder / "corrupt.pt"
    corrupt.write_bytes(os.urandom(256))
    foreign = folder / "foreign.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), foreign)
    malicious = folder / "malicious.pt"
    malicious.write_bytes(pickle.dumps(Exploit()))
    return {
        "corrupt": corrupt,
        "foreign": foreign,
        "malicious": malicious,
        "missing": folder / "none.pt",
    }


class Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


@pytest.mark.parametrize(
    ("kind", "fragment"),
    [
        ("missing", "no such file"),
        ("corrupt", "checkpoint"),
        ("foreign", "not an iresnet-onnx-checkpoint file"),
        ("malicious", "refused to unpickle"),
    ],
)
def test_bad_checkpoints_exit_2(cli, tmp_path, kind, fragment):
    path = write_bad_checkpoints(tmp_path / "bad")[kind]
    assert_clean_failure(cli("export", path, "--out", tmp_path / "out"), 2, fragment, str(path))
    assert not (tmp_path / "out" / "forward.onnx").exists()


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--opset", "99"], "opset 99 is not supported"),
        (["--atol", "-1"], "--atol: expected a finite number ≥ 0, got '-1'"),
        (["--rtol", "1e300"], "overflows"),
        (["--rtol", "inf"], "--rtol: expected a finite number ≥ 0"),
        (["--maxiter", "0"], "--maxiter: expected a positive integer"),
        (["--maxiter", "9223372036854775807"], "maxiter must be an int in 1…1,000,000"),
        (["--spectral-norm", "unrolled"], "unknown spectral_norm mode 'unrolled'"),
    ],
)
def test_bad_export_options_exit_2(cli, checkpoint, tmp_path, flags, fragment):
    assert_clean_failure(cli("export", checkpoint, "--out", tmp_path, *flags), 2, fragment)


def test_missing_and_foreign_export_dirs_exit_2(cli, tmp_path):
    assert_clean_failure(cli("verify", tmp_path / "nowhere"), 2, "no manifest.json")
    assert_clean_failure(cli("inspect", tmp_path / "nowhere.onnx"), 2, "no such file")
    (tmp_path / "junk.onnx").write_bytes(b"\x00garbage")
    assert_clean_failure(cli("inspect", tmp_path / "junk.onnx"), 2, "junk.onnx")


def test_export_with_solver_defaults_and_folded(cli, checkpoint, tmp_path):
    result = cli(
        "export", checkpoint, "--out", tmp_path, "--spectral-norm", "folded", "--opset", "17",
        "--atol", "1e-4", "--rtol", "1e-4", "--maxiter", "30",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    initializers = {
        i.name: numpy_helper.to_array(i)
        for i in onnx.load(tmp_path / "inverse.onnx").graph.initializer
    }
    assert initializers["maxiter"] == 30 and initializers["atol"] == np.float32(1e-4)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["hp"]["iResNetBlock"]["maxiter"] == 30 and manifest["opset"] == 17
    assert cli("verify", tmp_path, "--runtime", "onnxruntime:cpu").returncode == 0


@pytest.mark.parametrize("value", ["auto", "3"])
def test_export_takes_steps_per_check_auto_or_a_count(cli, checkpoint, tmp_path, value):
    from iresnet_onnx import load_checkpoint
    from iresnet_onnx._cadence import auto_steps_per_check

    result = cli(
        "export", checkpoint, "--out", tmp_path, "--steps-per-check", value, "--no-validate"
    )
    assert result.returncode == 0, result.stderr
    expected = auto_steps_per_check(load_checkpoint(checkpoint)) if value == "auto" else int(value)
    assert json.loads((tmp_path / "manifest.json").read_text())["steps_per_check"] == expected


def test_inspect_folder_and_file(cli, export_dir):
    result = cli("inspect", export_dir)
    assert result.returncode == 0, result.stderr
    assert "Loop nodes: 1, Scan nodes: 0" in result.stdout  # forward: the power iteration
    assert (
        "Loop blocks.1/BlockInverse/Loop_" in result.stdout and "body fixed_point" in result.stdout
    )
    assert "maxiter: int64[] (optional)" in result.stdout
    assert "model.pt: sha256" in result.stdout and "validation: passed" in result.stdout
    as_json = json.loads(cli("inspect", export_dir / "inverse.onnx", "--json").stdout)
    assert as_json["graphs"]["inverse.onnx"]["op_counts"]["Loop"] == 1 + 2 * 2  # power; K, rest


@pytest.mark.slow  # times every runtime: seconds
def test_bench_json(cli, export_dir):
    result = cli("bench", export_dir, "--batch", "1,8", "--repeats", "5", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["rows"]
    assert {(r["implementation"], r["graph"], r["batch"]) for r in rows} >= {
        ("torch eager", "forward", 1), ("onnxruntime:cpu", "inverse", 8)
    }  # fmt: skip
    assert all(r["median_us"] > 0 for r in rows)


def test_train_on_csv_and_bad_data(cli, tmp_path):
    data = np.random.default_rng(0).standard_normal((64, 3))
    np.savetxt(tmp_path / "data.csv", data, delimiter=",", header="a,b,c", comments="")
    result = cli(
        "train", tmp_path / "data.csv", "--out", tmp_path / "run", "--epochs", "2", "--nblocks", "2",
        "--activation", "Tanh", "--batch-size", "32",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "run" / "model.pt").is_file() and "final NLL" in result.stdout
    assert len(json.loads((tmp_path / "run" / "losses.json").read_text())) == 2

    bad = data.copy()
    bad[3, 1] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    assert_clean_failure(cli("train", tmp_path / "nan.npy", "--out", tmp_path / "x"), 2, "finite")
    np.save(tmp_path / "flat.npy", data[:, 0])
    assert_clean_failure(
        cli("train", tmp_path / "flat.npy", "--out", tmp_path / "x"), 2, "shape [N, n]"
    )
    result = cli("train", tmp_path / "data.csv", "--out", tmp_path / "x", "--activation", "GELU")
    assert_clean_failure(result, 2, "Lipschitz constant above 1")


@pytest.mark.slow  # real processes, 10–15 s: `make test` runs it
def test_pipeline_script(checkpoint, tmp_path):
    # as after `make`: iresnet-onnx is in the checkout's .venv, not on PATH
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("IRESNET_ONNX", "VIRTUAL_ENV")
    }
    env["PATH"] = "/usr/bin:/bin"
    env["RUNTIMES"] = "onnxruntime:cpu"
    script = REPO / "scripts" / "export_and_verify.sh"
    if not (REPO / ".venv" / "bin" / "iresnet-onnx").exists():
        env["IRESNET_ONNX"] = f"{sys.executable} -m iresnet_onnx"
    ok = subprocess.run(
        ["bash", script, checkpoint, tmp_path / "ok"], capture_output=True, text=True, env=env
    )
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(
        ["bash", script, checkpoint, tmp_path / "bad", "--opset", "5"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode == 2 and "opset 5 is not supported" in bad.stderr


@pytest.mark.slow
@pytest.mark.timeout(3600)  # a hang guard: the demo takes minutes, more on a busy machine
def test_demo_end_to_end(tmp_path):
    # a shorter training than the default 40 × 4096 (the loss still falls by more than 0.5): the
    # export, validation on every runtime, latency and the page are the demo's own, in full
    result = subprocess_cli("demo", "--out", tmp_path, "--epochs", "12", "--samples", "2048")
    assert result.returncode == 0, result.stderr
    for name in (
        "model.pt",
        "report.md",
        "report.json",
        "demo.png",
        "onnx/inverse.onnx",
        "onnx-folded/manifest.json",
    ):
        assert (tmp_path / name).is_file(), name
    report = json.loads((tmp_path / "report.json").read_text())
    assert all(entry["passed"] for entry in report["parity"].values())
    assert report["training"]["nll_last"] < report["training"]["nll_first"] - 0.5
    assert (tmp_path / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- "Nothing lost": pipelines can trust the exit code and the folder -------------------------


def folder_hashes(folder: Path) -> dict[str, str]:
    return {p.name: sha256(p) for p in sorted(folder.iterdir()) if p.is_file()}


def test_nan_training_exits_2_and_keeps_the_good_checkpoint(cli, tmp_path):
    data = np.random.default_rng(0).standard_normal((128, 2)).astype(np.float32)
    np.save(tmp_path / "good.npy", data)
    run = tmp_path / "run"
    assert cli("train", tmp_path / "good.npy", "--out", run, "--epochs", "1").returncode == 0
    good = folder_hashes(run)
    data[5, 0] = 1e30
    np.save(tmp_path / "huge.npy", data)
    result = cli("train", tmp_path / "huge.npy", "--out", run, "--epochs", "2")
    assert_clean_failure(result, 2, "training stopped: the loss is", "Nothing was saved")
    assert_clean_failure(
        cli("train", tmp_path / "good.npy", "--out", run, "--lr", "inf"),
        2,
        "--lr: expected a finite",
    )
    assert folder_hashes(run) == good


def test_one_column_csv_trains(cli, tmp_path):
    np.savetxt(tmp_path / "one.csv", np.random.default_rng(1).standard_normal(64), delimiter=",")
    result = cli("train", tmp_path / "one.csv", "--out", tmp_path / "run", "--epochs", "1")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("tensor", "value", "fragment"),
    [(".c", 5.0, "c is 5.0, it must lie in (0, 1)"), ("0.weight", float("nan"), "contains NaN")],
)
def test_export_of_a_broken_checkpoint_names_the_file(cli, tmp_path, tensor, value, fragment):
    model = make_model(4, 1)
    payload_path = save_checkpoint(model, tmp_path / "model.pt")
    payload = torch.load(payload_path, weights_only=True)
    payload["state_dict"] = {
        k: torch.full_like(v, value) if k.endswith(tensor) else v
        for k, v in payload["state_dict"].items()
    }
    torch.save(payload, tmp_path / "broken.pt")
    result = cli("export", tmp_path / "broken.pt", "--out", tmp_path / "out")
    assert_clean_failure(result, 2, str(tmp_path / "broken.pt"), fragment)
    assert "the input contains" not in result.stderr and not (tmp_path / "out").exists()


def test_verify_with_a_checkpoint_of_another_width_blames_the_checkpoint(cli, export_dir, tmp_path):
    other = save_checkpoint(make_model(3, 2), tmp_path / "other.pt")
    result = cli("verify", export_dir, "--checkpoint", other)
    assert_clean_failure(result, 2, f"checkpoint {other} holds a model of width 3", "width 4")


def test_debug_keeps_the_exit_code_and_works_after_the_command(cli, tmp_path):
    missing = tmp_path / "none.pt"
    plain = cli("export", missing, "--out", tmp_path / "o")
    assert_clean_failure(plain, 2, "no such file")
    for args in (("--debug", "export", missing), ("export", missing, "--debug")):
        result = cli(*args, "--out", tmp_path / "o")
        assert result.returncode == 2 and "Traceback" in result.stderr, result.stderr


@pytest.mark.parametrize("error", [ZeroDivisionError, ValueError, TypeError, OSError, KeyError])
def test_an_internal_error_has_its_own_exit_code(cli, monkeypatch, export_dir, error):
    """A builtin exception raised by a bug deep inside a command is exit 3, whatever its type:
    only the package's own error types say "your input is wrong" (exit 2)."""

    def broken(*args, **kwargs):
        raise error("a bug")

    monkeypatch.setattr("iresnet_onnx._inspect.graph_summary", broken)
    result = cli("inspect", export_dir)
    assert_clean_failure(result, 3, f"internal error {error.__name__}", "a bug")


def test_warnings_are_one_line(cli, monkeypatch):
    def noisy(args):
        warnings.warn("first line\nsecond line", UserWarning, stacklevel=1)
        return 0

    monkeypatch.setattr("iresnet_onnx.cli._commands.inspect", noisy)
    result = cli("inspect", "anything")
    assert result.returncode == 0
    assert result.stderr == "iresnet-onnx inspect: warning: UserWarning: first line\n"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("bench", "--threads", "0"), "--threads: expected a positive integer"),
        (("bench", "--repeats", "0"), "--repeats: expected a positive integer"),
        (("demo", "--samples", "0"), "--samples: expected a positive integer"),
        (("demo", "--epochs", "-1"), "--epochs: expected a positive integer"),
        (
            ("export", "m.pt", "--steps-per-check", "fast"),
            '--steps-per-check: expected "auto" or a',
        ),
    ],
)
def test_bad_numbers_are_usage_errors(cli, args, fragment):
    assert_clean_failure(cli(*args), 2, fragment)


def test_hp_file_must_be_an_object(cli, tmp_path):
    (tmp_path / "hp.json").write_text("[1, 2]")
    np.save(tmp_path / "d.npy", np.zeros((8, 2), np.float32))
    result = cli("train", tmp_path / "d.npy", "--out", tmp_path / "r", "--hp", tmp_path / "hp.json")
    assert_clean_failure(result, 2, "expected an object such as")


def test_missing_extra_is_named_before_any_work(cli, tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "matplotlib" else real(name, *a),
    )
    result = cli("demo", "--out", tmp_path / "demo")
    assert_clean_failure(result, 2, "demo needs matplotlib", "pip install 'iresnet-onnx[demo]'")
    assert not (tmp_path / "demo").exists()


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda m: m["files"].update({"/etc/passwd": m["files"]["model.pt"]}), "points outside"),
        (lambda m: m["files"].update({"../../x": m["files"]["model.pt"]}), "points outside"),
        (lambda m: m.update({"checkpoint": ["a"]}), "'checkpoint' must name a file"),
        (lambda m: m["files"]["forward.onnx"].update({"sha256": 5}), "no valid sha256"),
    ],
    ids=["absolute", "dotdot", "checkpoint-list", "hash-number"],
)
def test_the_manifest_is_checked_before_it_is_trusted(cli, export_dir, tmp_path, edit, fragment):
    folder = copy_export(export_dir, tmp_path / "edited")
    manifest = json.loads((folder / "manifest.json").read_text())
    edit(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    for command in ("verify", "inspect"):
        assert_clean_failure(cli(command, folder), 2, "manifest.json", fragment)


def test_output_into_a_closed_pipe_is_quiet(export_dir):
    process = subprocess.Popen(
        [sys.executable, "-m", "iresnet_onnx", "inspect", export_dir, "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    process.stdout.close()  # the reader is gone before the first line (`| head -0`)
    _, stderr = process.communicate(timeout=3600)
    assert process.returncode == 141, stderr
    assert b"Broken pipe" not in stderr and b"Traceback" not in stderr


@pytest.mark.slow  # real processes, 10–15 s: `make test` runs it
def test_ctrl_c_during_an_export_exits_130_and_keeps_the_good_export(tmp_path):
    model = make_model(8, 3, activation="ELU")
    save_checkpoint(model, tmp_path / "model.pt")
    out = tmp_path / "export"
    assert subprocess_cli("export", tmp_path / "model.pt", "--out", out).returncode == 0
    good = {p.relative_to(out): sha256(p) for p in sorted(out.rglob("*")) if p.is_file()}
    # the reference evaluator makes validation last seconds: SIGINT lands once the new graphs are
    # written into the hidden folder beside `out`, before the swap
    process = subprocess.Popen(
        [sys.executable, "-m", "iresnet_onnx", "export", tmp_path / "model.pt", "--out", out,
         "--runtime", "onnxruntime:cpu,reference:cpu"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # a Ctrl-C at a terminal: a test run started in the background (nohup, CI) ignores SIGINT,
        # and a child inherits that, so Python would never raise KeyboardInterrupt in it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 3600  # a hang guard, not a speed check
        while not list(tmp_path.glob(".export.*.tmp/inverse.onnx")):
            assert process.poll() is None, "the export ended before it could be interrupted"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=3600)
    finally:
        process.kill()
    assert process.returncode == 130 and "interrupted" in stderr and "Traceback" not in stderr
    assert {p.relative_to(out): sha256(p) for p in sorted(out.rglob("*")) if p.is_file()} == good
    assert not list(tmp_path.glob(".export.*"))


def test_sizes_past_the_bounds_are_bad_input_not_a_crash(cli, export_dir, tmp_path):
    """verify --batch-sizes 10**12 was a MemoryError (exit 3), train --hidden-size 10**12 an
    allocation error (issue 22, item 13)."""
    result = cli(
        "verify", export_dir, "--runtime", "onnxruntime:cpu", "--batch-sizes", "1000000000000"
    )
    assert_clean_failure(result, 2, "batch_sizes must be ints in 1…100,000")
    np.save(tmp_path / "d.npy", np.zeros((8, 2), np.float32))
    result = cli(
        "train", tmp_path / "d.npy", "--out", tmp_path / "r", "--hidden-size", "1000000000000"
    )
    assert_clean_failure(result, 2, "hidden_size must be a positive int up to")


def test_the_parser_offers_the_jobs_policies():
    from iresnet_onnx.cli._parser import NONFINITE
    from iresnet_onnx.jobs._chunks import NONFINITE_POLICIES

    assert set(NONFINITE) == set(NONFINITE_POLICIES)


def test_train_into_an_export_folder_and_bench_past_its_bounds_are_refused(
    cli, export_dir, tmp_path
):
    """train --out onto an export replaced its hashed model.pt (the export then failed its own
    check); bench --batch 1e12 was an internal MemoryError (found by scripts/hostile.py)."""
    np.save(tmp_path / "data.npy", np.random.default_rng(0).standard_normal((64, 4)).astype("f4"))
    before = folder_hashes(export_dir)
    assert_clean_failure(
        cli("train", tmp_path / "data.npy", "--out", export_dir, "--epochs", "1"), 2,
        "is an export folder",
    )  # fmt: skip
    assert folder_hashes(export_dir) == before
    assert_clean_failure(
        cli("bench", export_dir, "--batch", "1000000000000", "--runtime", "onnxruntime:cpu"), 2,
        "batch sizes must lie in 1…100,000",
    )  # fmt: skip


def test_an_export_validated_on_a_runtime_that_cannot_run_it_is_refused_before_any_work(
    cli, checkpoint, tmp_path
):
    """Issue 22, item 6: tract and a loop export was an IndexError (exit 3) and left
    out.rejected/; now exit 2 before a graph is written, naming the reason."""
    out = tmp_path / "out"
    assert_clean_failure(
        cli("export", checkpoint, "--out", out, "--runtime", "onnxruntime:cpu,tract:cpu"), 2,
        "cannot validate the export on tract:cpu", "no ONNX Loop operator",
    )  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    portable = ("--spectral-norm", "folded", "--inverse", "fixed")
    assert (
        cli("export", checkpoint, "--out", out, *portable, "--runtime", "tract:cpu").returncode == 0
    )


def test_train_onto_a_full_disk_and_bench_on_a_changed_export_are_refused(
    cli, export_dir, tmp_path, monkeypatch
):
    """Issue 22 items 4 (train onto a full disk was torch's RuntimeError and an empty folder) and
    10 (bench ran an export whose graph had changed)."""
    from iresnet_onnx.jobs import _sinks

    np.save(tmp_path / "data.npy", np.random.default_rng(0).standard_normal((64, 4)).astype("f4"))
    Usage = type(shutil.disk_usage(tmp_path))
    with monkeypatch.context() as patch:
        patch.setattr(_sinks.shutil, "disk_usage", lambda path: Usage(10**9, 10**9 - 100, 100))
        result = cli("train", tmp_path / "data.npy", "--out", tmp_path / "run", "--epochs", "1")
    assert_clean_failure(result, 2, "no space left on the device")
    assert not (tmp_path / "run").exists()

    changed = tmp_path / "changed"
    shutil.copytree(export_dir, changed)
    graph = changed / "forward.onnx"
    graph.write_bytes(graph.read_bytes() + b"\0")
    assert_clean_failure(cli("bench", changed, "--runtime", "onnxruntime:cpu"), 1, "forward.onnx")
