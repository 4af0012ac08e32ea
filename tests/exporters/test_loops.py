"""The Loops are live: they stop on their data-dependent conditions, exactly as eager PyTorch does."""

import copy
import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from iresnet_onnx import LinearContraction, runtimes
from iresnet_onnx.errors import ConvergenceWarning
from tests.conftest import make_model

RUNTIMES = ["onnxruntime:cpu", "reference:cpu"]


@pytest.fixture(scope="module")
def model_and_export(exported):
    model = make_model(12, 3, activation="ELU")
    return model, exported("loops", model, steps_per_check=1)  # eager's exact step counts


def open_session(path, name):
    return runtimes.load(path, *runtimes.parse_runtime(name))


@pytest.mark.parametrize("name", RUNTIMES)
def test_run_time_solver_inputs(model_and_export, name):
    model, result = model_and_export
    session = open_session(result.inverse, name)
    y = np.random.default_rng(0).standard_normal((9, 12)).astype(np.float32)

    one = session.run_all(y, maxiter=1)
    assert one["iterations"].tolist() == [1, 1, 1]
    assert (one["residual"] > 1e-6).all()

    default = session.run_all(y)
    omitted_equals_explicit = session.run_all(y, maxiter=100, atol=1e-6, rtol=1e-5)
    for key in ("x", "iterations", "residual"):
        np.testing.assert_array_equal(default[key], omitted_equals_explicit[key])
    loose = session.run_all(y, atol=1e-2, rtol=0.0)
    assert (loose["iterations"] < default["iterations"]).all()
    assert (loose["residual"] <= 1e-2).all() and (default["residual"] <= 1e-6).all()

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for solver in ({"maxiter": 1}, {"atol": 1e-2, "rtol": 0.0}):
            eager_x = model.inverse(
                torch.from_numpy(y), solver.get("maxiter"), solver.get("atol"), solver.get("rtol")
            )
            eager_steps = [int(b.iterations) for b in model.blocks]
            onnx_run = session.run_all(y, **solver)
            assert onnx_run["iterations"].tolist() == eager_steps
            np.testing.assert_allclose(onnx_run["x"], eager_x.numpy(), rtol=0, atol=1e-5)


def edit_initializer(path, out_path, name, factor):
    proto = onnx.load(path)
    for initializer in proto.graph.initializer:
        if initializer.name == name:
            array = numpy_helper.to_array(initializer) * factor
            initializer.CopyFrom(numpy_helper.from_array(array.astype(np.float32), name))
    onnx.save(proto, out_path)


@pytest.mark.parametrize("name", RUNTIMES)
def test_scaled_weight_is_renormalised_in_loop_mode_only(exported, tmp_path, name):
    model = make_model(10, 1, activation="ReLU", variant="lowrank")
    loop = exported("live-loop", model)
    folded = exported("live-folded", model, spectral_norm="folded")
    x = np.random.default_rng(1).standard_normal((5, 10)).astype(np.float32)
    with torch.no_grad():
        reference = model(torch.from_numpy(x)).numpy()
        edited_model = make_model(10, 1, activation="ReLU", variant="lowrank")
        edited_model.blocks[0].bottleneck[1].weight.mul_(10.0)
        expected_after_edit = edited_model(torch.from_numpy(x)).numpy()
    # A′ = A·c/σ(A) is invariant under A → 10A: the in-graph σ must follow the edit
    np.testing.assert_allclose(expected_after_edit, reference, rtol=1e-5, atol=1e-5)

    edit_initializer(loop.forward, tmp_path / "loop.onnx", "blocks.0.bottleneck.1.weight", 10.0)
    y_loop = open_session(tmp_path / "loop.onnx", name).run(x)
    np.testing.assert_allclose(y_loop, reference, rtol=1e-5, atol=1e-5)

    edit_initializer(
        folded.forward, tmp_path / "folded.onnx", "blocks.0.bottleneck.1.effective_weight", 10.0
    )
    y_folded = open_session(tmp_path / "folded.onnx", name).run(x)
    assert np.abs(y_folded - reference).max() > 1.0  # baked A′ is used as is


@pytest.mark.parametrize("name", RUNTIMES)
def test_stale_warm_start_makes_the_power_loop_iterate_like_eager(exported, name):
    """After an optimiser step the stored vectors lag the weights: the Loop must really iterate."""
    model = make_model(16, 2, variant="mlp", activation="Tanh", scale=1.0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    frozen = copy.deepcopy(model)  # the same model with its power iteration cut to zero updates
    for layer in frozen.modules():
        if isinstance(layer, LinearContraction):
            layer.power_maxiter = 0
    x = np.random.default_rng(2).standard_normal((4, 16)).astype(np.float32)
    with torch.no_grad():
        reference = model(torch.from_numpy(x)).numpy()
        without_updates = frozen(torch.from_numpy(x)).numpy()
    assert np.abs(without_updates - reference).max() > 1e-4  # the updates matter here

    result = exported("stale", model)
    np.testing.assert_allclose(
        open_session(result.forward, name).run(x), reference, rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize(
    "name",
    [*RUNTIMES, pytest.param("openvino:cpu", marks=pytest.mark.skipif(
        "openvino:cpu" not in runtimes.available(), reason="OpenVINO is not installed here"
    ))],
)  # fmt: skip
def test_steps_per_check_tests_every_k_steps(exported, name):
    model = make_model(12, 3, activation="ELU")
    result = exported("k4", model, steps_per_check=4)
    bodies = [
        node.attribute[0].g
        for node in onnx.load(result.inverse).graph.node
        if node.op_type == "Loop" and node.attribute[0].g.name == "fixed_point"
    ]
    assert len(bodies) == 3  # one per block
    for body in bodies:  # four steps (Gemm, Gemm, Elu each), one test: rows' residuals, any left
        assert sum(node.op_type == "Elu" for node in body.node) == 4
        assert sum(node.op_type == "ReduceMax" for node in body.node) == 2

    y = np.random.default_rng(3).standard_normal((6, 12)).astype(np.float32)
    run = open_session(result.inverse, name).run_all(y)
    with torch.no_grad():
        eager_x = model.inverse(torch.from_numpy(y))
    eager_steps = np.array([int(b.iterations) for b in model.blocks])
    assert (run["iterations"] % 4 == 0).all()
    assert (run["iterations"] >= eager_steps).all() and (run["iterations"] < eager_steps + 4).all()
    assert (run["residual"] <= 1e-6).all()
    np.testing.assert_allclose(run["x"], eager_x.numpy(), rtol=0, atol=1e-4)
    # maxiter is never exceeded: the rest of it runs one step at a time (all of it where
    # maxiter < K: the first K steps, outside the Loops, are dropped then; the K-step Loop runs
    # zero trips, and its carried values must come out as they went in)
    session = open_session(result.inverse, name)
    for rows in (y, y[2:3]):
        for maxiter, atol in ((3, 0.0), (4, 0.0), (5, None), (9, 0.0)):
            capped = session.run_all(
                rows, maxiter=maxiter, **({} if atol is None else {"atol": atol})
            )
            assert capped["iterations"].tolist() == [maxiter] * 3
            assert (capped["residual"] > 0).all()  # measured, not left over


@pytest.mark.parametrize("bad", [0, 65, 2.5, True])
def test_bad_steps_per_check(tmp_path, bad):
    from iresnet_onnx import export

    with pytest.raises(ValueError, match="steps_per_check must be an int in 1–64"):
        export(make_model(4, 1), tmp_path, steps_per_check=bad)
