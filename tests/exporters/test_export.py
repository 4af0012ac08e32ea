"""export(): the folder it writes, its manifest, float64, a single block, validation and bad arguments."""

import dataclasses
import json
import threading

import numpy as np
import onnx
import pytest
import torch

from iresnet_onnx import export, iResNet, iResNetBlock, load_checkpoint, runtimes
from iresnet_onnx._manifest import read_manifest, sha256, verify_hashes
from iresnet_onnx._structure import ACTIVATIONS
from iresnet_onnx.errors import ExportError, ParityError
from tests.conftest import make_model


def test_export_folder_and_manifest(exported):
    model = make_model(8, 2)
    result = exported("manifest", model)
    assert sorted(p.name for p in result.out_dir.iterdir()) == [
        "density.onnx", "forward.onnx", "golden", "inverse.onnx", "manifest.json", "model.pt"
    ]  # fmt: skip
    manifest = read_manifest(result.out_dir)
    assert manifest["opset"] == 18 and manifest["spectral_norm"] == "loop"
    assert manifest["hp"]["nblocks"] == 2 and manifest["input_size"] == 8
    assert {"torch", "onnx", "onnx-ir", "onnxruntime", "numpy"} <= set(manifest["versions"])
    for name in ("forward.onnx", "inverse.onnx", "model.pt"):
        assert manifest["files"][name]["sha256"] == sha256(result.out_dir / name)
    assert verify_hashes(result.out_dir, manifest) == dict.fromkeys(manifest["files"], "ok")
    assert manifest["validation"]["passed"] is True
    assert {row["shape"][0] for row in manifest["validation"]["rows"]} == {1, 7, 257, 2}
    # inline: the power iteration, and per block a K-step Loop and a Loop for the rest of maxiter
    assert manifest["graphs"]["inverse.onnx"]["op_counts"]["Loop"] == 1 + 2 * 2
    assert json.loads(json.dumps(result.report.to_dict())) == manifest["validation"]
    # the folder is self-contained: its checkpoint reproduces the model
    restored = load_checkpoint(result.checkpoint)
    x = torch.randn(3, 8)
    with torch.no_grad():
        assert torch.equal(restored(x), model(x))


def test_tampered_file_is_reported_by_the_hashes(exported, tmp_path):
    result = exported("hashes", make_model(4, 1))
    manifest = read_manifest(result.out_dir)
    proto = onnx.load(result.inverse)
    proto.doc_string = "edited"
    onnx.save(proto, result.inverse)
    (result.out_dir / "model.pt").unlink()
    status = verify_hashes(result.out_dir, manifest)
    graphs = {name: state for name, state in status.items() if not name.startswith("golden/")}
    assert graphs == {
        "forward.onnx": "ok", "inverse.onnx": "modified", "density.onnx": "ok", "model.pt": "missing"
    }  # fmt: skip
    assert {state for name, state in status.items() if name.startswith("golden/")} == {"ok"}


def test_single_block_export(tmp_path):
    torch.manual_seed(0)
    block = iResNetBlock(5, variant="mlp", activation="Tanh").eval()
    result = export(block, tmp_path)
    assert result.report.passed
    session = runtimes.load(result.inverse)
    y = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    assert session.run_all(y)["iterations"].shape == (1,)


@pytest.mark.parametrize("activation", ["ELU", "Tanh", "LeakyReLU", "Softplus"])
def test_float64_export(tmp_path, activation):
    model = make_model(6, 2, activation=activation, dtype=torch.float64)
    result = export(model, tmp_path)
    assert result.report.passed and result.report.dtype == "float64"
    assert max(row.max_abs for row in result.report.rows if row.check == "forward") < 1e-12


def test_float64_without_an_onnx_kernel_is_a_clear_error(tmp_path):
    model = make_model(4, 1, activation="CELU", dtype=torch.float64)
    with pytest.raises(ExportError, match="forward.onnx"):
        export(model, tmp_path)


