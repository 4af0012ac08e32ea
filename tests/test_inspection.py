"""inspection: the summary of an export folder or a single graph."""

from iresnet_onnx.inspection import inspect_path, render
from tests.conftest import make_model


def test_folder_and_file(exported):
    result = exported("inspection", make_model(6, 2, variant="mlp"))
    info = inspect_path(result.out_dir)
    assert set(info["graphs"]) == {"forward.onnx", "inverse.onnx"}
    assert info["hashes"] == {"forward.onnx": "ok", "inverse.onnx": "ok", "model.pt": "ok"}
    forward = info["graphs"]["forward.onnx"]
    # one Loop node, in the SpectralNorm function, called once per weight shape (mlp: two shapes)
    assert [loop["body"] for loop in forward["loops"]] == ["power_iteration"]
    assert forward["op_counts"]["iresnet_onnx.SpectralNorm"] == 2
    text = render(info)
    assert "Loop nodes: 1" in text and "spectral norm loop" in text and "validation: passed" in text
    single = inspect_path(result.inverse)
    assert list(single["graphs"]) == ["inverse.onnx"] and "manifest" not in single
    assert "x: float32[batch, 6]" in render(single)
