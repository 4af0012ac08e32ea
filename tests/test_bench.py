"""bench: the baseline computes the model's function; timing and target bookkeeping."""

import pytest
import torch

from iresnet_onnx.bench import (
    BASELINE,
    DEFAULT_EXPORT,
    FROZEN,
    Baseline,
    BenchRow,
    Timing,
    format_matrix,
    format_table,
    ratio,
    suite_model,
    time_in_blocks,
    torch_threads,
)
from scripts.bench import targets


def test_baseline_is_the_same_function_as_the_model():
    model = suite_model(12, nblocks=3)
    baseline = Baseline(model)
    x = torch.randn(7, 12)
    with torch.no_grad():
        torch.testing.assert_close(baseline.forward(x), model(x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(
            baseline.inverse(x, 100, 1e-6, 1e-6),
            model.inverse(x, 100, 1e-6, 1e-6),
            rtol=1e-4,
            atol=1e-4,
        )


def test_time_in_blocks_times_every_candidate_in_blocks():
    order = []
    timings = time_in_blocks(
        {"a": lambda: order.append("a"), "b": lambda: order.append("b")},
        calls=10, rounds=2, warmup=1, pause=0.0,
    )  # fmt: skip
    assert set(timings) == {"a", "b"}
    # each round: a's block (1 warm-up + 5 timed calls), then b's
    assert order == (["a"] * 6 + ["b"] * 6) * 2
    assert all(len(t.rounds) == 2 and t.low <= t.median <= t.high for t in timings.values())


def test_ratio_and_instability_come_from_the_rounds():
    steady = Timing(2.0, 1.9, 2.1, (2.0, 2.0, 2.0))
    half = Timing(1.0, 0.9, 1.1, (1.0, 1.0, 1.0))
    noisy = Timing(1.0, 0.2, 3.0, (0.25, 1.0, 2.5))
    assert ratio(steady, half) == (2.0, 2.0, 2.0)
    assert not BenchRow.of("x", "forward", 4, 1, half, steady).unstable
    row = BenchRow.of("x", "forward", 4, 1, noisy, steady)
    assert row.ratio == 2.0 and (row.ratio_low, row.ratio_high) == (0.8, 8.0) and row.unstable
    assert "⚠ unstable" in format_table([row])


def test_torch_threads_restores_the_count():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def fake_rows(inverse_us: float) -> list[BenchRow]:
    """The default export's inverse at B=1 takes ``inverse_us`` against a 1000 µs baseline."""
    return [
        BenchRow(BASELINE, "forward", 64, 1, 60.0, 1.0),
        BenchRow(DEFAULT_EXPORT, "forward", 64, 1, 20.0, 3.0),
        BenchRow(BASELINE, "inverse", 64, 1, 1000.0, 1.0),
        BenchRow(DEFAULT_EXPORT, "inverse", 64, 1, inverse_us, 1000.0 / inverse_us),
        BenchRow("iresnet_onnx eager", "forward", 64, 1, 75.0, 0.8),
        BenchRow("iresnet_onnx TorchScript", "forward", 64, 1, 200.0, 0.3),
        BenchRow(FROZEN, "forward", 64, 1, 62.5, 0.96),
    ]


@pytest.mark.parametrize(("inverse_us", "met"), [(100.0, True), (250.0, False)])
def test_targets_compare_ratios_with_their_goals(inverse_us, met):
    goals = {goal["what"]: goal for goal in targets(fake_rows(inverse_us), width=64)}
    inverse = goals["default export, inverse B=1, n=64"]
    assert inverse["met"] is met and inverse["value"] == pytest.approx(1000.0 / inverse_us)
    frozen = goals["frozen forward B=1 n=64: time / baseline's"]
    assert frozen["value"] == pytest.approx(1 / 0.96, rel=1e-3) and frozen["met"]
    script = goals["TorchScript forward B=1 n=64: speed / eager's"]
    assert script["value"] == pytest.approx(75.0 / 200.0, rel=1e-3) and not script["met"]
    worst = next(goal for goal in goals.values() if goal["what"].startswith("default export ≥"))
    assert worst["value"] == pytest.approx(min(3.0, 1000.0 / inverse_us))


def test_format_matrix_has_a_cell_per_row():
    table = format_matrix(fake_rows(100.0), 64)
    assert f"| {DEFAULT_EXPORT} | 20 µs (3.00×) | 100 µs (10.00×) |" in table
    assert table.count("\n") == 1 + len({r.implementation for r in fake_rows(100.0)})