def test_validation_miss_is_a_parity_error_and_keeps_the_good_export(tmp_path, monkeypatch):
    out = tmp_path / "export"
    export(make_model(6, 1), out)
    good = folder_hashes(out)
    # a wrong activation mapping (0.5-leaky instead of ReLU) makes the graphs disagree with eager
    leaky = dataclasses.replace(
        ACTIVATIONS["ReLU"], onnx_op="LeakyRelu", onnx_attributes=(("alpha", 0.5),)
    )
    monkeypatch.setitem(ACTIVATIONS, "ReLU", leaky)
    with pytest.raises(ParityError, match=r"onnxruntime:cpu forward on \[1, 6\]: max\|Δ\|"):
        export(make_model(6, 1, seed=3), out)
    assert folder_hashes(out) == good  # the good export is untouched
    rejected = tmp_path / "export.rejected"  # the bad one is set aside, for inspection
    assert read_manifest(rejected)["validation"]["passed"] is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export", "export.rejected"]


def folder_hashes(folder):
    return {
        str(path.relative_to(folder)): sha256(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_failed_export_leaves_the_good_one(tmp_path):
    out = tmp_path / "export"
    export(make_model(5, 1), out)
    good = folder_hashes(out)
    broken = make_model(5, 1, seed=2)
    with torch.no_grad():
        broken.blocks[0].bottleneck[0].weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"blocks\.0\.bottleneck\.0\.weight contains NaN"):
        export(broken, out)
    assert folder_hashes(out) == good and sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_interrupted_export_leaves_the_good_one(tmp_path, monkeypatch):
    out = tmp_path / "export"
    export(make_model(5, 1), out)
    good = folder_hashes(out)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C during validation

    monkeypatch.setattr("iresnet_onnx.parity.check", interrupt)
    with pytest.raises(KeyboardInterrupt):
        export(make_model(5, 1, seed=4), out)
    assert folder_hashes(out) == good and sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_racing_exports_never_mix_files(tmp_path):
    out = tmp_path / "export"
    models = [make_model(5, 1, seed=seed) for seed in range(4)]
    errors = []

    def run(model):
        try:
            export(model, out, validate=False)
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(model,)) for model in models]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    manifest = read_manifest(out)
    assert set(verify_hashes(out, manifest).values()) == {"ok"}  # one export, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_export_refuses_to_replace_a_folder_that_is_not_an_export(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="refusing to replace"):
        export(make_model(4, 1), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize(
    ("model", "kwargs", "error", "message"),
    [
        (torch.nn.Linear(3, 3), {}, TypeError, "iResNet or iResNetBlock, got Linear"),
        (None, {"spectral_norm": "unrolled"}, ValueError, "unknown spectral_norm mode 'unrolled'"),
        (None, {"opset": 16}, ValueError, "opset 16 is not supported; choose 17–21"),
        (None, {"opset": 22}, ValueError, "opset 22 is not supported"),
        (
            iResNet(3, nblocks=1).half(),
            {},
            ValueError,
            "float32 and float64 models, got torch.float16",
        ),
    ],
)
def test_bad_arguments(tmp_path, model, kwargs, error, message):
    with pytest.raises(error, match=message):
        export(model if model is not None else iResNet(3, nblocks=1), tmp_path, **kwargs)


def test_outputs_follow_the_umask(tmp_path):
    """Temporary files and folders are private (0600, 0700) until they are renamed into place;
    the outputs then get what the umask gives any new file (issue 22, item 12)."""
    import os

    previous = os.umask(0o022)
    try:
        export(make_model(3, 1), tmp_path / "out", validate=False)
    finally:
        os.umask(previous)
    out = tmp_path / "out"
    assert oct(out.stat().st_mode & 0o777) == oct(0o755)
    for name in ("model.pt", "manifest.json", "forward.onnx"):
        assert oct((out / name).stat().st_mode & 0o777) == oct(0o644), name
