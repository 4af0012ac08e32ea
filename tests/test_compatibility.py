"""Files written by iresnet-onnx 0.2.0 (before the renovation) keep working: its checkpoints load
and compute what 0.2.0 computed; its export folders load, verify and pass parity
(tests/data/README.md says how they were made)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from iresnet_onnx import iResNet, iResNetBlock, load_checkpoint, parity, runtimes
from iresnet_onnx._golden import verify_golden
from iresnet_onnx._manifest import read_manifest
from iresnet_onnx.cli import main

LEGACY = Path(__file__).parent / "data" / "legacy-0.2.0"


@pytest.fixture(scope="module")
def outputs() -> dict[str, np.ndarray]:
    return dict(np.load(LEGACY / "outputs-0.2.0.npz"))


def test_checkpoints_of_0_2_0_load_and_compute_what_0_2_0_computed(outputs):
    model = load_checkpoint(LEGACY / "iresnet-0.2.0.pt")
    block = load_checkpoint(LEGACY / "block-0.2.0.pt")
    assert isinstance(model, iResNet) and isinstance(block, iResNetBlock)
    # 0.2.0 recorded the module the class lived in then; the HP name where it lives now
    assert model.HP["__module__"] == "iresnet_onnx" and model.HP["nblocks"] == 2
    x, xb = torch.from_numpy(outputs["x"]), torch.from_numpy(outputs["block_x"])
    with torch.no_grad():
        # the same math, possibly another order of float operations: the parity tolerances
        np.testing.assert_allclose(model(x).numpy(), outputs["y"], rtol=0, atol=1e-5)
        np.testing.assert_allclose(model.inverse(x).numpy(), outputs["inverse"], rtol=0, atol=1e-4)
        np.testing.assert_allclose(model.log_prob(x).numpy(), outputs["log_prob"], rtol=0,
                                   atol=1e-4 * max(1.0, float(np.abs(outputs["log_prob"]).max())))  # fmt: skip
        np.testing.assert_allclose(block(xb).numpy(), outputs["block_y"], rtol=0, atol=1e-5)
        np.testing.assert_allclose(block.inverse(xb).numpy(), outputs["block_inverse"], rtol=0,
                                   atol=1e-4)  # fmt: skip


def test_an_export_folder_of_0_2_0_loads_verifies_and_passes_parity(tmp_path, capsys):
    manifest = read_manifest(LEGACY / "export")
    session = runtimes.load(LEGACY / "export" / "inverse.onnx")  # metadata says "direction"
    assert session.graph.name == "inverse" and session.info.nblocks == 2
    golden = verify_golden(LEGACY / "export", manifest, runtimes=["onnxruntime:cpu"])
    assert golden.passed, str(golden)
    model = load_checkpoint(LEGACY / "export" / "model.pt")
    report = parity.check(
        model, LEGACY / "export", runtimes=["onnxruntime:cpu"], batch_sizes=(1, 9)
    )
    assert report.passed, str(report)
    assert main(["inspect", str(LEGACY / "export")]) == 0
    assert "density.onnx" in capsys.readouterr().out
