"""node:cpu (onnxruntime-node in a Node.js child) and web:wasm (onnxruntime-web in headless
Chromium) against onnxruntime:cpu on the same exports, the parity suite and verify --golden on
them, and what happens when a child is missing, crashes, hangs or is closed.

Skipped only where Node.js / Chromium / the npm packages are really absent and
IRESNET_ONNX_REQUIRE_JS is not 1 (``make test`` sets it: there they must run)."""

import gc
import os
import signal
import time

import numpy as np
import pytest
import torch

from iresnet_onnx import parity, runtimes
from iresnet_onnx._tolerances import BOUNDARY_ULPS
from iresnet_onnx.cli import main
from iresnet_onnx.errors import RuntimeUnavailableError, UnsupportedModelError, UsageError
from iresnet_onnx.runtimes import _js, _web
from tests.conftest import make_model

JS_RUNTIMES = ("node:cpu", "web:wasm")
GRAPHS = ("forward", "inverse", "density")
FLOWS = {"2d": (2, 3), "64d": (64, 2)}
"""name: (width n, blocks) of the two flows every graph is compared on."""
WEB_SLOW = [pytest.param("node:cpu"), pytest.param("web:wasm", marks=pytest.mark.slow)]
"""A test's runtimes where web:wasm may start Chromium (seconds): slow there."""


def require_js(name: str) -> None:
    """Skip (or, with IRESNET_ONNX_REQUIRE_JS=1, fail) where ``name`` cannot run here."""
    if name in runtimes.available():
        return
    runtime, device = runtimes.parse_runtime(name)
    with pytest.raises(RuntimeUnavailableError) as why:
        runtimes.require(runtime, device)
    if os.environ.get("IRESNET_ONNX_REQUIRE_JS") == "1":
        pytest.fail(f"IRESNET_ONNX_REQUIRE_JS=1 but {why.value}")
    pytest.skip(str(why.value))


@pytest.fixture(scope="module", params=JS_RUNTIMES)
def js(request):
    require_js(request.param)
    return request.param


@pytest.fixture(scope="module")
def flows(exported):
    return {
        name: (
            make_model(n, nblocks, seed=n),
            exported(f"js-{name}", make_model(n, nblocks, seed=n)),
        )
        for name, (n, nblocks) in FLOWS.items()
    }


@pytest.fixture(scope="module")
def sessions(flows):
    """``sessions(runtime, flow, graph)``: the graph on the JS runtime (one child / page) and on
    onnxruntime, each opened once for the module, on first use."""
    opened = {}

    def get(runtime: str, flow: str, graph: str):
        require_js(runtime)
        if (runtime, flow, graph) not in opened:
            path = flows[flow][1].out_dir / f"{graph}.onnx"
            opened[runtime, flow, graph] = (
                runtimes.load(path, runtime),
                runtimes.load(path, "onnxruntime:cpu"),
            )
        return opened[runtime, flow, graph]

    yield get
    for session, _ in opened.values():
        session.close()


def slow_on_web(*flows: str) -> list:
    """(runtime, flow) parameters; web:wasm on ``flows`` is marked slow."""
    return [
        pytest.param(
            runtime, flow, marks=[pytest.mark.slow] * (runtime == "web:wasm" and flow in flows)
        )
        for runtime in JS_RUNTIMES
        for flow in FLOWS
    ]


