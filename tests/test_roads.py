"""The roads engineers take around the package stay exact, or refuse loudly: a simplified graph, an
fp16 conversion, OpenVINO IR, the version converter on functions, PyTorch's legacy exporter —
each checked against the export's golden vectors with ``verify --golden --graph``."""

import json
import shutil

import numpy as np
import onnx
import pytest
import torch

from iresnet_onnx import export, runtimes
from iresnet_onnx.cli import main
from iresnet_onnx.errors import InvalidModelError, UsageError
from tests.conftest import make_model

WIDTH = 6


@pytest.fixture(scope="module")
def model():
    return make_model(WIDTH, 2, variant="mlp", activation="Tanh", seed=21)


@pytest.fixture(scope="module")
def export_dir(exported, model):
    return exported("roads", model).out_dir


def verify_graph(capsys, export_dir, graph, runtime="onnxruntime:cpu"):
    capsys.readouterr()
    code = main(["verify", str(export_dir), "--golden", "--graph", str(graph),
                 "--runtime", runtime, "--json"])  # fmt: skip
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def test_a_simplified_inverse_passes_and_refuses_the_inputs_it_folded(capsys, export_dir, tmp_path):
    onnxslim = pytest.importorskip("onnxslim")
    simplified = tmp_path / "inverse.slim.onnx"
    onnx.save(onnxslim.slim(onnx.load(export_dir / "inverse.onnx")), simplified)
    code, report, err = verify_graph(capsys, export_dir, simplified)
    assert code == 0, err
    assert {row["tensor"] for row in report["parity"]["rows"]} == {"x"}
    session = runtimes.load(simplified)
    assert session.info.solver_inputs == ()  # onnxslim folds maxiter, atol and rtol
    with pytest.raises(UsageError, match=r"takes no input atol: a tool folded it .*maxiter=100"):
        session.run(np.ones((2, WIDTH), np.float32), atol=1e-3)
    assert main(["inspect", str(simplified)]) == 0
    assert "solver inputs: none — folded into the graph" in capsys.readouterr().out


def test_an_fp16_forward_fails_with_its_measured_error(capsys, export_dir, tmp_path):
    float16 = pytest.importorskip("onnxconverter_common.float16")
    for keep_io_types in (False, True):
        converted = tmp_path / f"forward.fp16-{keep_io_types}.onnx"
        proto = float16.convert_float_to_float16(
            onnx.load(export_dir / "forward.onnx"), keep_io_types=keep_io_types
        )
        onnx.save(proto, converted)
        code, report, err = verify_graph(capsys, export_dir, converted)
        assert code == 1, err  # a failed verification, never a crash
        rows = report["parity"]["rows"]
        assert rows and not any(row["passed"] for row in rows)
        assert all(row["tolerance"] < row["max_abs"] < 1e-1 for row in rows)
        assert "max|Δ|" in err and "tolerance" in err


@pytest.mark.slow
def test_openvino_ir_at_full_precision_passes_where_the_default_converter_fails(
    capsys, model, tmp_path
):
    pytest.importorskip("openvino")
    import openvino as ov

    result = export(model, tmp_path / "ir", openvino_ir=True)
    assert result.report.passed
    assert any(row.runtime == "openvino:cpu (IR)" for row in result.report.rows)
    assert {"forward.xml", "forward.bin", "inverse.xml"} <= set(result.manifest["graphs"]) | {
        path.name for path in result.paths.values()
    }
    session = runtimes.load(tmp_path / "ir" / "inverse.xml", "openvino")
    assert session.run_all(np.ones((2, WIDTH), np.float32), maxiter=3)["iterations"].tolist() == [
        3,
        3,
    ]
    code, _, err = verify_graph(
        capsys, tmp_path / "ir", tmp_path / "ir" / "forward.xml", "openvino:cpu"
    )
    assert code == 0, err
    default = ov.convert_model(str(tmp_path / "ir" / "forward.onnx"))
    ov.save_model(default, str(tmp_path / "forward.default.xml"))  # what ovc does: fp16 weights
    code, _, err = verify_graph(
        capsys, tmp_path / "ir", tmp_path / "forward.default.xml", "openvino:cpu"
    )
    assert code == 1 and "forward" in err
    # the inverse's x may land within its tolerance (the K-step widening is wide): the fp16
    # weights fail it all the same
    default = ov.convert_model(str(tmp_path / "ir" / "inverse.onnx"))
    ov.save_model(default, str(tmp_path / "inverse.default.xml"))
    code, report, err = verify_graph(
        capsys, tmp_path / "ir", tmp_path / "inverse.default.xml", "openvino:cpu"
    )
    assert code == 1 and "holds weights below float32" in err
    assert any("float16 tensors" in problem for problem in report["problems"])


