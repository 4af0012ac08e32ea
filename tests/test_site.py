"""iresnet-onnx web: the site's files, its JavaScript port of the golden rules held against the
Python ones (in Node.js), and the page's verdict in headless Chromium — PASSED on a good export,
FAILED after a golden vector changed.

Skipped only where Node.js / Chromium / the npm packages are really absent and
IRESNET_ONNX_REQUIRE_JS is not 1 (``make test`` sets it)."""

import hashlib
import json
import os
import shutil
import subprocess

import numpy as np
import onnx
import pytest

from iresnet_onnx._report import ParityRow
from iresnet_onnx._site import ASSETS, MARKER, build_site, check_site
from iresnet_onnx._tolerances import StepRule
from iresnet_onnx.cli import main
from iresnet_onnx.errors import InvalidModelError, OutputError
from iresnet_onnx.runtimes import _js
from tests.conftest import make_model


def need(what: str) -> None:
    """Skip (IRESNET_ONNX_REQUIRE_JS=1: fail) unless ``what`` ("node", "site", "browser") is here."""
    packages = {"node": (), "site": ("onnxruntime-web",), "browser": ("playwright-core",)}[what]
    _, missing = _js.lacking(packages or ("onnxruntime-web",), browser=what == "browser")
    if what == "node":
        missing = [] if _js.node() else missing
    if not missing:
        return
    if os.environ.get("IRESNET_ONNX_REQUIRE_JS") == "1":
        pytest.fail(f"IRESNET_ONNX_REQUIRE_JS=1 but {'; '.join(missing)}")
    pytest.skip("; ".join(missing))


@pytest.fixture(scope="module")
def flow2d(exported):
    return exported("site-2d", make_model(2, 3, seed=2))


@pytest.fixture(scope="module")
def site(flow2d, tmp_path_factory):
    need("site")
    return build_site(flow2d.out_dir, tmp_path_factory.mktemp("site") / "web")


@pytest.fixture(scope="module")
def browser():
    need("browser")
    from iresnet_onnx.runtimes._web import Browser

    with Browser() as opened:
        yield opened


def test_the_site_holds_the_page_the_runtime_and_the_export(site, flow2d):
    for name in ("index.html", "page.mjs", "verify.mjs", "flow.mjs", MARKER):
        assert (site / name).is_file(), name
    ort = {path.name for path in (site / "ort").iterdir()}
    assert ort == {"ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"}
    manifest = json.loads((site / "export" / "manifest.json").read_text())
    for name in manifest["files"]:
        copied = site / "export" / name
        assert copied.is_file() != (name == manifest["checkpoint"]), name  # no checkpoint
    assert (site / "export" / "inverse.onnx").read_bytes() == flow2d.inverse.read_bytes()
    assert 'id="verdict"' in (site / "index.html").read_text()


def test_a_site_is_replaced_whole_and_nothing_else_is(site, flow2d, tmp_path, capsys):
    assert main(["web", str(flow2d.out_dir), "--out", str(site)]) == 0  # its own site: replaced
    assert (site / "index.html").is_file()
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(OutputError, match="refusing"):
        build_site(flow2d.out_dir, foreign)
    assert (foreign / "holiday.jpg").is_file()
    assert main(["web", str(tmp_path / "nothing"), "--out", str(tmp_path / "s")]) == 2
    assert (
        main(["web", str(flow2d.out_dir), "--out", str(tmp_path / "s"), "--screenshot", "a.png"])
        == 2
    )
    capsys.readouterr()
    no_golden = tmp_path / "old"
    shutil.copytree(flow2d.out_dir, no_golden)
    manifest = json.loads((no_golden / "manifest.json").read_text())
    del manifest["golden"]
    (no_golden / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InvalidModelError, match="no golden vectors"):
        build_site(no_golden, tmp_path / "s2")


