"""steps_per_check="auto": K from the model's own step counts (iresnet_onnx._cadence)."""

import numpy as np
import onnx
import pytest
import torch

from iresnet_onnx import export
from iresnet_onnx._cadence import (
    CHECK_COST,
    auto_steps_per_check,
    best_steps_per_check,
    row_steps,
)
from iresnet_onnx.errors import UsageError
from tests.conftest import make_model


def cost(counts: np.ndarray, k: int) -> float:
    """The cost the choice minimises, written out row by row and block by block."""
    rows = [
        sum(k * -(-int(s) // k) + CHECK_COST * (-(-int(s) // k) - 1) for s in row) for row in counts
    ]
    return sum(rows) / len(rows)


@pytest.mark.parametrize(
    ("counts", "limit", "expected"),
    [
        ([[9, 9, 9]], 64, 9),  # one test per block, no step past the fixed point
        ([[1, 1]], 64, 1),
        ([[8, 9, 7, 8, 9]], 64, 9),  # K = 8 would test twice where 9 steps are needed
        ([[30, 30]], 8, 8),  # never above the limit (the model's maxiter)
    ],
)
def test_the_cheapest_k_is_chosen(counts, limit, expected):
    assert best_steps_per_check(np.array(counts), limit) == expected


def test_the_choice_is_the_minimum_of_the_cost_written_out():
    counts = np.random.default_rng(0).integers(1, 40, size=(12, 4))
    k = best_steps_per_check(counts)
    assert all(cost(counts, k) <= cost(counts, other) for other in range(1, 65))
    assert all(cost(counts, other) > cost(counts, k) for other in range(1, k))  # ties: smallest


def test_row_steps_are_eagers_own_counts_row_by_row():
    model = make_model(6, 3, activation="Tanh", seed=3)
    counts = row_steps(model, rows=5, seed=11)
    assert counts.shape == (5, 3)
    y = torch.randn(5, 6, generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        for row in range(5):
            x = y[row : row + 1]
            for index in reversed(range(3)):  # the inverse solves the last block first
                x, steps, _ = model.blocks[index].inverse_with_stats(x)
                assert counts[row, index] == int(steps)


def test_an_auto_export_records_the_k_it_chose_and_leaves_the_model_alone(tmp_path):
    model = make_model(8, 2, seed=5).train()  # training mode: a solve there would update buffers
    before = {name: value.clone() for name, value in model.state_dict().items()}
    result = export(model, tmp_path / "auto", validate=True)
    chosen = auto_steps_per_check(model)
    metadata = {p.key: p.value for p in onnx.load(result.inverse).metadata_props}
    assert metadata["iresnet_onnx.steps_per_check"] == str(chosen)
    assert result.report is not None and result.report.passed  # parity under that K's step rule
    after = model.state_dict()
    assert model.training and all(torch.equal(before[name], after[name]) for name in before)


def test_a_k_past_maxiter_is_never_chosen():
    model = make_model(4, 2, seed=2, maxiter=3)
    assert auto_steps_per_check(model) <= 3


def test_a_word_other_than_auto_is_refused(tmp_path):
    with pytest.raises(UsageError, match='steps_per_check must be "auto" or an int in 1–64'):
        export(make_model(4, 1), tmp_path, steps_per_check="fast")
