"""bench: the baseline computes the model's function; timing and target bookkeeping."""

import pytest
import torch

from iresnet_onnx.bench import (
    BASELINE,
    Baseline,
    BenchRow,
    format_matrix,
    interleaved_medians,
    suite_model,
    targets,
    torch_threads,
)


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


def test_interleaved_medians_time_every_candidate():
    calls = {"a": 0, "b": 0}

    def count(name):
        calls[name] += 1

    medians = interleaved_medians(
        {"a": lambda: count("a"), "b": lambda: count("b")}, repeats=10, warmup=2
    )
    assert set(medians) == {"a", "b"} and all(value >= 0 for value in medians.values())
    assert calls["a"] == calls["b"] >= 12


def test_torch_threads_restores_the_count():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def fake_rows(ort_forward_us: float) -> list[BenchRow]:
    rows = [
        BenchRow(BASELINE, "forward", 64, 1, 60.0, 1.0),
        BenchRow("onnxruntime folded", "forward", 64, 1, ort_forward_us, 60.0 / ort_forward_us),
        BenchRow(BASELINE, "inverse", 64, 1, 1000.0, 1.0),
        BenchRow("onnxruntime folded", "inverse", 64, 1, 300.0, 1000.0 / 300.0, iterations=8.0),
        BenchRow("iresnet_onnx eager", "forward", 64, 1, 100.0, 0.6),
    ]
    return rows


@pytest.mark.parametrize(("ort_us", "met"), [(10.0, True), (20.0, False)])
def test_targets_compare_ratios_with_their_goals(ort_us, met):
    goals = {goal["what"]: goal for goal in targets(fake_rows(ort_us), width=64)}
    assert goals["folded forward B=1"]["met"] is met
    assert goals["folded forward B=1"]["value"] == pytest.approx(60.0 / ort_us, rel=1e-3)
    assert goals["eager forward B=1 time / baseline"]["value"] == pytest.approx(1 / 0.6, rel=1e-3)
    efficiency = goals["inverse efficiency folded B=1"]["value"]
    assert efficiency == pytest.approx(300.0 / (8.0 * ort_us), rel=1e-3)


def test_format_matrix_has_a_cell_per_row():
    table = format_matrix(fake_rows(10.0), 64)
    assert "| onnxruntime folded | 10 µs (6.00×) |" in table
    assert table.count("\n") == 1 + len({r.implementation for r in fake_rows(10.0)})