def sample(rows, n, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal((rows, n)).astype(dtype)


def assert_same_steps(actual: dict, expected: dict, session, atol: float | None = None) -> None:
    """Equal step counts per block, except one test apart (K steps) where a final residual lies
    within rounding of atol: another runtime's kernels round differently (the rule parity's
    StepRule applies against eager)."""
    atol = session.info.atol if atol is None else atol
    magnitude = max(1.0, float(np.max(np.abs(expected["x"])))) if expected["x"].size else 1.0
    band = BOUNDARY_ULPS * float(np.finfo(expected["residual"].dtype).eps) * magnitude
    pairs = zip(actual["iterations"].tolist(), expected["iterations"].tolist(),
                actual["residual"].tolist(), expected["residual"].tolist())  # fmt: skip
    for block, (taken, other, residual, other_residual) in enumerate(pairs):
        if taken != other:
            on_boundary = min(abs(residual - atol), abs(other_residual - atol)) <= band
            assert abs(taken - other) <= session.info.steps_per_check and on_boundary, (
                f"block {block}: {taken} steps (residual {residual:.3g}) against {other} "
                f"({other_residual:.3g}), atol {atol:g}"
            )


def assert_same_outputs(
    actual: dict, expected: dict, tolerance: float, session=None, atol: float | None = None
) -> None:
    """Values within ``tolerance`` (scaled by the output's magnitude); an inverse's step counts
    by :func:`assert_same_steps` of ``session``."""
    assert set(actual) == set(expected)
    for name, value in expected.items():
        assert actual[name].dtype == value.dtype and actual[name].shape == value.shape, name
        if name == "iterations":
            assert_same_steps(actual, expected, session, atol)
        else:
            scale = max(1.0, float(np.max(np.abs(value)))) if value.size else 1.0
            np.testing.assert_allclose(actual[name], value, rtol=0, atol=tolerance * scale)


@pytest.mark.parametrize(("runtime", "flow"), slow_on_web("64d"))
@pytest.mark.parametrize("graph", GRAPHS)
def test_every_graph_gives_onnxruntimes_outputs(sessions, runtime, flow, graph):
    session, reference = sessions(runtime, flow, graph)
    n = FLOWS[flow][0]
    for rows, seed in ((1, 0), (7, 1), (300, 2)):
        x = sample(rows, n, seed) * (2.0 if graph == "inverse" else 1.0)
        assert_same_outputs(session.run_all(x), reference.run_all(x), 1e-5, session)
    leading = sample(6, n, 3).reshape(2, 3, n)
    assert session.run(leading).shape == reference.run(leading).shape


@pytest.mark.parametrize("solver", [{"maxiter": 3}, {"atol": 1e-3, "rtol": 0.0}, {"rtol": 1e-2}])
def test_the_inverse_takes_its_solver_inputs(sessions, js, solver):
    session, reference = sessions(js, "2d", "inverse")
    y = sample(50, 2, 4) * 2
    default = session.run_all(y)["iterations"]
    outputs = session.run_all(y, **solver)
    assert_same_outputs(outputs, reference.run_all(y, **solver), 1e-5, session, solver.get("atol"))
    assert outputs["iterations"].tolist() != default.tolist()  # the feed really arrived
    if "maxiter" in solver:
        assert max(outputs["iterations"]) <= solver["maxiter"]


def test_arrays_cross_the_process_boundary_bit_for_bit(sessions, js):
    session, _ = sessions(js, "2d", "forward")
    special = np.array([np.nan, -0.0, np.inf, -np.inf, 1e-45, 3.4028235e38, 1 / 3], np.float32)
    arrays = {
        "f32": special,
        "f64": np.array([np.pi, 5e-324, -0.0, np.nextafter(1.0, 2.0)], np.float64),
        "i64": np.array([np.iinfo(np.int64).min, -1, 0, np.iinfo(np.int64).max], np.int64),
        "big": sample(1024, 64, 9),
        "scalar": np.array(7, np.int64),
    }
    back = session.echo(arrays)
    for name, array in arrays.items():
        assert back[name].dtype == array.dtype and back[name].shape == array.shape
        assert back[name].tobytes() == array.tobytes(), name


@pytest.mark.parametrize("js", WEB_SLOW)
def test_a_float64_export_runs(js, exported):
    require_js(js)
    model = make_model(4, 2, dtype=torch.float64, seed=3)
    result = exported("js-f64", model)
    y = sample(9, 4, 5, np.float64)
    for graph in GRAPHS:
        path = result.out_dir / f"{graph}.onnx"
        with runtimes.load(path, js) as session:
            expected = runtimes.load(path, "onnxruntime:cpu").run_all(y)
            assert_same_outputs(session.run_all(y), expected, 1e-12, session)


def test_wrong_input_is_refused_before_the_child_sees_it(sessions, js):
    session, _ = sessions(js, "2d", "forward")
    with pytest.raises(UsageError, match="float32"):
        session.run(np.zeros((2, 2), np.float64))
    with pytest.raises(UsageError, match="maxiter"):
        sessions(js, "2d", "inverse")[0].run(sample(2, 2), maxiter=0)
    assert session.run(sample(0, 2)).shape == (0, 2)
    with pytest.raises(UnsupportedModelError, match=r"\.onnx graphs"):
        runtimes.load(session.info.path.with_suffix(".ort"), js)


def test_run_timed_gives_the_outputs_and_the_engines_own_time(sessions, js):
    session, _ = sessions(js, "2d", "inverse")
    y = sample(20, 2, 6)
    outputs, ms = session.run_timed(y, maxiter=50)
    assert outputs["iterations"].tolist() == session.run_all(y, maxiter=50)["iterations"].tolist()
    assert_same_outputs(outputs, session.run_all(y, maxiter=50), 0.0, session)
    assert 0 < ms < 60_000
    with pytest.raises(UsageError, match=r"\[batch, n\]"):
        session.run_timed(y.reshape(2, 10, 2))


def test_a_session_serves_threads(sessions, js):
    from concurrent.futures import ThreadPoolExecutor

    session, reference = sessions(js, "2d", "inverse")
    inputs = [sample(5, 2, seed) * 2 for seed in range(8)]
    with ThreadPoolExecutor(4) as pool:
        outputs = list(pool.map(session.run_all, inputs))
    for y, output in zip(inputs, outputs):
        assert_same_steps(output, reference.run_all(y), session)


@pytest.mark.slow
@pytest.mark.parametrize("flow", list(FLOWS))
def test_the_parity_suite_passes(js, flows, flow):
    model, result = flows[flow]
    report = parity.check(model, result.out_dir, runtimes=[js], batch_sizes=(1, 7, 257))
    assert report.passed, str(report)
    assert {row.check for row in report.rows} >= {"forward", "inverse", "capped", "density"}


@pytest.mark.slow
def test_verify_golden_exits_0_then_1_after_a_change(js, flows, tmp_path, capsys):
    import shutil

    _, result = flows["2d"]
    good = tmp_path / "good"
    shutil.copytree(result.out_dir, good)
    assert main(["verify", str(good), "--golden", "--runtime", js]) == 0
    for changed in ("golden/inverse/test_data_set_1/output_0.pb", "density.onnx"):
        folder = tmp_path / changed.replace("/", "-")
        shutil.copytree(result.out_dir, folder)
        target = folder / changed
        data = bytearray(target.read_bytes())
        data[-3] ^= 0x40  # a float's bits (golden vector) / the last initializer's
        target.write_bytes(bytes(data))
        assert main(["verify", str(folder), "--golden", "--runtime", js]) == 1, changed
        assert f"{changed} modified" in capsys.readouterr().err


def test_verify_golden_on_node_exits_0(flows, capsys):
    require_js("node:cpu")
    _, result = flows["2d"]
    assert main(["verify", str(result.out_dir), "--golden", "--runtime", "node:cpu"]) == 0
    assert "node:cpu" in capsys.readouterr().out


# what is missing, crashed, hung or closed


@pytest.mark.parametrize(
    ("variable", "value", "runtime", "advice"),
    [
        ("IRESNET_ONNX_NODE", "/nonexistent/node", "node:cpu", "install Node.js"),
        ("IRESNET_ONNX_NODE_MODULES", "EMPTY", "node:cpu", "npm ci"),
        ("IRESNET_ONNX_NODE_MODULES", "EMPTY", "web:wasm", "npm ci"),
        ("IRESNET_ONNX_CHROMIUM", "/nonexistent/chromium", "web:wasm", "apt-get install chromium"),
    ],
)
def test_a_missing_tool_names_what_to_install(
    flows, monkeypatch, tmp_path, variable, value, runtime, advice
):
    monkeypatch.setenv(variable, str(tmp_path) if value == "EMPTY" else value)
    for cached in (_js.node, _js.chromium, runtimes.devices):
        cached.cache_clear()
    try:
        assert runtime not in runtimes.available()
        with pytest.raises(RuntimeUnavailableError, match=advice) as info:
            runtimes.load(flows["2d"][1].forward, runtime)
        assert "onnxruntime:cpu" in str(info.value)  # what is available, as for every runtime
    finally:
        monkeypatch.undo()
        for cached in (_js.node, _js.chromium, runtimes.devices):
            cached.cache_clear()


def _pids(session) -> int:
    return session.child.process.pid


@pytest.mark.parametrize("js", WEB_SLOW)
def test_a_crashed_child_is_a_clear_error_not_a_hang(js, flows):
    require_js(js)
    with runtimes.load(flows["2d"][1].forward, js) as session:
        os.killpg(_pids(session), signal.SIGKILL)
        started = time.monotonic()
        with pytest.raises(RuntimeUnavailableError, match="exited"):
            session.run(sample(3, 2))
        with pytest.raises(RuntimeUnavailableError, match="exited"):  # and stays failed
            session.run(sample(3, 2))
        assert time.monotonic() - started < 15
    with runtimes.load(flows["2d"][1].forward, js) as fresh:  # the next session starts anew
        assert fresh.run(sample(3, 2)).shape == (3, 2)


def test_a_hung_child_times_out_and_is_stopped(flows):
    require_js("node:cpu")
    session = runtimes.load(flows["2d"][1].forward, "node:cpu", timeout=2)
    process = session.child.process
    os.kill(process.pid, signal.SIGSTOP)
    started = time.monotonic()
    with pytest.raises(RuntimeUnavailableError, match="no answer within 2 s"):
        session.run(sample(3, 2))
    assert time.monotonic() - started < 10
    assert process.wait(timeout=10) is not None  # killed, not left stopped
    session.close()


@pytest.mark.parametrize("js", WEB_SLOW)
def test_close_ends_the_child_and_is_safe_twice(js, flows):
    require_js(js)
    session = runtimes.load(flows["2d"][1].forward, js)
    process = session.child.process
    session.close()
    session.close()
    with pytest.raises(RuntimeUnavailableError, match="closed"):
        session.run(sample(1, 2))
    if js == "node:cpu":  # web: the session leaves its page; the shared browser ends when idle
        assert process.wait(timeout=10) is not None


@pytest.mark.slow
def test_web_sessions_share_a_page_and_the_browser_ends_when_idle(flows, monkeypatch):
    """Sessions of one thread count share a runner page: one that closes frees only its own graph
    there. The browser outlives its last session by IDLE_SECONDS (the next session reuses it), then
    ends. On a driver of its own: the module's other sessions keep theirs."""
    require_js("web:wasm")
    for name, value in (("child", None), ("users", 0), ("idle", None)):
        monkeypatch.setattr(_web._Driver, name, value)
    monkeypatch.setattr(_web, "IDLE_SECONDS", 5.0)  # long enough to reopen on a slow machine
    folder = flows["2d"][1].out_dir
    reference = runtimes.load(folder / "inverse.onnx", "onnxruntime:cpu")
    y = sample(5, 2) * 2
    first = runtimes.load(folder / "forward.onnx", "web:wasm")
    second = runtimes.load(folder / "inverse.onnx", "web:wasm")
    child = second.child
    assert first.child is child
    first.close()
    assert_same_outputs(second.run_all(y), reference.run_all(y), 1e-5, second)
    second.close()
    with runtimes.load(folder / "inverse.onnx", "web:wasm") as again:  # within IDLE_SECONDS
        assert again.child is child
        assert_same_outputs(again.run_all(y), reference.run_all(y), 1e-5, again)
    assert child.process.wait(timeout=60) is not None
    assert _web._Driver.child is None


def test_a_forgotten_session_ends_its_child(flows):
    require_js("node:cpu")
    session = runtimes.load(flows["2d"][1].forward, "node:cpu")
    process = session.child.process
    del session
    gc.collect()
    assert process.wait(timeout=10) is not None
