"""check / assert_parity: a tampered graph fails, the report is JSON-ready, errors are typed."""

import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from iresnet_onnx import runtimes
from iresnet_onnx.errors import InvalidModelError, ParityError, RuntimeUnavailableError
from iresnet_onnx.parity import assert_parity, check
from tests.conftest import make_model


@pytest.fixture(scope="module")
def model_and_dir(exported):
    model = make_model(6, 2, activation="ELU")
    return model, exported("report", model).out_dir


def tamper(src_dir, dst_dir, name, factor):
    for direction in ("forward", "inverse"):
        proto = onnx.load(src_dir / f"{direction}.onnx")
        for initializer in proto.graph.initializer:
            if initializer.name == name:
                array = numpy_helper.to_array(initializer).copy()
                array.flat[0] += factor
                initializer.CopyFrom(numpy_helper.from_array(array, name))
        onnx.save(proto, dst_dir / f"{direction}.onnx")


def test_report_passes_and_serialises(model_and_dir):
    model, out_dir = model_and_dir
    report = check(model, out_dir, runtimes=["onnxruntime:cpu", "reference:cpu"], batch_sizes=(3,))
    assert report.passed and len(report.rows) == 2 * 2 * 3  # runtimes × shapes × directions
    data = json.loads(json.dumps(report.to_dict()))
    assert data["passed"] is True and data["dtype"] == "float32"
    assert {row["direction"] for row in data["rows"]} == {"forward", "inverse", "roundtrip"}
    table = report.table()
    assert "reference:cpu" in table and "roundtrip" in table
    summary = report.summary()
    assert summary["onnxruntime:cpu forward"]["worst_ratio"] < 1.0


@pytest.mark.parametrize("name", ["blocks.1.bottleneck.0.bias", "blocks.0.bottleneck.1.weight"])
def test_tampered_graph_fails(model_and_dir, tmp_path, name):
    model, out_dir = model_and_dir
    tamper(out_dir, tmp_path, name, 0.5)
    report = check(model, tmp_path, runtimes=["onnxruntime:cpu"], batch_sizes=(5,))
    assert not report.passed
    assert {row.direction for row in report.failures} >= {"forward", "inverse"}
    with pytest.raises(ParityError, match=r"parity miss: onnxruntime:cpu forward on \[5, 6\]"):
        assert_parity(model, tmp_path, runtimes=["onnxruntime:cpu"], batch_sizes=(5,))


def test_other_model_fails(model_and_dir):
    _, out_dir = model_and_dir
    stranger = make_model(6, 2, activation="ELU", seed=99)
    assert not check(stranger, out_dir, runtimes=["onnxruntime:cpu"], batch_sizes=(2,)).passed


def test_unavailable_runtime_and_missing_files(model_and_dir, tmp_path):
    model, out_dir = model_and_dir
    if "onnxruntime:cuda" not in runtimes.available():
        with pytest.raises(
            RuntimeUnavailableError, match="onnxruntime:cuda is not available here; available: "
        ):
            check(model, out_dir, runtimes=["onnxruntime:cuda"])
    with pytest.raises(RuntimeUnavailableError, match="unknown runtime"):
        check(model, out_dir, runtimes=["tvm:cpu"])
    with pytest.raises(InvalidModelError, match="forward.onnx: no such file"):
        check(model, tmp_path)


def test_float64_tolerances(tmp_path):
    import torch

    from iresnet_onnx import export

    model = make_model(5, 2, dtype=torch.float64)
    export(model, tmp_path, validate=False)
    report = check(model, tmp_path, runtimes=["onnxruntime:cpu"], batch_sizes=(4,))
    assert report.passed and report.tolerances["forward"] == 1e-12
    assert max(row.max_abs for row in report.rows) < 1e-9
    np.testing.assert_array_equal(
        next(row.iterations for row in report.rows if row.direction == "inverse"),
        next(row.eager_iterations for row in report.rows if row.direction == "inverse"),
    )


def test_empty_batch_is_checked_too(model_and_dir):
    model, out_dir = model_and_dir
    report = check(
        model, out_dir, runtimes=["onnxruntime:cpu"], batch_sizes=(0, 1), leading_dims=False
    )
    assert report.passed and [row.shape for row in report.rows[:3]] == [[0, 6]] * 3
