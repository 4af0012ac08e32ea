"""The runtime-only install: load, run and verify an export with numpy and a runtime, no torch.

CI runs this file a second time in an environment with numpy + onnxruntime only (``make
test-edge``); there ``IRESNET_ONNX_EDGE=1`` and torch must not be importable.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from iresnet_onnx import runtimes
from iresnet_onnx.cli import main
from iresnet_onnx.errors import ConvergenceWarning

EDGE = os.environ.get("IRESNET_ONNX_EDGE") == "1"


def in_process_runtimes() -> list[str]:
    """The runtimes here but Node.js and Chromium (tests/conftest.py's CHILD_PROCESS_RUNTIMES:
    that module imports torch, which the edge environment lacks)."""
    return [name for name in runtimes.available() if name.partition(":")[0] not in ("node", "web")]


def cli(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.skipif(not EDGE, reason="only the runtime-only environment lacks torch")
def test_this_environment_has_no_torch():
    assert importlib.util.find_spec("torch") is None


def test_importing_the_runtimes_loads_neither_torch_nor_onnx():
    code = (
        "import sys, iresnet_onnx.runtimes, iresnet_onnx.cli, iresnet_onnx._golden;"
        "print(sorted(m for m in ('torch', 'onnx', 'onnxruntime') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=3600, check=True
    )
    assert result.stdout.strip() == "[]"


def test_sessions_run_every_graph(edge_exports):
    x = np.random.default_rng(0).standard_normal((5, 6)).astype(np.float32)
    for folder in edge_exports.values():
        y = runtimes.load(folder / "forward.onnx", "onnxruntime:cpu").run(x)
        inverse = runtimes.load(folder / "inverse.onnx", "onnxruntime:cpu")
        np.testing.assert_allclose(inverse.run(y), x, rtol=0, atol=1e-4)
        assert inverse.run_all(y, maxiter=2)["iterations"].tolist() == [2, 2, 2]
    ort_file = edge_exports["portable"] / "inverse.ort"
    np.testing.assert_allclose(runtimes.load(ort_file).run(y), x, rtol=0, atol=1e-4)
    with pytest.warns(ConvergenceWarning):
        inverse.run(y, maxiter=1)


def test_inspect(edge_exports, capsys):
    code, out, _ = cli(capsys, "inspect", edge_exports["loop"])
    assert code == 0 and "Loop nodes" in out and "golden/forward/test_data_set_0/input_0.pb" in out


@pytest.mark.parametrize("kind", ["loop", "portable"])
def test_verify_golden_passes(edge_exports, capsys, kind):
    # the edge environment verifies on every runtime it has, Node.js and Chromium included; the
    # full one on the in-process runtimes, torch's eager model too (the JS ones would repeat the
    # edge's run, a child process or page load each)
    expected = set(runtimes.available() if EDGE else in_process_runtimes())
    if kind == "loop":
        expected.discard("tract:cpu")  # tract runs no Loop: without --runtime a note, not a row
    chosen = [] if EDGE else ["--runtime", ",".join(sorted(expected))]
    code, out, err = cli(capsys, "verify", edge_exports[kind], "--golden", "--json", *chosen)
    assert code == 0 and "warning" not in err, err
    report = json.loads(out)
    assert report["passed"] and set(report["hashes"].values()) == {"ok"}
    rows = report["parity"]["rows"]
    assert {row["check"] for row in rows} == {"forward", "inverse", "density"}
    assert {row["runtime"] for row in rows} == expected
    assert {row["case"] for row in rows} >= {"golden/inverse/test_data_set_2"}


def test_a_tampered_output_vector_fails_naming_it(edge_exports, capsys, tmp_path):
    folder = tmp_path / "tampered"
    folder.mkdir()
    for path in edge_exports["loop"].rglob("*"):
        if path.is_file():
            target = folder / path.relative_to(edge_exports["loop"])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    vector = folder / "golden" / "inverse" / "test_data_set_1" / "output_0.pb"
    tensor = onnx.load_tensor_from_string(vector.read_bytes())
    array = numpy_helper.to_array(tensor).copy()
    array[0, 0] += 0.1
    vector.write_bytes(numpy_helper.from_array(array, tensor.name).SerializeToString())
    code, _, err = cli(capsys, "verify", folder, "--golden", "--runtime", "onnxruntime:cpu")
    assert code == 1
    assert "golden/inverse/test_data_set_1/output_0.pb modified since export" in err
    assert "inverse golden/inverse/test_data_set_1 x on [7, 6]: max|Δ| 0.1" in err


def test_a_tampered_graph_fails(edge_exports, capsys, tmp_path):
    folder = tmp_path / "graph"
    folder.mkdir()
    for path in edge_exports["portable"].rglob("*"):
        if path.is_file():
            target = folder / path.relative_to(edge_exports["portable"])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    proto = onnx.load(folder / "forward.onnx")
    for initializer in proto.graph.initializer:
        if initializer.name.endswith("bias"):
            array = numpy_helper.to_array(initializer) + 0.5
            initializer.CopyFrom(numpy_helper.from_array(array, initializer.name))
            break
    onnx.save(proto, folder / "forward.onnx")
    code, _, err = cli(capsys, "verify", folder, "--golden", "--runtime", "onnxruntime:cpu")
    assert code == 1 and "forward.onnx modified since export" in err and "forward golden" in err


@pytest.mark.skipif(not EDGE, reason="torch is here")
def test_what_needs_torch_says_which_extra(edge_exports, capsys):
    code, _, err = cli(capsys, "verify", edge_exports["loop"])
    assert code == 2 and "pip install 'iresnet-onnx[torch]'" in err
    with pytest.raises(ImportError, match=r"\[torch\] extra"):
        from iresnet_onnx import iResNet  # noqa: F401
    names = runtimes.available()  # Node.js and Chromium may be here too; torch is not
    assert {"onnxruntime:cpu", "reference:cpu"} <= set(names)
    assert not any(name.startswith("torch:") for name in names)


def test_import_time_is_close_to_the_runtime_itself():
    """Not a timing assertion: the import must not pull in torch (see the import-time benchmark,
    scripts/import_time.py, for the numbers)."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import iresnet_onnx.runtimes"],
        capture_output=True, text=True, timeout=3600, check=True,
    )  # fmt: skip
    modules = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert not {m for m in modules if m.split(".")[0] in ("torch", "onnx", "onnxruntime")}
    assert Path(result.args[0]).exists()


