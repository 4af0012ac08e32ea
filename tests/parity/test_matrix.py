"""The parity matrix: configurations × every runtime that really runs here.

Widths 2, 17, 64 × lowrank/mlp × ReLU/ELU/Tanh × 1 and 5 blocks × three exports — loop, folded, and
the portable one (folded spectral norm, ``inverse="fixed"``: no Loop at all) — each on batches 1, 7
and 1000 plus leading dims [2, 3, n], on onnxruntime, OpenVINO, tract and the reference evaluator
where installed. tract runs the portable export only (it has no Loop); the others run all three.

The default run takes every variant × export mode once (activations, widths and depths taking
turns); the slow run adds every width × variant × depth × mode, the activation taking turns, so
that every pair of factors meets at least once. The reference evaluator (pure Python, seconds per
graph) runs batches 1 and 7 and the leading dims: large batches are the compiled runtimes' part.
"""

import itertools

import pytest

from iresnet_onnx import export, runtimes
from iresnet_onnx._structure import ACTIVATIONS as ALLOWED_ACTIVATIONS
from iresnet_onnx.parity import check
from tests.conftest import make_model, onnx_runtimes, stale_power_vectors

WIDTHS = (2, 17, 64)
VARIANTS = ("lowrank", "mlp")
ACTIVATIONS = ("ReLU", "ELU", "Tanh")
DEPTHS = (1, 5)
MODES = ("loop", "folded", "portable")
EXPORT_OPTIONS = {
    "loop": {},
    "folded": {"spectral_norm": "folded"},
    "portable": {"spectral_norm": "folded", "inverse": "fixed"},
}
BATCHES = (1, 7, 1000)


