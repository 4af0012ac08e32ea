"""The components of an exported iResNet's inverse: the fixed-point iteration x = y − g(x).

``BlockInverse``       a fixed-point ``Loop`` with a data-dependent stop, row by row
``BlockInverseFixed``  the same iteration as a gated ``Scan`` of a fixed number of steps (no Loop)

Both follow :func:`iresnet_onnx._fixed_point.solve` step for step: the same residual, the same
stopping rule, the same per-row semantics, so eager and ONNX take the same number of steps. Both
carry v = y − x rather than x (see :func:`block_inverse_component`): the same iterates in exact
arithmetic, a node fewer per step.
"""

from collections.abc import Sequence

import numpy as np
import onnx_ir as ir

from .._structure import Step
from ._builder import BOOL, INT64, Component, Ops
from ._components import apply_steps, bottleneck_inputs, shifted_bottleneck_component

__all__ = ["block_inverse_component", "block_inverse_fixed_component"]


def _row_residuals(
    ops: Ops, v: ir.Value, v_previous: ir.Value, x_previous: ir.Value, rtol: ir.Value
) -> ir.Value:
    """max over each row of |x − x_prev| − rtol·|x_prev|, read as |v − v_prev| (v = y − x):
    ``[rows]``."""
    change = ops.Abs(ops.Sub(v, v_previous))
    return ops.reduce("ReduceMax", ops.Sub(change, ops.Mul(rtol, ops.Abs(x_previous))), [1], 0)


def _first_layer_at(
    ops: Ops, steps: Sequence[Step], y: ir.Value, parameters: Sequence[ir.Value]
) -> tuple[ir.Value, ir.Value, list[ir.Value]]:
    """``(p, weight0, the later steps' parameters)``: p = the first linear step at y, computed
    once per call, which the ``ShiftedBottleneck`` of every step reads."""
    first = steps[0]
    bias = parameters[1] if first.bias else None
    p = ops.Gemm(y, parameters[0], bias, transB=int(first.tall))
    return p, parameters[0], list(parameters[2 if first.bias else 1 :])


def _block_outputs(
    ops: Ops, x: ir.Value, residuals: ir.Value, steps: ir.Value
) -> tuple[ir.Value, ir.Value, ir.Value]:
    """(x, the most steps a row took (``steps``), the largest final row residual — a NaN row as
    +inf, so that no runtime's NaN handling in ReduceMax hides it)."""
    infinite = ops.Where(ops.IsNaN(residuals), ops.const(np.inf), residuals)
    return x, steps, ops.reduce("ReduceMax", infinite, None, keepdims=0)