def test_score_without_torch_reproduces_the_golden_log_probs(edge_exports, capsys, tmp_path):
    from iresnet_onnx._golden import read_case

    rows, outputs = read_case(
        edge_exports["loop"] / "golden" / "density" / "test_data_set_2", "density"
    )
    np.save(tmp_path / "rows.npy", rows)
    code, out, err = cli(
        capsys, "score", edge_exports["loop"], tmp_path / "rows.npy", "--out", tmp_path / "s.npy"
    )
    assert code == 0, err
    assert "scored 64 rows" in out
    np.testing.assert_allclose(np.load(tmp_path / "s.npy"), outputs["log_prob"], atol=1e-4)


def copy_folder(source: Path, target: Path) -> Path:
    for path in source.rglob("*"):
        if path.is_file():
            destination = target / path.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(path.read_bytes())
    return target


@pytest.mark.parametrize("name", ["input_0.pb", "output_0.pb"])
def test_a_missing_golden_file_is_a_failed_verification_naming_it(
    edge_exports, capsys, tmp_path, name
):
    folder = copy_folder(edge_exports["loop"], tmp_path / "missing")
    (folder / "golden" / "forward" / "test_data_set_1" / name).unlink()
    code, _, err = cli(capsys, "verify", folder, "--golden", "--runtime", "onnxruntime:cpu")
    assert code == 1, err
    assert f"golden/forward/test_data_set_1/{name}" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.update(dtype="float16"), "dtype 'float16'"),
        (lambda m: m["golden"].pop("solver"), "golden.solver must hold"),
        (lambda m: m["golden"].update(graphs=["forward"]), "golden.graphs must map"),
        (lambda m: m["golden"]["graphs"].update(forward=["../elsewhere"]), "inside the export"),
    ],
    ids=["dtype", "no-solver", "graphs-list", "outside"],
)
def test_a_malformed_golden_manifest_is_bad_input(edge_exports, capsys, tmp_path, edit, message):
    folder = copy_folder(edge_exports["loop"], tmp_path / "manifest")
    manifest = json.loads((folder / "manifest.json").read_text())
    edit(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = cli(capsys, "verify", folder, "--golden", "--runtime", "onnxruntime:cpu")
    assert code == 2 and message in err, err


def test_a_case_folder_that_is_not_there_fails_naming_it(edge_exports, capsys, tmp_path):
    folder = copy_folder(edge_exports["loop"], tmp_path / "case")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["golden"]["graphs"]["forward"].append("golden/forward/test_data_set_9")
    (folder / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = cli(capsys, "verify", folder, "--golden", "--runtime", "onnxruntime:cpu")
    assert code == 1 and "golden/forward/test_data_set_9/input_0.pb is missing" in err, err