CONFIGS = list(itertools.product(WIDTHS, VARIANTS, ACTIVATIONS, DEPTHS, MODES))
QUICK = [
    (WIDTHS[(i + i // 3) % 3], variant, ACTIVATIONS[i % 3], DEPTHS[(i // 3) % 2], mode)
    for i, (variant, mode) in enumerate(itertools.product(VARIANTS, MODES))
]
"""Every variant × export mode once, activations, widths and depths taking turns: the default run."""
WIDE = [
    (n, variant, ACTIVATIONS[(i + i // 3) % 3], nblocks, mode)
    for i, (n, variant, nblocks, mode) in enumerate(
        itertools.product(WIDTHS, VARIANTS, DEPTHS, MODES)
    )
]
"""Every width × variant × depth × mode, the activation taking turns (36 configurations, slow); with
QUICK every activation meets every variant, mode, width and depth."""
REFERENCE_BATCHES = (1, 7)


def runtimes_for(mode: str) -> list[str]:
    """Every in-process ONNX runtime here that runs ``mode``'s export (tract: the Loop-free one)."""
    return onnx_runtimes(loop=mode != "portable")


def run_config(tmp_path, n, variant, activation, nblocks, mode):
    model = make_model(n, nblocks, variant=variant, activation=activation, seed=n)
    export(model, tmp_path, validate=False, **EXPORT_OPTIONS[mode])
    names = runtimes_for(mode)
    compiled = [name for name in names if name != "reference:cpu"]
    reports = [check(model, tmp_path, runtimes=compiled, batch_sizes=BATCHES, seed=1)]
    if "reference:cpu" in names:
        reports.append(check(model, tmp_path, runtimes=["reference:cpu"],
                             batch_sizes=REFERENCE_BATCHES, seed=1))  # fmt: skip
    rows = [row for report in reports for row in report.rows]
    assert all(report.passed for report in reports), "\n".join(map(str, reports))
    assert {row.runtime for row in rows} == set(names)
    shapes = {(row.runtime == "reference:cpu", tuple(row.shape)) for row in rows}
    assert {shape for reference, shape in shapes if not reference} == {
        (1, n),
        (7, n),
        (1000, n),
        (2, 3, n),
    }
    for row in rows:
        if row.check == "inverse":
            assert len(row.iterations) == nblocks and min(row.iterations) >= 1


def test_the_runtimes_ci_installs_are_in_the_matrix():
    assert {"onnxruntime:cpu", "openvino:cpu", "tract:cpu", "reference:cpu"} <= set(
        runtimes_for("portable")
    )


@pytest.mark.parametrize(("n", "variant", "activation", "nblocks", "mode"), QUICK)
def test_parity(tmp_path, n, variant, activation, nblocks, mode):
    run_config(tmp_path, n, variant, activation, nblocks, mode)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("n", "variant", "activation", "nblocks", "mode"), [c for c in WIDE if c not in QUICK]
)
def test_parity_wide_matrix(tmp_path, n, variant, activation, nblocks, mode):
    run_config(tmp_path, n, variant, activation, nblocks, mode)


@pytest.mark.parametrize("start", ["stale", "cold"])
@pytest.mark.parametrize(
    ("n", "variant"), [(2, "mlp"), (17, "lowrank"), pytest.param(64, "mlp", marks=pytest.mark.slow)]
)
def test_parity_with_stale_and_cold_warm_starts(tmp_path, n, variant, start):
    """The matrix's models have converged warm starts (0–1 power-iteration updates per layer);
    here the in-graph power iteration must really iterate, from random or zero vectors."""
    model = make_model(n, 3, variant=variant, activation="ELU", seed=n)
    layers = sum(1 for name, _ in model.named_buffers() if name.endswith("power_vector"))
    stale_power_vectors(model, seed=n, cold=tuple(range(layers)) if start == "cold" else ())
    export(model, tmp_path, spectral_norm="loop", validate=False)
    report = check(model, tmp_path, runtimes=runtimes_for("loop"), batch_sizes=BATCHES, seed=1)
    assert report.passed, str(report)


@pytest.mark.cuda
@pytest.mark.skipif(
    "onnxruntime:cuda" not in runtimes.available(), reason="no CUDA device for onnxruntime here"
)
@pytest.mark.parametrize(("n", "variant", "activation", "nblocks", "mode"), CONFIGS[::6])
def test_parity_cuda(tmp_path, n, variant, activation, nblocks, mode):
    model = make_model(n, nblocks, variant=variant, activation=activation, seed=n)
    export(model, tmp_path, validate=False, **EXPORT_OPTIONS[mode])
    report = check(model, tmp_path, runtimes=["onnxruntime:cuda"], batch_sizes=BATCHES, seed=1)
    assert report.passed, str(report)


@pytest.mark.parametrize(
    ("n", "variant", "activation"),
    [(17, "lowrank", "ELU"), pytest.param(64, "mlp", "Tanh", marks=pytest.mark.slow)],
)
def test_parity_with_steps_per_check(tmp_path, n, variant, activation):
    model = make_model(n, 5, variant=variant, activation=activation, seed=n)
    export(model, tmp_path, steps_per_check=8, validate=False)
    report = check(model, tmp_path, runtimes=runtimes_for("loop"), batch_sizes=BATCHES, seed=1)
    assert report.passed, str(report)
    for row in report.rows:
        if row.check == "inverse":
            assert all(a % 8 == 0 and a >= b for a, b in zip(row.iterations, row.eager_iterations))


@pytest.mark.parametrize("activation", sorted(ALLOWED_ACTIVATIONS))
@pytest.mark.parametrize(
    # the activation's translation is the same in every mode; folded runs fastest on the reference
    "mode",
    ["folded", *(pytest.param(m, marks=pytest.mark.slow) for m in ("loop", "portable"))],
)
def test_every_allowed_activation_exports(tmp_path, activation, mode):
    model = make_model(5, 2, variant="mlp", activation=activation, seed=3)
    export(model, tmp_path, validate=False, **EXPORT_OPTIONS[mode])
    report = check(
        model, tmp_path, runtimes=runtimes_for(mode), batch_sizes=(1, 9), leading_dims=False
    )
    assert report.passed, str(report)


def test_the_matrix_crosses_every_activation_with_every_other_factor():
    configs = QUICK + WIDE
    for index, values in ((0, WIDTHS), (1, VARIANTS), (3, DEPTHS), (4, MODES)):
        met = {(config[2], config[index]) for config in configs}
        assert met == set(itertools.product(ACTIVATIONS, values))
    assert {(c[1], c[4]) for c in QUICK} == set(itertools.product(VARIANTS, MODES))