def block_inverse_component(
    steps: Sequence[Step], width: int, maxiter_cap: int, steps_per_check: int = 1
) -> Component:
    """``BlockInverse(y, parameters…, maxiter, atol, rtol) -> (x, iterations, residual)``.

    x₀ = y, x_{k+1} = y − g(x_k), row by row: a row stops once its residual max(|x_{k+1} − x_k| −
    rtol·|x_k|) is ≤ atol (a NaN compares false and stops it too; it is reported as +inf, never
    "converged"), or after maxiter steps (clipped to ``maxiter_cap``, so that no input a client
    passes makes a call run longer). Each Loop iteration works on the running rows only
    (``NonZero`` → ``Gather`` → steps → ``ScatterND``): the cost follows the rows, and a row's
    result does not depend on its batch. ``iterations`` is the most steps a row took,
    ``residual`` the largest final row residual.

    The Loop carries v = y − x (v₀ = 0, v_{k+1} = g(y − v_k): the same iterates in exact
    arithmetic), so that a step is the ``ShiftedBottleneck``, a node fewer than y − g(x).

    The steps are tested every K = ``steps_per_check`` (a test with its compaction costs
    several steps at batch 1): the first K steps and their test run outside any Loop (every row
    runs them: nothing to compact, no Loop iteration to pay), then a Loop takes K steps per
    iteration for the rest of ⌊maxiter/K⌋ while a row runs, and for K > 1 a second Loop the
    remaining maxiter mod K steps one at a time (where maxiter < K, the first K steps are dropped
    and the second Loop takes them all). A row then stops at the first multiple of K at or after
    the step where eager stops (up to K − 1 extra steps, each closer to the fixed point), never
    after maxiter; ``steps_per_check=1`` stops every row exactly where eager does.
    """
    shifted = shifted_bottleneck_component(steps)

    def body(ops: Ops, y: ir.Value, *rest: ir.Value) -> tuple[ir.Value, ir.Value, ir.Value]:
        *parameters, maxiter, atol, rtol = rest
        dtype = ops.dtype
        p, weight, later = _first_layer_at(ops, steps, y, parameters)

        def loop(name: str, trips: ir.Value, k: int, v, residuals, taken):
            def step(inner: Ops, v, residuals, taken):
                # [A, 1] indices of the running rows: GatherND and ScatterND take them as they are
                rows = inner.Transpose(inner.NonZero(inner.Greater(residuals, atol)), perm=[1, 0])
                v_active, p_active = inner.GatherND(v, rows), inner.GatherND(p, rows)
                for _ in range(k):
                    v_previous = v_active
                    v_active = inner.invoke(shifted, v_active, p_active, weight, *later)
                x_previous = inner.Sub(inner.GatherND(y, rows), v_previous)
                v = inner.ScatterND(v, rows, v_active)
                residuals = inner.ScatterND(
                    residuals, rows, _row_residuals(inner, v_active, v_previous, x_previous, rtol)
                )
                # the slowest row runs in every iteration: its count is the Loop's
                taken = inner.Add(taken, inner.const(k, INT64))
                return _any_running(inner, residuals, atol), [v, residuals, taken]

            return ops.loop(
                name, trips, ops.const(True, BOOL),
                {
                    "v": (v, dtype, ["batch", width]),
                    "residuals": (residuals, dtype, ["batch"]),
                    "taken": (taken, INT64, []),
                },
                step,
            )  # fmt: skip

        limit = ops.Min(maxiter, ops.const(maxiter_cap, INT64))
        K = ops.const(steps_per_check, INT64)
        v, residuals, taken, first = _first_check(
            ops, steps, shifted, y, p, [weight, *later], limit, steps_per_check, K, rtol
        )
        # then K steps per test while a row runs, for the rest of ⌊maxiter/K⌋ …
        trips = ops.Mul(ops.Sub(ops.Div(limit, K), first), _running_count(ops, residuals, atol))
        state = loop("fixed_point", trips, steps_per_check, v, residuals, taken)
        if steps_per_check > 1:
            # … and the rest of maxiter, one step at a time, not at all once every row stopped
            rest = ops.Mul(ops.Mod(limit, K), _running_count(ops, state[1], atol))
            state = loop("fixed_point_rest", rest, 1, *state)
        v, residuals, taken = state
        return _block_outputs(ops, ops.Sub(y, v), residuals, taken)

    return Component(
        "BlockInverse", ("y", *bottleneck_inputs(steps), "maxiter", "atol", "rtol"), body,
        doc="x with x + g(x) = y, by Banach fixed-point iteration row by row; also the step "
        "count and residual.",
        outputs=3,
    )  # fmt: skip


def _first_check(
    ops: Ops, steps: Sequence[Step], shifted: Component, y: ir.Value, p: ir.Value,
    weights: list[ir.Value], limit: ir.Value, k: int, K: ir.Value, rtol: ir.Value,
) -> tuple[ir.Value, ir.Value, ir.Value, ir.Value]:  # fmt: skip
    """``(v, residuals, taken, 1 or 0)`` after the first K = ``k`` steps (``K``: the constant)
    and their test, outside any Loop: every row runs them, so there is nothing to compact and no
    Loop iteration to pay (at batch 1 these cost more than the steps). The first step, from
    v₀ = 0, is the bottleneck after its first layer, which at y is p. Where maxiter < K they are
    dropped (v = 0, residuals = inf, 0 taken) and the Loops after take all of maxiter."""
    v_previous, v = ops.const(0.0), apply_steps(ops, p, steps[1:], weights[1:])
    for _ in range(k - 1):
        v_previous, v = v, ops.invoke(shifted, v, p, *weights)
    x_previous = y if k == 1 else ops.Sub(y, v_previous)
    residuals = _row_residuals(ops, v, v_previous, x_previous, rtol)
    allowed = ops.Not(ops.Less(limit, K))
    first = ops.Cast(allowed, to=INT64)
    v = ops.Where(allowed, v, ops.const(0.0))
    residuals = ops.Where(allowed, residuals, ops.const(np.inf))
    return v, residuals, ops.Mul(K, first), first


