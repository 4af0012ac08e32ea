"""Portable exports: plain graphs that survive onnx's version converter, a bounded maxiter, the
Loop-free inverse (``inverse="fixed"``), the ORT format, and every installed runtime."""

import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from iresnet_onnx import export, runtimes
from iresnet_onnx._manifest import read_manifest, verify_hashes
from iresnet_onnx._tolerances import TOLERANCES
from iresnet_onnx.exporters import fixed_steps, model_spec
from iresnet_onnx.parity import check
from tests.conftest import make_model, onnx_runtimes

ALL = onnx_runtimes(loop=False)
PORTABLE = {"spectral_norm": "folded", "inverse": "fixed"}


@pytest.fixture(scope="module")
def model():
    return make_model(12, 3, activation="ELU", seed=7)


@pytest.mark.parametrize("mode", ["loop", "folded"])
@pytest.mark.parametrize("target", [17, 19, 20, 21])
def test_exports_survive_the_version_converter(exported, tmp_path, model, mode, target):
    result = exported(f"convert-{mode}", model, spectral_norm=mode)
    shutil.copytree(result.out_dir, tmp_path, dirs_exist_ok=True)
    for name in ("forward.onnx", "inverse.onnx", "density.onnx"):
        converted = onnx.version_converter.convert_version(onnx.load(tmp_path / name), target)
        onnx.checker.check_model(converted, full_check=True)
        onnx.save(converted, tmp_path / name)
    report = check(model, tmp_path, runtimes=["onnxruntime:cpu"], batch_sizes=(1, 9))
    assert report.passed, str(report)


def test_maxiter_is_capped_in_the_graph_whatever_a_raw_client_passes(exported, model):
    result = exported("cap", model)
    cap = int({p.key: p.value for p in onnx.load(result.inverse).metadata_props}[
        "iresnet_onnx.maxiter_cap"
    ])  # fmt: skip
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(result.inverse), options)
    y = np.random.default_rng(0).standard_normal((2, 12)).astype(np.float32)
    feeds = {
        "y": y, "maxiter": np.array(10**9, np.int64),
        "atol": np.array(-1.0, np.float32), "rtol": np.array(-1.0, np.float32),
    }  # fmt: skip
    _, iterations, residual = session.run(None, feeds)
    assert iterations.tolist() == [cap] * 3 and (residual > 0).all()
    with pytest.raises(ValueError, match=f"above this graph's cap of {cap}"):
        runtimes.load(result.inverse).run(y, maxiter=cap + 1)


def test_fixed_steps_bound_the_loop_counts(exported, model):
    steps = fixed_steps(model_spec(model))
    result = exported("fixed", model, **PORTABLE)
    manifest = read_manifest(result.out_dir)
    assert manifest["inverse"] == "fixed" and manifest["fixed_steps"] == list(steps)
    y = np.random.default_rng(1).standard_normal((64, 12)).astype(np.float32)
    with torch.no_grad():
        _, eager_steps, _ = model.inverse_with_stats(torch.from_numpy(y))
    # the a-priori bound covers what the Loop really needs…
    assert all(k >= e for k, e in zip(steps, eager_steps.tolist()))
    # …and the gated Scan stops where the same graph's Loop stops: the same step counts, and
    # values within the parity tolerance (two graph forms: onnxruntime may fuse them differently,
    # and on some CPUs a few values differ in the last bits)
    loop = exported("fixed-vs-loop", model, spectral_norm="folded", steps_per_check=1)
    fixed_outputs = runtimes.load(result.inverse).run_all(y)
    loop_outputs = runtimes.load(loop.inverse).run_all(y)
    assert fixed_outputs["iterations"].tolist() == loop_outputs["iterations"].tolist()
    atol = model.blocks[0].atol
    assert (fixed_outputs["residual"] <= atol).tolist() == (
        loop_outputs["residual"] <= atol
    ).tolist()
    assert_close_outputs(fixed_outputs, loop_outputs, exclude=("iterations",))
    assert not any(node.op_type == "Loop" for node in onnx.load(result.inverse).graph.node)


def assert_close_outputs(actual: dict, expected: dict, exclude: tuple[str, ...] = ()) -> None:
    """Every output within the float32 parity tolerance of the inverse (1e-4 · max(1, |x|∞))."""
    assert set(actual) == set(expected)
    for name, value in expected.items():
        if name not in exclude:
            limit = TOLERANCES["float32"]["inverse"] * max(1.0, float(np.abs(value).max()))
            np.testing.assert_allclose(actual[name], value, rtol=0, atol=limit, err_msg=name)


def test_fixed_steps_grow_with_the_input_radius(model):
    spec = model_spec(model)
    small, large = fixed_steps(spec, 1.0), fixed_steps(spec, 1000.0)
    assert all(a <= b for a, b in zip(small, large)) and small != large
    assert max(large) <= spec.maxiter  # capped by maxiter


def test_ort_format_files_load_and_agree(tmp_path, model):
    result = export(model, tmp_path, ort_format=True)
    manifest = read_manifest(tmp_path)
    assert {"forward.ort", "inverse.ort"} <= set(manifest["files"])
    assert set(verify_hashes(tmp_path, manifest).values()) == {"ok"}
    x = np.random.default_rng(2).standard_normal((5, 12)).astype(np.float32)
    for kind in ("forward", "inverse"):
        onnx_outputs = runtimes.load(result.paths[kind]).run_all(x)
        ort_outputs = runtimes.load(tmp_path / f"{kind}.ort").run_all(x)
        # the .ort file holds the graph after basic optimisations only: another graph form
        if kind == "inverse":
            assert ort_outputs["iterations"].tolist() == onnx_outputs["iterations"].tolist()
        assert_close_outputs(ort_outputs, onnx_outputs, exclude=("iterations",))
    session = runtimes.load(tmp_path / "inverse.ort")
    assert session.run_all(x, maxiter=2)["iterations"].tolist() == [2, 2, 2]


@pytest.mark.parametrize("options", [{}, {"spectral_norm": "folded"}, PORTABLE])
def test_every_runtime_runs_what_it_can_and_says_why_not(exported, model, options):
    result = exported("all-" + "-".join(options.values()), model, **options)
    report = check(model, result.out_dir, runtimes=ALL, batch_sizes=(1, 7, 257))
    assert all(row.passed for row in report.rows), str(report)
    unsupported = {(entry["runtime"], entry["graph"]) for entry in report.unsupported}
    if "tract:cpu" in ALL:
        power_loop = options.get("spectral_norm") != "folded"  # in forward, inverse, density
        inverse_loop = options.get("inverse") != "fixed"
        expected = {("tract:cpu", g) for g in ("forward.onnx", "density.onnx") if power_loop}
        expected |= {("tract:cpu", "inverse.onnx")} if power_loop or inverse_loop else set()
        assert unsupported == expected
        assert all("Loop" in entry["reason"] for entry in report.unsupported)
    else:
        assert unsupported == set()
    graphs = {"forward.onnx", "inverse.onnx", "density.onnx"}
    neither = {r for r in ALL if {(r, graph) for graph in graphs} <= unsupported}
    assert {row.runtime for row in report.rows} == set(ALL) - neither
