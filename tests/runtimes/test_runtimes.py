"""One Session interface on every runtime: shapes, dtypes, solver inputs, typed errors, options."""

import os
import shutil
import threading
import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from iresnet_onnx import export, runtimes, save_checkpoint
from iresnet_onnx.errors import (
    CheckpointError,
    ConvergenceWarning,
    InvalidModelError,
    RuntimeUnavailableError,
    UnsupportedModelError,
    UsageError,
)
from iresnet_onnx.parity import check
from tests.conftest import make_model

RUNTIMES = [
    pytest.param(name, marks=pytest.mark.skipif(
        name not in runtimes.available(), reason=f"{name} is not installed here"
    ))
    for name in ("onnxruntime:cpu", "openvino:cpu", "tract:cpu", "reference:cpu", "torch:cpu")
]  # fmt: skip
WIDTH = 8
NBLOCKS = 3
PORTABLE = {"spectral_norm": "folded", "inverse": "fixed"}
"""The export options every runtime runs (tract has no Loop)."""


def export_for(name: str, exports: dict):
    return exports["portable" if name.startswith("tract:") else "loop"]


@pytest.fixture(scope="module")
def model_and_exports(exported):
    model = make_model(WIDTH, NBLOCKS, activation="ELU")
    return model, {
        "loop": exported("runtimes-f32", model),
        "portable": exported("runtimes-f32-portable", model, **PORTABLE),
    }


@pytest.fixture
def model_and_export(request, model_and_exports):
    """The model and the export its test's runtime (parameter ``name``) can run."""
    model, exports = model_and_exports
    callspec = getattr(request.node, "callspec", None)
    name = callspec.params.get("name", "onnxruntime:cpu") if callspec else "onnxruntime:cpu"
    return model, export_for(name, exports)


@pytest.fixture(scope="module")
def export64(exported):
    model = make_model(WIDTH, 2, dtype=torch.float64, seed=1)
    return {
        "loop": exported("runtimes-f64", model),
        "portable": exported("runtimes-f64-portable", model, **PORTABLE),
    }


def open_session(path, name, **options):
    return runtimes.load(path, *runtimes.parse_runtime(name), **options)