def test_a_float64_model_gets_no_openvino_ir(tmp_path):
    with pytest.raises(UsageError, match="float32 at most"):
        export(make_model(3, 1, dtype=torch.float64), tmp_path / "x", openvino_ir=True)


def test_lost_function_bodies_are_explained(tmp_path):
    export(make_model(4, 1), tmp_path / "f", functions=True, validate=False)
    converted = onnx.version_converter.convert_version(
        onnx.load(tmp_path / "f" / "forward.onnx"), 19
    )
    onnx.checker.check_model(converted, full_check=True)  # still passes the checker…
    onnx.save(converted, tmp_path / "forward.19.onnx")
    with pytest.raises(InvalidModelError, match="version_converter, which drops function bodies"):
        runtimes.load(tmp_path / "forward.19.onnx")  # …and fails at load, with the reason


def test_the_legacy_exporter_gets_the_forward_right_on_other_batches(tmp_path, model):
    path = tmp_path / "legacy.onnx"
    torch.onnx.export(
        model, (torch.randn(3, WIDTH),), str(path), dynamo=False, input_names=["x"],
        dynamic_axes={"x": {0: "batch"}},
    )  # fmt: skip
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 17):
        x = (5 * np.random.default_rng(batch).standard_normal((batch, WIDTH))).astype(np.float32)
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(session.run(None, {"x": x})[0], expected, rtol=0, atol=1e-5)


def test_a_graph_the_golden_vectors_cannot_place_is_bad_input(capsys, export_dir, tmp_path):
    stranger = tmp_path / "mystery.onnx"
    proto = onnx.load(export_dir / "forward.onnx")
    del proto.metadata_props[:]
    onnx.save(proto, stranger)
    args = ["verify", str(export_dir), "--golden", "--runtime", "onnxruntime:cpu", "--graph"]
    assert main([*args, str(stranger)]) == 2
    assert "cannot tell which graph it is" in capsys.readouterr().err
    renamed = tmp_path / "forward.renamed.onnx"  # the name says: checked as forward.onnx
    shutil.copy(stranger, renamed)
    assert main([*args, str(renamed)]) == 0


def test_a_graph_that_loads_but_cannot_run_a_case_fails_verification(capsys, export_dir, tmp_path):
    static = tmp_path / "forward.static.onnx"  # the legacy exporter without dynamic_axes
    torch.onnx.export(make_model(WIDTH, 1), (torch.randn(3, WIDTH),), str(static), dynamo=False,
                      input_names=["x"])  # fmt: skip
    code, report, err = verify_graph(capsys, export_dir, static)
    assert code == 1, err  # a failed verification (was exit 3, "internal error")
    assert "cannot run forward.static.onnx on its golden cases" in err
    assert report["passed"] is False


def test_a_float32_graph_fails_against_a_float64_export(capsys, exported, export_dir, tmp_path):
    wide = exported("roads64", make_model(WIDTH, 2, dtype=torch.float64, seed=21)).out_dir
    code, report, err = verify_graph(capsys, wide, export_dir / "inverse.onnx")
    assert code == 1, err
    assert "inverse.onnx takes float32 input; the export is float64" in report["problems"]