def run_node(script: str, data: object) -> object:
    """``script`` (an ES module importing ``V`` = verify.mjs) in Node.js, JSON in and out."""
    need("node")
    url = (ASSETS / "verify.mjs").as_uri()
    source = (
        f"import * as V from {json.dumps(url)};\n"
        "const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));\n"
    )
    wrapped = f"{source}const output = await (async () => {{ {script} }})();\nconsole.log(JSON.stringify(output));"
    done = subprocess.run(
        [str(_js.node()), "--input-type=module", "-e", wrapped.replace("require('fs')", "(await import('node:fs'))")],
        input=json.dumps(data), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def step_cases(count: int = 400) -> list[dict]:
    """Inverse outcomes around every branch of the step rule: counts on and off the K grid,
    residuals on, near and off the boundary, NaN, maxiter cut-offs."""
    rng = np.random.default_rng(7)
    cases = []
    for _ in range(count):
        k, maxiter = int(rng.choice([1, 3, 8])), int(rng.choice([5, 20, 100]))
        atol, rtol = float(rng.choice([1e-6, 1e-5])), float(rng.choice([0.0, 1e-5]))
        eps = float(np.finfo(np.float32).eps)
        x = (rng.standard_normal(6) * rng.choice([0.5, 20])).astype(np.float32)
        band = 16 * eps * max(1.0, float(np.max(np.abs(x))))
        eager = rng.integers(1, maxiter + 1, 3)
        rule = StepRule(k, {"maxiter": maxiter, "atol": atol, "rtol": rtol}, eps)
        taken = [
            rule.graph_steps(int(e), maxiter) + int(rng.choice([0, 0, -1, 1, -k, k])) for e in eager
        ]
        near = [atol * 0.3, atol, atol + band / 2, atol - band / 3, atol * 3, np.nan]
        residuals = rng.choice(near, 6).astype(np.float32).tolist()
        cases.append({
            "k": k, "solver": {"maxiter": maxiter, "atol": atol, "rtol": rtol}, "eps": eps,
            "x": x.tolist(), "steps": taken, "eager_steps": eager.tolist(),
            "residual": residuals[:3], "eager_residual": residuals[3:],
            "max_abs": float(rng.choice([1e-7, 1e-4, 3e-4])), "tolerance": 2e-4,
        })  # fmt: skip
    return cases


def python_judgement(case: dict) -> list:
    row = ParityRow("r", "inverse", [1, 6], case["max_abs"], 0.0, case["tolerance"], True, 0.0)
    outputs = {
        "iterations": np.array(case["steps"]),
        "residual": np.array(case["residual"], np.float32),
    }
    eager = {"iterations": np.array(case["eager_steps"]), "x": np.array(case["x"], np.float32),
             "residual": np.array(case["eager_residual"], np.float32)}  # fmt: skip
    StepRule(case["k"], case["solver"], case["eps"]).judge(row, outputs, eager, {})
    return [row.passed, row.tolerance]


def test_the_step_rule_port_decides_as_python_does():
    cases = step_cases()
    script = """return input.map((c) => {
      const row = { maxAbs: c.max_abs, tolerance: c.tolerance };
      const f32 = (values) => Float32Array.from(values.map((v) => (v === null ? NaN : v)));
      V.judgeSteps(row, { iterations: { data: c.steps }, residual: { data: f32(c.residual) } },
        { iterations: { data: c.eager_steps }, residual: { data: f32(c.eager_residual) }, x: { data: f32(c.x) } },
        c.k, c.solver, c.eps);
      return [row.passed, row.tolerance];
    });"""
    # JSON has no NaN: send null, read it back as NaN on both sides
    sent = json.loads(json.dumps(cases).replace("NaN", "null"))
    expected = [python_judgement(case) for case in cases]
    assert run_node(script, sent) == expected
    assert len({passed for passed, _ in expected}) == 2  # both verdicts occur


def test_hashes_and_tensors_are_read_as_python_reads_them(flow2d):
    from onnx import TensorProto, helper, numpy_helper

    blobs = [b"", b"a" * 55, b"b" * 56, bytes(range(256)) * 5, flow2d.inverse.read_bytes()]
    tensors = [
        numpy_helper.from_array(np.array([[1.5, -0.0], [3e38, 1e-45]], np.float32), "x"),
        numpy_helper.from_array(np.array([np.pi, -1e-300], np.float64), "d"),
        numpy_helper.from_array(np.array([-(2**63), 2**63 - 1, 5], np.int64), "iterations"),
        helper.make_tensor("typed", TensorProto.FLOAT, [3], [0.25, -2.0, 7.0]),  # float_data
        helper.make_tensor("steps", TensorProto.INT64, [2], [-3, 12]),  # int64_data varints
    ]
    script = """return {
      hashes: input.blobs.map((b) => V.sha256Portable(Uint8Array.from(Buffer.from(b, "base64")))),
      tensors: input.tensors.map((b) => {
        const t = V.parseTensor(Uint8Array.from(Buffer.from(b, "base64")));
        return [t.name, t.dtype, t.dims, Array.from(t.data, String)];
      }),
      k: V.modelMetadata(Uint8Array.from(Buffer.from(input.model, "base64")))["iresnet_onnx.steps_per_check"],
    };"""
    import base64

    encode = lambda data: base64.b64encode(data).decode()  # noqa: E731
    result = run_node(script, {
        "blobs": [encode(b) for b in blobs],
        "tensors": [encode(t.SerializeToString()) for t in tensors],
        "model": encode(flow2d.inverse.read_bytes()),
    })  # fmt: skip
    assert result["hashes"] == [hashlib.sha256(b).hexdigest() for b in blobs]
    for (name, dtype, dims, values), tensor in zip(result["tensors"], tensors):
        array = numpy_helper.to_array(tensor)
        assert (name, dtype, dims) == (tensor.name, array.dtype.name, list(array.shape))
        assert [
            np.array(v, array.dtype) if dtype != "int64" else int(v) for v in values
        ] == array.ravel().tolist()
    metadata = {p.key: p.value for p in onnx.load(flow2d.inverse).metadata_props}
    assert result["k"] == metadata["iresnet_onnx.steps_per_check"]


# the page in headless Chromium


def test_the_page_says_passed_with_latency_and_the_flow(site, browser, tmp_path):
    picture = tmp_path / "page.png"
    result = check_site(site, browser=browser, screenshot=picture)
    assert result.verdict == "PASSED", result.text
    for tensor in ("y", "x", "log_prob", "log_det", "z"):  # every per-row output, as verify's
        assert f"test_data_set_2 {tensor}\t" in result.text, tensor
    for graph in ("forward", "inverse", "density"):
        assert f"{graph}\t1024\t" in result.text  # its latency row at batch 1024
    assert "from density.onnx on a 161×161 grid" in result.text
    assert "samples x = f⁻¹(z)" in result.text
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and picture.stat().st_size > 20_000


def changed_copy(site, tmp_path, name: str, keep_manifest_hash: bool = True):
    copy = tmp_path / "changed"
    shutil.copytree(site, copy)
    target = copy / "export" / name
    from onnx import TensorProto, numpy_helper

    tensor = TensorProto()
    tensor.ParseFromString(target.read_bytes())
    array = numpy_helper.to_array(tensor).copy()
    array.flat[0] += np.float32(0.5)  # a value the graph cannot reproduce, in a valid file
    target.write_bytes(numpy_helper.from_array(array, tensor.name).SerializeToString())
    if not keep_manifest_hash:  # as if the manifest were rewritten to vouch for the new file
        manifest = json.loads((copy / "export" / "manifest.json").read_text())
        manifest["files"][name]["sha256"] = hashlib.sha256(target.read_bytes()).hexdigest()
        (copy / "export" / "manifest.json").write_text(json.dumps(manifest))
    return copy


@pytest.mark.slow
def test_the_page_says_failed_after_a_golden_vector_changed(site, browser, tmp_path):
    name = "golden/inverse/test_data_set_1/output_0.pb"
    result = check_site(changed_copy(site, tmp_path, name), browser=browser)
    assert result.verdict.startswith("FAILED"), result.verdict
    assert f"{name} modified since export" in result.verdict


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "failure"),
    [
        ("golden/inverse/test_data_set_2/output_0.pb", "inverse golden/inverse/test_data_set_2 x"),
        (
            "golden/density/test_data_set_1/output_1.pb",
            "density golden/density/test_data_set_1 log_det",
        ),
    ],
)
def test_the_values_are_checked_even_where_the_hashes_match(site, browser, tmp_path, name, failure):
    result = check_site(
        changed_copy(site, tmp_path, name, keep_manifest_hash=False), browser=browser
    )
    assert result.verdict.startswith(f"FAILED: {failure}: max|Δ|"), result.verdict
    assert "modified" not in result.verdict


@pytest.mark.slow
def test_the_page_of_a_64d_flow_passes_from_the_command_line(exported, tmp_path, capsys):
    need("browser")
    result = exported("site-64d", make_model(64, 2, seed=4))
    out = tmp_path / "web"
    assert main(["web", str(result.out_dir), "--out", str(out), "--check"]) == 0
    assert "in headless Chromium: PASSED" in capsys.readouterr().out
    golden = out / "export" / "golden" / "forward" / "test_data_set_0" / "output_0.pb"
    golden.write_bytes(golden.read_bytes()[:-1] + b"\x7f")
    assert main(["web", str(result.out_dir), "--out", str(out), "--check"]) == 0  # rebuilt whole
    site_only = tmp_path / "site-only"
    shutil.copytree(out, site_only)
    golden = site_only / "export" / "golden" / "forward" / "test_data_set_0" / "output_0.pb"
    golden.write_bytes(golden.read_bytes()[:-1] + b"\x7f")
    assert check_site(site_only).verdict.startswith("FAILED")