def sample(*shape, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# available() and load() of what is not there


def test_available_lists_runtime_device_pairs():
    names = runtimes.available()
    assert {"torch:cpu", "onnxruntime:cpu", "reference:cpu"} <= set(names)
    assert len(names) == len(set(names))
    for name in names:
        runtime, sep, device = name.partition(":")
        assert sep == ":" and device, name
        assert runtime in runtimes.RUNTIMES
    if not torch.cuda.is_available():
        assert not any(name.endswith(":cuda") for name in names)


def test_every_available_name_really_loads_and_runs(model_and_exports):
    _, exports = model_and_exports
    x = sample(4, WIDTH)
    for name in runtimes.available():
        session = open_session(export_for(name, exports).forward, name)
        assert session.name == name
        assert session.run(x).shape == (4, WIDTH)


@pytest.mark.parametrize(
    ("runtime", "device"),
    [
        ("onnxruntime", "cuda"),
        ("onnxruntime", "tensorrt"),
        ("tensorrt", "cpu"),
        ("torch", "cuda"),
        ("reference", "cuda"),
        ("tflite", "cpu"),
    ],
)
def test_unavailable_runtime_is_refused_with_the_list(model_and_export, runtime, device):
    _, result = model_and_export
    if f"{runtime}:{device}" in runtimes.available():
        pytest.skip(f"{runtime}:{device} is available on this machine")
    with pytest.raises(RuntimeUnavailableError) as info:
        runtimes.load(result.forward, runtime, device)
    message = str(info.value)
    assert f"{runtime}:{device}" in message
    for name in runtimes.available():
        assert name in message


def test_unknown_runtime_says_so(model_and_export):
    _, result = model_and_export
    with pytest.raises(RuntimeUnavailableError, match="unknown runtime") as info:
        runtimes.load(result.forward, "tflite")
    for runtime in runtimes.RUNTIMES:
        assert runtime in str(info.value)


# Session.run and run_all


@pytest.mark.parametrize("name", RUNTIMES)
def test_numpy_and_torch_inputs_agree(model_and_export, name):
    _, result = model_and_export
    x = sample(5, WIDTH)
    forward = open_session(result.forward, name)
    inverse = open_session(result.inverse, name)
    y = forward.run(x)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32
    np.testing.assert_array_equal(forward.run(torch.from_numpy(x)), y)
    np.testing.assert_array_equal(forward.run(torch.from_numpy(x).requires_grad_()), y)
    # a non-contiguous view holds the same numbers
    wide = torch.zeros(5, 2 * WIDTH)
    wide[:, ::2] = torch.from_numpy(x)
    assert not wide[:, ::2].is_contiguous()
    np.testing.assert_array_equal(forward.run(wide[:, ::2]), y)
    x_back = inverse.run(y)
    np.testing.assert_array_equal(inverse.run(torch.from_numpy(y)), x_back)
    np.testing.assert_allclose(x_back, x, rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", RUNTIMES)
@pytest.mark.parametrize("shape", [(WIDTH,), (4, WIDTH), (2, 3, WIDTH)])
def test_leading_dims_come_back(model_and_export, name, shape):
    _, result = model_and_export
    x = sample(*shape, seed=3)
    forward = open_session(result.forward, name)
    inverse = open_session(result.inverse, name)
    y = forward.run(x)
    assert y.shape == shape
    flat = forward.run(x.reshape(-1, WIDTH))
    np.testing.assert_allclose(y, flat.reshape(shape), rtol=0, atol=1e-6)
    outputs = inverse.run_all(y)
    assert outputs["x"].shape == shape
    np.testing.assert_allclose(outputs["x"], x, rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", RUNTIMES)
def test_run_all_on_inverse(model_and_export, name):
    model, result = model_and_export
    y = sample(6, WIDTH, seed=4)
    outputs = open_session(result.inverse, name).run_all(y)
    assert set(outputs) == {"x", "iterations", "residual"}
    assert outputs["x"].shape == (6, WIDTH) and outputs["x"].dtype == np.float32
    assert outputs["iterations"].dtype == np.int64
    assert outputs["iterations"].shape == (NBLOCKS,)
    assert (outputs["iterations"] >= 1).all()
    assert outputs["residual"].shape == (NBLOCKS,)
    assert (outputs["residual"] <= model.blocks[0].atol).all()
    with torch.no_grad():
        x = model.inverse(torch.from_numpy(y))
    np.testing.assert_allclose(outputs["x"], x.numpy(), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", RUNTIMES)
def test_forward_run_all_has_only_y(model_and_export, name):
    _, result = model_and_export
    outputs = open_session(result.forward, name).run_all(sample(2, WIDTH))
    assert set(outputs) == {"y"}


@pytest.mark.parametrize("name", RUNTIMES)
@pytest.mark.parametrize("direction", ["forward", "inverse"])
def test_empty_batch(model_and_export, name, direction):
    _, result = model_and_export
    session = open_session(getattr(result, direction), name)
    empty = np.zeros((0, WIDTH), np.float32)
    outputs = session.run_all(empty)
    main = "y" if direction == "forward" else "x"
    assert outputs[main].shape == (0, WIDTH) and outputs[main].dtype == np.float32
    assert session.run(torch.from_numpy(empty)).shape == (0, WIDTH)
    if direction == "inverse":
        assert outputs["iterations"].shape == (NBLOCKS,)
        assert outputs["iterations"].dtype == np.int64


# input validation


@pytest.mark.parametrize("name", RUNTIMES)
@pytest.mark.parametrize(
    ("make_input", "expected", "actual"),
    [
        (lambda: sample(3, WIDTH, dtype=np.float64), "float32", "float64"),
        (lambda: torch.from_numpy(sample(3, WIDTH, dtype=np.float64)), "float32", "float64"),
        (lambda: np.ones((3, WIDTH), np.int64), "float32", "int64"),
        (lambda: torch.ones(3, WIDTH, dtype=torch.int32), "float32", "int32"),
        (lambda: [[1.0] * WIDTH], "float32", "float64"),
    ],
)
def test_wrong_dtype(model_and_export, name, make_input, expected, actual):
    _, result = model_and_export
    session = open_session(result.forward, name)
    with pytest.raises(ValueError, match=rf"expected {expected}.*{actual}"):
        session.run(make_input())


@pytest.mark.parametrize("name", RUNTIMES)
def test_float32_into_float64_graph(export64, name):
    if name in ("openvino:cpu", "tract:cpu"):  # neither computes a float64 graph as exported
        with pytest.raises(UnsupportedModelError, match="float64|float32"):
            open_session(export_for(name, export64).forward, name)
        return
    session = open_session(export_for(name, export64).forward, name)
    with pytest.raises(ValueError, match=r"expected float64.*float32"):
        session.run(sample(2, WIDTH))
    assert session.run(sample(2, WIDTH, dtype=np.float64)).dtype == np.float64


@pytest.mark.parametrize("name", RUNTIMES)
@pytest.mark.parametrize("direction", ["forward", "inverse"])
@pytest.mark.parametrize("shape", [(3, WIDTH - 3), (WIDTH + 1,), (2, 3, 2 * WIDTH)])
def test_wrong_width(model_and_export, name, direction, shape):
    _, result = model_and_export
    session = open_session(getattr(result, direction), name)
    with pytest.raises(ValueError, match=rf"\[\.\.\., {WIDTH}\].*{shape[-1]}"):
        session.run(sample(*shape))


@pytest.mark.parametrize("name", RUNTIMES)
def test_scalar_input(model_and_export, name):
    _, result = model_and_export
    with pytest.raises(ValueError, match="scalar"):
        open_session(result.forward, name).run(np.float32(1.0))


@pytest.mark.parametrize("name", RUNTIMES)
@pytest.mark.parametrize("direction", ["forward", "inverse"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("as_torch", [False, True], ids=["numpy", "torch"])
def test_non_finite_input(model_and_export, name, direction, bad, as_torch):
    _, result = model_and_export
    session = open_session(getattr(result, direction), name)
    x = sample(4, WIDTH)
    x[2, 5] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        session.run(torch.from_numpy(x) if as_torch else x)


@pytest.mark.parametrize("name", RUNTIMES)
@pytest.mark.parametrize(
    ("solver", "pattern"),
    [
        ({"maxiter": 0}, "maxiter"),
        ({"maxiter": -3}, "maxiter"),
        ({"maxiter": 2.5}, "maxiter"),
        ({"atol": -1e-3}, "atol"),
        ({"rtol": -1e-3}, "rtol"),
        ({"atol": float("nan")}, "atol"),
        ({"rtol": float("inf")}, "rtol"),
        ({"tol": 1e-3}, "unknown solver inputs"),
        ({"max_iter": 5}, "unknown solver inputs"),
    ],
)
def test_bad_solver_inputs(model_and_export, name, solver, pattern):
    _, result = model_and_export
    session = open_session(result.inverse, name)
    with pytest.raises(ValueError, match=pattern):
        session.run(sample(2, WIDTH), **solver)


@pytest.mark.parametrize("name", RUNTIMES)
@pytest.mark.parametrize("solver", [{"maxiter": 5}, {"atol": 1e-3}, {"rtol": 0.0}])
def test_solver_inputs_to_forward_graph(model_and_export, name, solver):
    _, result = model_and_export
    session = open_session(result.forward, name)
    with pytest.raises(ValueError, match="only apply to the inverse"):
        session.run(sample(2, WIDTH), **solver)


def test_non_numeric_tolerance_is_a_value_error(model_and_export):
    _, result = model_and_export
    session = open_session(result.inverse, "onnxruntime:cpu")
    with pytest.raises(ValueError, match="atol"):
        session.run(sample(2, WIDTH), atol="1e-3")


@pytest.mark.parametrize("name", RUNTIMES)
def test_solver_inputs_are_used(model_and_export, name):
    _, result = model_and_export
    session = open_session(result.inverse, name)
    y = sample(5, WIDTH, seed=6)
    one = session.run_all(y, maxiter=1)
    assert one["iterations"].tolist() == [1] * NBLOCKS
    assert (session.run_all(y)["iterations"] > 1).any()


def test_solver_settings_checked_once_still_follow_each_call(model_and_export):
    """A session remembers settings it has checked, and their scalar feeds, by value: what it
    remembers must never let a bad value through or carry one call's settings into another."""
    from iresnet_onnx.runtimes._session import MEMO_SIZE

    _, result = model_and_export
    session = open_session(result.inverse, "onnxruntime:cpu")
    y = sample(5, WIDTH, seed=6)
    assert session.run_all(y, maxiter=1)["iterations"].tolist() == [1] * NBLOCKS
    # True == 1 and hash(True) == hash(1): remembered by value alone, True would pass
    with pytest.raises(ValueError, match="maxiter"):
        session.run_all(y, maxiter=True)
    for _ in range(2):  # a refused value is refused again, not remembered
        with pytest.raises(ValueError, match="atol"):
            session.run_all(y, atol=-1.0)
    assert (session.run_all(y, maxiter=100)["iterations"] > 1).any()
    assert session.run_all(y, maxiter=1)["iterations"].tolist() == [1] * NBLOCKS
    feeds = session.solver_feeds({"maxiter": 3, "atol": 1e-4})
    assert feeds == {"maxiter": 3, "atol": np.float32(1e-4)}
    assert not any(array.flags.writeable for array in feeds.values())
    feeds["y"] = y  # the caller's dict is its own: the next call's feeds hold no y
    assert set(session.solver_feeds({"maxiter": 3, "atol": 1e-4})) == {"maxiter", "atol"}
    for maxiter in range(1, 3 * MEMO_SIZE):  # a sweep of settings: the memo stays bounded
        session.run_all(y[:1], maxiter=maxiter)
    assert len(session._checked_solver) <= MEMO_SIZE
    assert len(session._solver_arrays) <= MEMO_SIZE


@pytest.mark.parametrize("name", RUNTIMES)
def test_run_warns_when_the_inverse_misses_its_tolerance(model_and_export, name):
    _, result = model_and_export
    session = open_session(result.inverse, name)
    y = sample(5, WIDTH, seed=7)
    with pytest.warns(ConvergenceWarning, match=r"inverse.onnx: no convergence to atol 0 "):
        session.run(y, maxiter=2, atol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # converged: silent, and run_all never warns
        session.run(y)
        assert session.run_all(y, maxiter=2, atol=0.0)["iterations"].tolist() == [2] * NBLOCKS


@pytest.mark.parametrize("name", ["onnxruntime:cpu", "reference:cpu"])
def test_a_nan_residual_is_reported_not_passed(tmp_path, name):
    """A folded export whose weights are ×100 after export: g is no contraction, x blows up."""
    model = make_model(2, 2, activation="ELU", seed=3)
    export(model, tmp_path, spectral_norm="folded", validate=False)
    proto = onnx.load(tmp_path / "inverse.onnx")
    for initializer in proto.graph.initializer:
        if initializer.name.endswith("effective_weight"):
            array = numpy_helper.to_array(initializer) * 100.0
            initializer.CopyFrom(
                numpy_helper.from_array(array.astype(np.float32), initializer.name)
            )
    onnx.save(proto, tmp_path / "inverse.onnx")
    session = open_session(tmp_path / "inverse.onnx", name)
    y = np.full((3, 2), 1e3, np.float32)
    outputs = session.run_all(y)
    assert not (outputs["residual"] <= session.info.atol).all()
    with pytest.warns(ConvergenceWarning, match="no convergence"):
        session.run(y)


@pytest.mark.timeout(120, method="thread")  # a signal would wait for tract to return
@pytest.mark.skipif("tract:cpu" not in runtimes.available(), reason="tract is not installed here")
def test_tract_runs_the_density_of_a_wide_small_matrix(tmp_path):
    """density.onnx's unrolled LU of a 32 × 32 matrix on tract. Built from Splits along both
    axes, the graph took tract minutes to load (its shape analysis grows faster than the LU's
    steps): the timeout is there to catch that blow-up, the parity for the numbers."""
    model = make_model(32, 1, variant="mlp", hidden_size=32, activation="Tanh", seed=5)
    export(model, tmp_path, **PORTABLE, validate=False)
    report = check(model, tmp_path, runtimes=["tract:cpu"], batch_sizes=(1, 7), seed=2)
    assert report.passed, str(report)
    assert {row.check for row in report.rows} >= {"density", "jacobian"}


def test_forward_overflow_is_reported(model_and_export):
    _, result = model_and_export
    session = open_session(result.forward, "onnxruntime:cpu")
    with pytest.warns(RuntimeWarning, match="the output holds NaN or Inf"):
        session.run(np.full((1, WIDTH), 3e38, np.float32))


def test_load_takes_the_names_available_lists(model_and_exports):
    _, exports = model_and_exports
    for name in runtimes.available():
        assert runtimes.load(export_for(name, exports).forward, runtime=name).name == name
    result = exports["loop"]
    with pytest.raises(ValueError, match="names device 'cpu'"):
        runtimes.load(result.forward, runtime="onnxruntime:cpu", device="cuda")


@pytest.mark.parametrize("value", [1e300, -1e300])
def test_tolerance_that_overflows_the_graph_dtype_is_refused(model_and_export, value):
    _, result = model_and_export
    session = open_session(result.inverse, "onnxruntime:cpu")
    with pytest.raises(ValueError, match="atol|overflows"):
        session.run(sample(2, WIDTH), atol=value)


def test_eager_sessions_are_safe_across_threads(model_and_export):
    _, result = model_and_export
    session = open_session(result.inverse, "torch:cpu")
    y = sample(16, WIDTH, seed=8)
    expected = {m: session.run_all(y, maxiter=m)["iterations"].tolist() for m in (1, 40)}
    assert expected[1] != expected[40]
    mismatches = []

    def worker(maxiter):
        for _ in range(50):
            steps = session.run_all(y, maxiter=maxiter)["iterations"].tolist()
            if steps != expected[maxiter]:
                mismatches.append(steps)

    threads = [threading.Thread(target=worker, args=(m,)) for m in (1, 40, 1, 40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert mismatches == []


# files that are not exports of this package


def tiny_foreign_model(path, metadata=None):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "foreign",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", WIDTH])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", WIDTH])],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)
    if metadata:
        helper.set_model_props(proto, metadata)
    onnx.checker.check_model(proto)
    onnx.save(proto, path)


def write_bad_file(kind, directory):
    path = directory / f"{kind}.onnx"
    if kind == "random-bytes":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not an ONNX model\njust some notes\n")
    elif kind == "text-txt":
        path = directory / "notes.txt"
        path.write_text("this is not an ONNX model\n")
    elif kind == "foreign-onnx":
        tiny_foreign_model(path)
    elif kind == "spoofed-direction":
        tiny_foreign_model(path, {"iresnet_onnx.direction": "forward"})
    elif kind == "directory":
        path.mkdir()
    # "missing": the path is never written
    return path


@pytest.mark.parametrize("name", RUNTIMES)
@pytest.mark.parametrize(
    "kind",
    [
        "random-bytes",
        "empty",
        "text",
        "text-txt",
        "foreign-onnx",
        "spoofed-direction",
        "missing",
        "directory",
    ],
)
def test_not_an_export_is_invalid_model(tmp_path, name, kind):
    path = write_bad_file(kind, tmp_path)
    with pytest.raises(InvalidModelError) as info:
        open_session(path, name)
    assert str(path) in str(info.value)


def test_foreign_model_is_valid_onnx_but_refused(tmp_path):
    path = tmp_path / "foreign.onnx"
    tiny_foreign_model(path)
    onnx.checker.check_model(onnx.load(path))
    with pytest.raises(InvalidModelError, match="not a graph exported by iresnet-onnx"):
        runtimes.read_model(path)


# the torch runtime from an export folder


def test_torch_session_matches_the_original_exactly(model_and_export):
    model, result = model_and_export
    x = sample(7, WIDTH, seed=8)
    forward = runtimes.load(result.forward, "torch")
    inverse = runtimes.load(result.inverse, "torch")
    with torch.no_grad():
        y = model(torch.from_numpy(x)).numpy()
        x_back = model.inverse(torch.from_numpy(y)).numpy()
        iterations = [int(block.iterations) for block in model.blocks]
    np.testing.assert_array_equal(forward.run(x), y)
    outputs = inverse.run_all(y)
    np.testing.assert_array_equal(outputs["x"], x_back)
    assert outputs["iterations"].tolist() == iterations


def test_torch_session_uses_the_checkpoint_beside_the_graph(model_and_export, tmp_path):
    model, result = model_and_export
    stranger = make_model(WIDTH, NBLOCKS, activation="ELU", seed=42)
    shutil.copy(result.forward, tmp_path / "forward.onnx")
    save_checkpoint(stranger, tmp_path / "model.pt")
    x = sample(3, WIDTH)
    got = runtimes.load(tmp_path / "forward.onnx", "torch").run(x)
    with torch.no_grad():
        np.testing.assert_array_equal(got, stranger(torch.from_numpy(x)).numpy())
        assert not np.allclose(got, model(torch.from_numpy(x)).numpy())
    # an explicit checkpoint wins over the one beside the graph
    explicit = runtimes.load(tmp_path / "forward.onnx", "torch", checkpoint=result.checkpoint)
    with torch.no_grad():
        np.testing.assert_array_equal(explicit.run(x), model(torch.from_numpy(x)).numpy())


def test_torch_session_without_checkpoint(model_and_export, tmp_path):
    _, result = model_and_export
    shutil.copy(result.forward, tmp_path / "forward.onnx")
    with pytest.raises(CheckpointError, match="model.pt"):
        runtimes.load(tmp_path / "forward.onnx", "torch")


# session attributes and onnxruntime options


@pytest.mark.parametrize("name", RUNTIMES)
@pytest.mark.parametrize("direction", ["forward", "inverse"])
def test_session_attributes(model_and_export, name, direction):
    _, result = model_and_export
    session = open_session(getattr(result, direction), name)
    runtime, device = runtimes.parse_runtime(name)
    assert session.name == name
    assert session.runtime == runtime and session.device == device
    assert session.graph.name == direction
    assert session.info.input_size == WIDTH and session.info.nblocks == NBLOCKS
    assert session.info.dtype == np.float32
    assert name in repr(session) and direction in repr(session)
    expected = ["CPUExecutionProvider"] if runtime == "onnxruntime" else [runtime]
    assert session.providers == expected


@pytest.mark.parametrize("direction", ["forward", "inverse"])
@pytest.mark.parametrize(
    "options",
    [
        {"threads": 1},
        {"optimization_level": "disable"},
        {"threads": 1, "optimization_level": "basic"},
    ],
)
def test_onnxruntime_options_keep_outputs(model_and_export, direction, options):
    _, result = model_and_export
    path = getattr(result, direction)
    x = sample(9, WIDTH, seed=9)
    default = runtimes.load(path, "onnxruntime").run_all(x)
    tuned = runtimes.load(path, "onnxruntime", **options)
    assert tuned.providers == ["CPUExecutionProvider"]
    outputs = tuned.run_all(x)
    assert set(outputs) == set(default)
    for key, value in default.items():
        np.testing.assert_allclose(outputs[key], value, rtol=1e-5, atol=1e-6)


def test_bad_optimization_level(model_and_export):
    _, result = model_and_export
    with pytest.raises(ValueError, match="optimization_level.*'fastest'"):
        runtimes.load(result.forward, "onnxruntime", optimization_level="fastest")


@pytest.mark.parametrize(
    "options", [{"optimization_level": "fastest"}, {"thread": 1}], ids=["level", "typo"]
)
def test_bad_option_is_not_blamed_on_the_model(model_and_export, options):
    _, result = model_and_export
    with pytest.raises((ValueError, TypeError)) as info:
        runtimes.load(result.forward, "onnxruntime", **options)
    assert not isinstance(info.value, InvalidModelError)


def test_a_big_endian_array_holds_the_same_numbers(model_and_export):
    """A big-endian float32 array said "expected float32, got float32" (issue 22, item 14): it is
    float32, in another byte order, and runs as the same numbers."""
    _, result = model_and_export
    x = sample(3, WIDTH)
    session = runtimes.load(result.forward)
    np.testing.assert_array_equal(session.run(x.astype(">f4")), session.run(x))


@pytest.mark.parametrize("threads", [0, -1, 20_000, 10**6, 1.5, True, "2"])
def test_thread_counts_past_the_cpus_are_refused_before_a_session_starts(export64, threads):
    """Issue 22 item 11: a runtime asked for a million threads tries to create them."""
    with pytest.raises(ValueError, match="threads"):
        runtimes.load(export64["loop"].out_dir / "forward.onnx", "onnxruntime", threads=threads)


def session_threads(session) -> int:
    """The thread count a session really got from its runtime."""
    if session.runtime == "openvino":
        return int(session.compiled.get_property("INFERENCE_NUM_THREADS"))
    return session.session.get_session_options().intra_op_num_threads


@pytest.mark.parametrize("name", ["onnxruntime:cpu", "openvino:cpu"])
def test_the_environment_sets_the_threads_of_sessions_not_given_any(
    model_and_export, monkeypatch, name
):
    if name not in runtimes.available():
        pytest.skip(f"{name} is not installed")
    _, result = model_and_export
    monkeypatch.setenv("IRESNET_ONNX_THREADS", "1")
    assert session_threads(runtimes.load(result.forward, name)) == 1
    if (os.cpu_count() or 1) > 1:  # a count passed in the call wins over the environment
        assert session_threads(runtimes.load(result.forward, name, threads=2)) == 2
    for value in ("0", "two", "1.5", str(10**6)):
        monkeypatch.setenv("IRESNET_ONNX_THREADS", value)
        with pytest.raises(
            UsageError, match="IRESNET_ONNX_THREADS: threads must be an int"
        ) as info:
            runtimes.load(result.forward, name)
        assert value in str(info.value)
