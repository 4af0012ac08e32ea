"""check / assert_parity: a tampered graph fails, the report is JSON-ready, errors are typed."""

import json
import shutil

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from iresnet_onnx import export, runtimes
from iresnet_onnx.errors import InvalidModelError, ParityError, RuntimeUnavailableError
from iresnet_onnx.parity import assert_parity, check
from tests.conftest import make_model, stale_power_vectors
from tests.parity import mutations


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
    assert report.passed and len(report.rows) == 2 * 2 * 6  # runtimes × shapes × rows
    data = json.loads(json.dumps(report.to_dict()))
    assert data["passed"] is True and data["dtype"] == "float32"
    checks = {row["check"] for row in data["rows"]}
    assert checks == {"forward", "inverse", "capped", "roundtrip", "density", "jacobian"}
    for row in report.rows:
        if row.check == "capped":  # atol = rtol = 0, maxiter 3: exactly three steps each
            assert row.iterations == row.eager_iterations == [3, 3]
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
    assert {row.check for row in report.failures} >= {"forward", "inverse"}
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
    model = make_model(5, 2, dtype=torch.float64)
    export(model, tmp_path, validate=False, steps_per_check=1)
    report = check(model, tmp_path, runtimes=["onnxruntime:cpu"], batch_sizes=(4,))
    assert report.passed and report.tolerances["forward"] == 1e-12
    assert max(row.max_abs for row in report.rows) < 1e-9
    np.testing.assert_array_equal(
        next(row.iterations for row in report.rows if row.check == "inverse"),
        next(row.eager_iterations for row in report.rows if row.check == "inverse"),
    )


# The parity suite must be able to fail: each mutation edits an exported graph the way an exporter
# bug would. A float32 model at atol = 1e-6 stops at rounding level (see parity's docstring), so
# these models use tolerances that a wrong stopping rule visibly violates, and float64.

MUTATION_MODELS = {
    "float32": lambda: make_model(8, 3, activation="ReLU", atol=1e-4, rtol=0.0, seed=5),
    "float64": lambda: make_model(17, 3, variant="mlp", activation="Tanh", dtype=torch.float64),
}


@pytest.fixture(scope="module", params=sorted(MUTATION_MODELS))
def mutation_base(request, tmp_path_factory):
    model = MUTATION_MODELS[request.param]()
    out = tmp_path_factory.mktemp(f"mutation-{request.param}")
    # eager's exact step counts: with K > 1 a stopping rule off by 2× hides inside the K-step turns
    export(model, out, validate=False, steps_per_check=1)
    report = check(model, out, runtimes=["onnxruntime:cpu", "reference:cpu"], batch_sizes=(1, 40))
    assert report.passed, str(report)  # unmutated, the same check passes
    return model, out


MUTATIONS = {
    # name: (graph, edit, the parity rows that must fail)
    "stop-at-half-atol": ("inverse.onnx", mutations.stop_at_half_atol, {"inverse"}),
    "one-step-short": ("inverse.onnx", mutations.one_step_short, {"capped"}),
    "wrong-activation-forward": ("forward.onnx", mutations.wrong_activation, {"forward"}),
    "wrong-activation-inverse": ("inverse.onnx", mutations.wrong_activation, {"inverse"}),
    "wrong-activation-density": ("density.onnx", mutations.wrong_activation, {"density"}),
    "pivot-not-logged": ("density.onnx", mutations.pivot_not_logged, {"density", "jacobian"}),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
@pytest.mark.parametrize(
    "runtime", ["onnxruntime:cpu", pytest.param("reference:cpu", marks=pytest.mark.slow)]
)
def test_mutated_graph_fails(mutation_base, tmp_path, mutation, runtime):
    model, source = mutation_base
    graph, edit, failing = MUTATIONS[mutation]
    shutil.copytree(source, tmp_path, dirs_exist_ok=True)
    assert mutations.mutate(tmp_path, graph, edit) >= 1
    report = check(model, tmp_path, runtimes=[runtime], batch_sizes=(1, 40))
    assert not report.passed
    assert failing <= {row.check for row in report.failures}, report.table()
    with pytest.raises(ParityError):
        assert_parity(model, tmp_path, runtimes=[runtime], batch_sizes=(1, 40))


def test_skipped_power_iteration_fails_with_stale_warm_starts(tmp_path):
    model = make_model(8, 2, activation="ELU", seed=6)
    stale_power_vectors(model, seed=0)
    export(model, tmp_path, validate=False)
    assert check(model, tmp_path, runtimes=["onnxruntime:cpu"], batch_sizes=(5,)).passed
    assert mutations.mutate(tmp_path, "forward.onnx", mutations.skip_power_iteration) >= 1
    report = check(model, tmp_path, runtimes=["onnxruntime:cpu"], batch_sizes=(5,))
    assert "forward" in {row.check for row in report.failures}, report.table()


@pytest.mark.parametrize("k", [1, 8])
def test_rows_that_run_past_their_own_stop_are_admitted_only_as_far_as_k_allows(k):
    """A graph that tests every K steps stops each row at the first test past its own eager stop:
    up to K − 1 extra steps, each moving x by at most atol + rtol·|x|∞, also where the block's
    slowest row stopped exactly on eager's count (its `iterations` then equal eager's)."""
    from iresnet_onnx._report import ParityRow
    from iresnet_onnx._tolerances import StepRule

    solver, eps = {"maxiter": 100, "atol": 1e-5, "rtol": 0.0}, float(np.finfo(np.float32).eps)
    outcome = {}
    for extra in (k - 1, k):  # how far past their stop the other rows moved x, in steps
        row = ParityRow("r", "inverse", [4, 6], extra * 1e-5, 0.0, 1e-6, True, 0.0)
        outputs = {"iterations": np.array([16]), "residual": np.array([1e-6], np.float32)}
        eager = {"iterations": np.array([16]), "x": np.zeros((4, 6), np.float32),
                 "residual": np.array([1e-6], np.float32)}  # fmt: skip
        StepRule(k, solver, eps).judge(row, outputs, eager, {})
        outcome[extra] = row.passed
    assert outcome == {k - 1: True, k: False}


@pytest.mark.parametrize("batch_sizes", [(0,), (), (-3,), (7, 0)])
def test_batch_sizes_outside_the_bounds_are_refused_by_name(model_and_dir, batch_sizes):
    model, out_dir = model_and_dir
    with pytest.raises(ValueError, match=r"batch_sizes must be ints in 1…100,000"):
        check(model, out_dir, runtimes=["onnxruntime:cpu"], batch_sizes=batch_sizes)
