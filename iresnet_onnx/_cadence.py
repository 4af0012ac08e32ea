"""How often an exported inverse tests convergence: ``steps_per_check="auto"`` picks K, the
fixed-point steps per Loop iteration of inverse.onnx, from the model's own step counts.

The graph takes K steps, then tests the rows still running (their residuals, a reduction); the
first K steps and their test run outside any Loop, each further K in a Loop iteration that also
compacts the running rows. A row that eager stops after s steps therefore takes K·⌈s/K⌉ steps
and ⌈s/K⌉ − 1 Loop iterations in the graph: too small a K pays for tests, too large a K for
steps past the fixed point. The K chosen minimises that cost summed over the blocks and averaged
over rows drawn from N(0, I), what a flow's inverse decodes, at the model's own solver settings.
"""

import numpy as np
import torch

from ._frozen import freeze
from .exporters import STEPS_PER_CHECK_LIMIT

__all__ = ["CHECK_COST", "SAMPLE_ROWS", "auto_steps_per_check", "best_steps_per_check", "row_steps"]

CHECK_COST = 11.0
"""What a Loop iteration's test costs, in fixed-point steps, at batch 1 on onnxruntime:
``python scripts/check_cost.py`` fits it from the inverse's time at K = 1…16
(results/check_cost.md)."""

SAMPLE_ROWS = 16
"""Rows the step counts are measured on: each is solved alone, as eager solves a batch of one."""


def row_steps(model: torch.nn.Module, rows: int = SAMPLE_ROWS, seed: int = 0) -> np.ndarray:
    """``[rows, blocks]``: the fixed-point steps eager takes for each row in each block (block
    order, the last block solved first) at the model's solver settings, on seeded N(0, I) rows.
    The model is not touched: its frozen form solves."""
    frozen = freeze(model)
    blocks = _blocks(frozen)
    dtype = next(model.parameters()).dtype
    generator = torch.Generator().manual_seed(seed)
    y = torch.randn(rows, frozen.input_size, generator=generator, dtype=dtype)
    counts = np.zeros((rows, len(blocks)), np.int64)
    with torch.no_grad():
        for row in range(rows):
            x = y[row : row + 1]
            for index in reversed(range(len(blocks))):
                x, steps, _ = blocks[index].inverse_with_stats(x)
                counts[row, index] = int(steps)
    return counts


def best_steps_per_check(
    counts: np.ndarray, limit: int = STEPS_PER_CHECK_LIMIT, check_cost: float = CHECK_COST
) -> int:
    """The K in 1…``limit`` with the least mean cost K·⌈s/K⌉ + ``check_cost``·(⌈s/K⌉ − 1) over
    the step counts s (summed over each row's blocks); the smallest such K on a tie."""
    steps = np.asarray(counts, np.float64).reshape(len(counts), -1)

    def cost(k: int) -> float:
        checks = np.ceil(steps / k)
        return float((k * checks + check_cost * (checks - 1)).sum(axis=1).mean())

    return min(range(1, max(1, limit) + 1), key=lambda k: (cost(k), k))


def auto_steps_per_check(model: torch.nn.Module) -> int:
    """K for ``model``'s inverse.onnx (see the module docstring), never above its maxiter: a K
    past maxiter would leave every step to the Loop that takes the rest one at a time."""
    maxiter = min(int(block.maxiter) for block in _blocks(model))
    return best_steps_per_check(row_steps(model), min(STEPS_PER_CHECK_LIMIT, maxiter))


def _blocks(module: torch.nn.Module) -> list[torch.nn.Module]:
    """An iResNet's blocks (or its frozen form's); a lone block is its own."""
    return list(module.blocks) if hasattr(module, "blocks") else [module]