def _running_count(ops: Ops, residuals: ir.Value, atol: ir.Value) -> ir.Value:
    """1 if some row's residual is still above atol, else 0 (int64; a NaN row is not running)."""
    return ops.reduce("ReduceMax", ops.Cast(ops.Greater(residuals, atol), to=INT64), None, 0)


def _any_running(ops: Ops, residuals: ir.Value, atol: ir.Value) -> ir.Value:
    """Whether some row's residual is still above atol (bool)."""
    return ops.Greater(_running_count(ops, residuals, atol), ops.const(0, INT64))


def block_inverse_fixed_component(steps: Sequence[Step], width: int, count: int) -> Component:
    """``BlockInverseFixed`` — :func:`block_inverse_component`'s interface and stopping rule, as a
    ``Scan`` of exactly ``count`` steps (fixed at export) for runtimes without ``Loop``.

    Each step is gated per row: once a row's residual is ≤ atol (or NaN), or k = maxiter, ``Where``
    keeps its iterate, residual and step count as they were, so the outputs are those of the steps
    where the Loop would have stopped each row. Every row is computed at every step (no
    compaction: a Scan's shapes are fixed). A row that needs more than ``count`` steps ends with
    residual > atol, as a Loop capped at ``count`` would. It carries v = y − x and tests as the
    Loop does, so that the two forms compute the same numbers.
    """
    shifted = shifted_bottleneck_component(steps)

    def body(ops: Ops, y: ir.Value, *rest: ir.Value) -> tuple[ir.Value, ir.Value, ir.Value]:
        *parameters, maxiter, atol, rtol = rest
        dtype = ops.dtype
        p, weight, later = _first_layer_at(ops, steps, y, parameters)
        later = [weight, *later]

        def step(inner: Ops, tick, v, residuals, counts, y, p, maxiter, atol, rtol, *parameters):
            # the body must read the step index (OpenVINO runs a Scan whose scan input is unused
            # only once); while a row runs, its count equals the index
            running = inner.And(inner.Less(tick, maxiter), inner.Greater(residuals, atol))
            v_next = inner.invoke(shifted, v, p, *parameters)
            residual = _row_residuals(inner, v_next, v, inner.Sub(y, v), rtol)
            return [
                inner.Where(inner.Unsqueeze(running, inner.const([1], INT64)), v_next, v),
                inner.Where(running, residual, residuals),
                inner.Where(running, inner.Add(counts, inner.const(1, INT64)), counts),
                *(inner.Identity(value) for value in (y, p, maxiter, atol, rtol, *parameters)),
            ]

        rows = ops.op("Shape", y, start=0, end=1)
        state = {
            "v": (ops.Expand(ops.const(0.0), ops.op("Shape", y)), dtype, ["batch", width]),
            "residuals": (ops.Expand(ops.const(np.inf), rows), dtype, ["batch"]),
            "counts": (ops.Expand(ops.const(0, INT64), rows), INT64, ["batch"]),
            "y": (y, dtype, ["batch", width]),
            "p": (p, dtype, ["batch", None]),
            "maxiter": (maxiter, INT64, []),
            "atol": (atol, dtype, []),
            "rtol": (rtol, dtype, []),
        }
        for name, parameter in zip(shifted.inputs[2:], later):
            # the rank is all a function body knows; inline, the value carries its shape
            rank = 2 if name.startswith("weight") else 1
            shape = [None] * rank if parameter.shape is None else list(parameter.shape)
            state[name] = (parameter, dtype, shape)
        v, residuals, counts, *_ = ops.gated_scan("fixed_steps", count, state, step)
        most = ops.reduce("ReduceMax", counts, None, keepdims=0)
        return _block_outputs(ops, ops.Sub(y, v), residuals, most)

    return Component(
        f"BlockInverseFixed{count}", ("y", *bottleneck_inputs(steps), "maxiter", "atol", "rtol"),
        body,
        doc=f"x with x + g(x) = y by {count} gated fixed-point steps per row (no Loop); also the "
        "step count and residual.",
        outputs=3,
    )  # fmt: skip
