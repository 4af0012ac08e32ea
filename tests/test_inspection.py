"""inspection: the summary of an export folder or a single graph."""

from iresnet_onnx._inspect import inspect_path, render
from tests.conftest import make_model


def test_folder_and_file(exported):
    result = exported("inspection", make_model(6, 2, variant="mlp"))
    info = inspect_path(result.out_dir)
    assert set(info["graphs"]) == {"forward.onnx", "inverse.onnx", "density.onnx"}  # all three
    assert {"forward.onnx", "inverse.onnx", "model.pt"} <= set(info["hashes"])
    assert set(info["hashes"].values()) == {"ok"}
    assert any(name.startswith("golden/inverse/") for name in info["hashes"])
    forward = info["graphs"]["forward.onnx"]
    # one power-iteration Loop per weight shape (mlp: two shapes), inline, named by where it is
    # (the then branch of the If that runs it for a stale warm start)
    loops = forward["loops"]
    assert [loop["body"] for loop in loops] == ["power_iteration", "power_iteration"]
    assert [loop["node"].split("/")[:4] for loop in loops] == [
        [f"spectral_norm.{i}", "stale_warm_start", "then", "SpectralNorm"] for i in (0, 1)
    ]
    assert forward["functions"] == [] and not any("." in op for op in forward["op_counts"])
    text = render(info)
    assert "Loop nodes: 2" in text and "spectral norm loop" in text and "validation: passed" in text
    assert "functions: none (plain standard-domain nodes)" in text
    single = inspect_path(result.inverse)
    assert list(single["graphs"]) == ["inverse.onnx"] and "manifest" not in single
    assert "x: float32[batch, 6]" in render(single)


def test_a_manifest_tolerance_of_zero_renders(exported):
    """inspect divided by each row's tolerance: 0 in a hand-edited manifest was exit 3."""
    result = exported("inspection", make_model(6, 2, variant="mlp"))
    info = inspect_path(result.out_dir)
    info["manifest"]["validation"]["rows"][0]["tolerance"] = 0.0
    assert "worst error inf of its tolerance" in render(info)
