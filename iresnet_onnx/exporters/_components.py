"""The components of an exported iResNet, written beside the math they compute.

``SpectralNorm``       σ of a stack of matrices: one power-iteration ``Loop`` for all of them
``Contraction``        A′ = A·min(c/σ, 1)
``Bottleneck``         g(x), the block's ``nn.Sequential`` as Gemm and activation nodes
``BlockForward``       y = x + g(x)
``BlockInverse``       x = y − g(x) by a fixed-point ``Loop`` with a data-dependent stop
``BlockInverseFixed``  the same iteration as a gated ``Scan`` of a fixed number of steps (no Loop)
``BlockDensity``       y = x + g(x) and log|det ∂y/∂x| by the matrix determinant lemma

Each mirrors an eager implementation line for line (``spectral.power_iteration``,
``LinearContraction.effective_weight``, ``iResNetBlock.forward`` / ``_fixed_point``), so eager and
ONNX take the same number of iterations and agree to float precision. A component is written once
and emitted inline (the default) or as an ONNX function (see :mod:`.builder`).
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from ._builder import BOOL, INT64, Component, Ops

# torch.nn activation (by class name) → ONNX: (op type, attributes, extra constant inputs)
ACTIVATION_OPS: dict[str, tuple[str, dict, tuple[float, ...]]] = {
    "CELU": ("Celu", {"alpha": 1.0}, ()),
    "ELU": ("Elu", {"alpha": 1.0}, ()),
    "Hardtanh": ("Clip", {}, (-1.0, 1.0)),
    "Identity": ("Identity", {}, ()),
    "LeakyReLU": ("LeakyRelu", {"alpha": 0.01}, ()),
    "ReLU": ("Relu", {}, ()),
    "ReLU6": ("Clip", {}, (0.0, 6.0)),
    "Sigmoid": ("Sigmoid", {}, ()),
    "Softplus": ("Softplus", {}, ()),
    "Softsign": ("Softsign", {}, ()),
    "Tanh": ("Tanh", {}, ()),
}


@dataclass(frozen=True)
class LinearStep:
    """A Gemm of the bottleneck: ``x·Tᵀ + b`` when ``transpose`` (T = A′), else ``x·T + b`` (T = A′ᵀ)."""

    transpose: bool
    bias: bool


@dataclass(frozen=True)
class ActivationStep:
    name: str


BottleneckStep = LinearStep | ActivationStep


def spectral_norm_component(
    layers: int, size: int, atol: float, rtol: float, maxiter: int
) -> Component:
    """``SpectralNorm(T[L,M,N], x0[L,N]) -> σ[L,1,1]`` for ``layers`` tall matrices T (N = size).

    The algorithm of ``spectral.power_iteration``, batched: every layer stops on its own test (a
    converged layer's iterate is frozen by ``Where``), the Loop stops when none is left. The test
    runs before the first update, so a converged warm start costs zero updates. The Loop starts
    with a constant true condition, not with that test: a start condition computed from
    initializers alone is constant-folded by OpenVINO, whose Loop shape inference then gives the
    carried values a leading dimension of 0. An all-converged first pass updates nothing.
    """

    def body(ops: Ops, T: ir.Value, x0: ir.Value) -> ir.Value:
        zero, one = ops.const(0.0), ops.const(1.0)
        atol_, rtol_ = ops.const(atol), ops.const(rtol)
        scale = ops.reduce("ReduceMax", ops.Abs(T), [1, 2], keepdims=1)
        scale = ops.Where(ops.Greater(scale, zero), scale, one)
        T = ops.Div(T, scale)
        T_t = ops.Transpose(T, perm=[0, 2, 1])

        def evaluate(ops: Ops, x: ir.Value) -> tuple[ir.Value, ir.Value, ir.Value]:
            """λ = ‖T̂x‖², z = T̂ᵀT̂x, and how far ‖z − λx‖ is above rtol·λ + atol."""
            Tx = ops.MatMul(T, x)
            lam = ops.reduce("ReduceSumSquare", Tx, [1, 2], keepdims=1)
            z = ops.MatMul(T_t, Tx)
            residual = ops.reduce("ReduceL2", ops.Sub(z, ops.Mul(lam, x)), [1, 2], keepdims=1)
            excess = ops.Sub(residual, ops.Add(ops.Mul(rtol_, lam), atol_))
            return lam, z, excess

        x = ops.Unsqueeze(x0, ops.const([-1], INT64))
        x = ops.Div(x, ops.reduce("ReduceL2", x, [1], keepdims=1))
        lam, z, excess = evaluate(ops, x)

        def iterate(inner: Ops, x, z, lam, excess):
            active = inner.Greater(excess, zero)
            x = inner.Where(active, inner.Div(z, inner.reduce("ReduceL2", z, [1], keepdims=1)), x)
            lam, z, excess = evaluate(inner, x)
            keep_going = inner.Greater(inner.reduce("ReduceMax", excess, None, keepdims=0), zero)
            return keep_going, [x, z, lam, excess]

        dtype = ops.dtype
        _, _, lam, _ = ops.loop(
            "power_iteration",
            ops.const(maxiter, INT64),
            ops.const(True, BOOL),
            {
                "x": (x, dtype, [layers, size, 1]),
                "z": (z, dtype, [layers, size, 1]),
                "lam": (lam, dtype, [layers, 1, 1]),
                "excess": (excess, dtype, [layers, 1, 1]),
            },
            iterate,
        )
        return ops.Mul(scale, ops.Sqrt(lam))

    return Component(
        "SpectralNorm", ("T", "x0"), body,
        doc="σ = ‖T‖₂ of a stack of tall matrices by power iteration on T̂ᵀT̂, T̂ = T/max|T|; "
        f"stops when ‖T̂ᵀT̂x − λx‖ ≤ {rtol:g}·λ + {atol:g} or after {maxiter} updates.",
    )  # fmt: skip


def contraction_component() -> Component:
    """``Contraction(A, σ, c) -> A·min(c/σ, 1)`` (broadcasting over a stack)."""

    def body(ops: Ops, A: ir.Value, sigma: ir.Value, c: ir.Value) -> ir.Value:
        return ops.Mul(A, ops.Min(ops.Div(c, sigma), ops.const(1.0)))

    return Component(
        "Contraction", ("A", "sigma", "c"), body,
        doc="A′ = A·min(c/σ, 1): the weight of a LinearContraction, ‖A′‖₂ ≤ c.",
    )  # fmt: skip


def _activation(ops: Ops, name: str, x: ir.Value) -> ir.Value:
    op_type, attributes, constants = ACTIVATION_OPS[name]
    if name == "LeakyReLU" and ops.dtype == ir.DataType.DOUBLE:
        # ONNX float attributes are float32: alpha = 0.01 would be off by 1e-9 in a float64 graph
        return ops.Max(x, ops.Mul(x, ops.const(attributes["alpha"])))
    return ops.op(op_type, x, *(ops.const(v) for v in constants), **attributes)


def bottleneck_inputs(steps: Sequence[BottleneckStep]) -> list[str]:
    names = []
    for index, step in enumerate(steps):
        if isinstance(step, LinearStep):
            names += [f"weight{index}"] + ([f"bias{index}"] if step.bias else [])
    return names


def bottleneck_component(steps: Sequence[BottleneckStep]) -> Component:
    """``Bottleneck(x, weight0, bias0, …) -> g(x)``: the block's ``nn.Sequential``, step by step."""

    def body(ops: Ops, x: ir.Value, *parameters: ir.Value) -> ir.Value:
        remaining = list(parameters)
        for step in steps:
            if isinstance(step, LinearStep):
                weight = remaining.pop(0)
                bias = remaining.pop(0) if step.bias else None
                x = ops.Gemm(x, weight, bias, transB=int(step.transpose))
            else:
                x = _activation(ops, step.name, x)
        return x

    return Component(
        "Bottleneck", ("x", *bottleneck_inputs(steps)), body,
        doc="g(x): the residual branch of an iResNet block, Lip(g) < 1.",
    )  # fmt: skip


def block_forward_component(bottleneck: Component) -> Component:
    """``BlockForward(x, parameters…) -> x + g(x)``."""

    def body(ops: Ops, x: ir.Value, *parameters: ir.Value) -> ir.Value:
        return ops.Add(x, ops.invoke(bottleneck, x, *parameters))

    return Component("BlockForward", ("x", *bottleneck.inputs[1:]), body, doc="y = x + g(x).")


def _row_residuals(ops: Ops, x: ir.Value, x_previous: ir.Value, rtol: ir.Value) -> ir.Value:
    """max over each row of |x − x_prev| − rtol·|x_prev|: ``[rows]``."""
    change = ops.Abs(ops.Sub(x, x_previous))
    return ops.reduce("ReduceMax", ops.Sub(change, ops.Mul(rtol, ops.Abs(x_previous))), [1], 0)


def _block_outputs(
    ops: Ops, x: ir.Value, residuals: ir.Value, steps: ir.Value
) -> tuple[ir.Value, ir.Value, ir.Value]:
    """(x, the most steps a row took (``steps``: per row, or already the most), the largest final
    row residual — a NaN row as +inf, so that no runtime's NaN handling in ReduceMax hides it)."""
    infinite = ops.Where(ops.IsNaN(residuals), ops.const(np.inf), residuals)
    residual = ops.reduce("ReduceMax", infinite, None, keepdims=0)
    return x, ops.reduce("ReduceMax", steps, None, keepdims=0), residual


def block_inverse_component(
    bottleneck: Component, width: int, maxiter_cap: int, steps_per_check: int = 1
) -> Component:
    """``BlockInverse(y, parameters…, maxiter, atol, rtol) -> (x, iterations, residual)``.

    x₀ = y, x_{k+1} = y − g(x_k), row by row: a row stops once its residual max(|x_{k+1} − x_k| −
    rtol·|x_k|) is ≤ atol (a NaN compares false and stops it too; it is reported as +inf, never
    "converged"), or after maxiter steps (clipped to ``maxiter_cap``, so that no input a client
    passes makes a call run longer). Each Loop iteration works on the running rows only
    (``NonZero`` → ``Gather`` → steps → ``ScatterND``): the cost follows the rows, and a row's
    result does not depend on its batch. ``iterations`` is the most steps a row took,
    ``residual`` the largest final row residual.

    With ``steps_per_check = K > 1`` a first Loop takes K steps per iteration and tests only the
    last (the test and the compaction cost as much as a step at batch 1), for ⌊maxiter/K⌋
    iterations; a second Loop takes the remaining maxiter mod K steps one at a time. A row then
    stops at the first multiple of K at or after the step where eager stops (up to K − 1 extra
    steps, each closer to the fixed point), never after maxiter; ``steps_per_check=1`` stops every
    row exactly where eager does.
    """

    def body(ops: Ops, y: ir.Value, *rest: ir.Value) -> tuple[ir.Value, ir.Value, ir.Value]:
        *parameters, maxiter, atol, rtol = rest
        dtype = ops.dtype

        def loop(name: str, trips: ir.Value, k: int, x, residuals, taken):
            def step(inner: Ops, x, residuals, taken):
                # [A, 1] indices of the running rows: GatherND and ScatterND take them as they are
                rows = inner.Transpose(inner.NonZero(inner.Greater(residuals, atol)), perm=[1, 0])
                x_active, y_active = inner.GatherND(x, rows), inner.GatherND(y, rows)
                for _ in range(k):
                    x_previous = x_active
                    x_active = inner.Sub(y_active, inner.invoke(bottleneck, x_active, *parameters))
                x = inner.ScatterND(x, rows, x_active)
                residuals = inner.ScatterND(
                    residuals, rows, _row_residuals(inner, x_active, x_previous, rtol)
                )
                # the slowest row runs in every iteration: its count is the Loop's
                taken = inner.Add(taken, inner.const(k, INT64))
                return _any_running(inner, residuals, atol), [x, residuals, taken]

            return ops.loop(
                name, trips, ops.const(True, BOOL),
                {
                    "x": (x, dtype, ["batch", width]),
                    "residuals": (residuals, dtype, ["batch"]),
                    "taken": (taken, INT64, []),
                },
                step,
            )  # fmt: skip

        limit = ops.Min(maxiter, ops.const(maxiter_cap, INT64))
        rows = ops.op("Shape", y, start=0, end=1)  # [batch]
        state = (y, ops.Expand(ops.const(np.inf), rows), ops.const(0, INT64))
        if steps_per_check == 1:
            state = loop("fixed_point", limit, 1, *state)
        else:
            K = ops.const(steps_per_check, INT64)
            state = loop("fixed_point", ops.Div(limit, K), steps_per_check, *state)
            # the rest of maxiter, one step at a time, and not at all once every row stopped
            rest = ops.Mul(ops.Mod(limit, K), ops.Cast(_any_running(ops, state[1], atol), to=INT64))
            state = loop("fixed_point_rest", rest, 1, *state)
        x, residuals, taken = state
        return _block_outputs(ops, x, residuals, taken)

    return Component(
        "BlockInverse", ("y", *bottleneck.inputs[1:], "maxiter", "atol", "rtol"), body,
        doc="x with x + g(x) = y, by Banach fixed-point iteration row by row; also the step "
        "count and residual.",
        outputs=3,
    )  # fmt: skip


def _any_running(ops: Ops, residuals: ir.Value, atol: ir.Value) -> ir.Value:
    """Whether some row's residual is still above atol (a NaN row is not running)."""
    running = ops.Cast(ops.Greater(residuals, atol), to=INT64)
    return ops.Greater(ops.reduce("ReduceMax", running, None, keepdims=0), ops.const(0, INT64))


def block_inverse_fixed_component(bottleneck: Component, width: int, steps: int) -> Component:
    """``BlockInverseFixed`` — :func:`block_inverse_component`'s interface and stopping rule, as a
    ``Scan`` of exactly ``steps`` steps (fixed at export) for runtimes without ``Loop``.

    Each step is gated per row: once a row's residual is ≤ atol (or NaN), or k = maxiter, ``Where``
    keeps its x, residual and step count as they were, so the outputs are those of the steps where
    the Loop would have stopped each row. Every row is computed at every step (no compaction: a
    Scan's shapes are fixed). A row that needs more than ``steps`` steps ends with residual > atol,
    as a Loop capped at ``steps`` would.
    """

    def body(ops: Ops, y: ir.Value, *rest: ir.Value) -> tuple[ir.Value, ir.Value, ir.Value]:
        *parameters, maxiter, atol, rtol = rest
        dtype = ops.dtype

        def step(inner: Ops, tick, x, residuals, counts, y, maxiter, atol, rtol, *parameters):
            # the body must read the step index (OpenVINO runs a Scan whose scan input is unused
            # only once); while a row runs, its count equals the index
            running = inner.And(inner.Less(tick, maxiter), inner.Greater(residuals, atol))
            x_next = inner.Sub(y, inner.invoke(bottleneck, x, *parameters))
            return [
                inner.Where(inner.Unsqueeze(running, inner.const([1], INT64)), x_next, x),
                inner.Where(running, _row_residuals(inner, x_next, x, rtol), residuals),
                inner.Where(running, inner.Add(counts, inner.const(1, INT64)), counts),
                *(inner.Identity(value) for value in (y, maxiter, atol, rtol, *parameters)),
            ]

        rows = ops.op("Shape", y, start=0, end=1)
        state = {
            "x": (y, dtype, ["batch", width]),
            "residuals": (ops.Expand(ops.const(np.inf), rows), dtype, ["batch"]),
            "counts": (ops.Expand(ops.const(0, INT64), rows), INT64, ["batch"]),
            "y": (y, dtype, ["batch", width]),
            "maxiter": (maxiter, INT64, []),
            "atol": (atol, dtype, []),
            "rtol": (rtol, dtype, []),
        }
        for name, parameter in zip(bottleneck.inputs[1:], parameters):
            # the rank is all a function body knows; inline, the value carries its shape
            rank = 2 if name.startswith("weight") else 1
            shape = [None] * rank if parameter.shape is None else list(parameter.shape)
            state[name] = (parameter, dtype, shape)
        x, residuals, counts, *_ = ops.gated_scan("fixed_steps", steps, state, step)
        return _block_outputs(ops, x, residuals, counts)

    return Component(
        f"BlockInverseFixed{steps}", ("y", *bottleneck.inputs[1:], "maxiter", "atol", "rtol"),
        body,
        doc=f"x with x + g(x) = y by {steps} gated fixed-point steps per row (no Loop); also the "
        "step count and residual.",
        outputs=3,
    )  # fmt: skip


# ϕ′ of each activation, as ONNX ops; torch's conventions at the kinks (see iresnet_onnx._density)
def _activation_derivative(ops: Ops, name: str, u: ir.Value) -> ir.Value:
    one, zero = ops.const(1.0), ops.const(0.0)
    if name == "ReLU":
        return ops.Where(ops.Greater(u, zero), one, zero)
    if name in ("ELU", "CELU"):  # alpha = 1: exp(u) below 0
        return ops.Where(ops.Greater(u, zero), one, ops.Exp(u))
    if name == "LeakyReLU":
        return ops.Where(ops.Greater(u, zero), one, ops.const(ACTIVATION_OPS[name][1]["alpha"]))
    if name in ("Hardtanh", "ReLU6"):
        low, high = (ops.const(v) for v in ACTIVATION_OPS[name][2])
        return ops.Where(ops.And(ops.Greater(u, low), ops.Less(u, high)), one, zero)
    if name == "Sigmoid":
        s = ops.Sigmoid(u)
        return ops.Mul(s, ops.Sub(one, s))
    if name == "Softplus":  # torch: 1 above the threshold 20, where softplus(u) is u
        return ops.Where(ops.Greater(u, ops.const(20.0)), one, ops.Sigmoid(u))
    if name == "Softsign":
        root = ops.Add(one, ops.Abs(u))
        return ops.Div(one, ops.Mul(root, root))
    if name == "Tanh":
        t = ops.Tanh(u)
        return ops.Sub(one, ops.Mul(t, t))
    if name == "Identity":
        return ops.Add(ops.Mul(u, zero), one)
    raise ValueError(f"no ONNX derivative for activation {name}")


def _log_det_unit_plus(ops: Ops, small: ir.Value, size: int) -> ir.Value:
    """log det(I + S) for a batch S[B, k, k] with ‖S‖₂ < 1, by an unrolled LU without pivoting.

    Every leading principal submatrix of I + S is I + (a submatrix of S), of norm < 1, hence
    nonsingular with positive determinant: elimination needs no pivoting, every pivot is > 0,
    and log det = Σ log(pivot). Unrolled (k steps of Gather/Mul/Sub with constant masks), not
    ONNX ``Det``: only onnxruntime has a Det kernel, and only for float32.
    """
    matrix = ops.Add(small, ops.const(np.eye(size)))
    log_det = None
    for j in range(size):
        index = ops.const(j, INT64)
        row = ops.Gather(matrix, index, axis=1)  # [B, k]
        pivot = ops.Gather(row, index, axis=1)  # [B]
        log_pivot = ops.Log(pivot)
        log_det = log_pivot if log_det is None else ops.Add(log_det, log_pivot)
        if j == size - 1:
            break
        below = ops.const((np.arange(size) > j).astype(np.float64))  # rows j+1… are eliminated
        column = ops.Mul(ops.Gather(matrix, index, axis=2), below)  # [B, k]
        factor = ops.Div(column, ops.Unsqueeze(pivot, ops.const([1], INT64)))
        update = ops.Mul(
            ops.Unsqueeze(factor, ops.const([2], INT64)), ops.Unsqueeze(row, ops.const([1], INT64))
        )
        matrix = ops.Sub(matrix, update)
    return log_det


def block_density_component(steps: Sequence[BottleneckStep], width: int, hidden: int) -> Component:
    """``BlockDensity(x, parameters…) -> (y, log|det ∂y/∂x|)``: the block and its exact log-det.

    The lemma of :mod:`iresnet_onnx._density`: ``lowrank`` det(I_k + W₂ D W₁); ``mlp``
    det(I_h + (W₁W₃) D₂ W₂ D₁), with D = diag(ϕ′(u)) at each activation's input; the n×n form
    det(I_n + J_g) where the hidden size exceeds the width n.
    """
    linear = [step for step in steps if isinstance(step, LinearStep)]
    activations = [step for step in steps if isinstance(step, ActivationStep)]

    def body(ops: Ops, x: ir.Value, *parameters: ir.Value) -> tuple[ir.Value, ir.Value]:
        remaining = list(parameters)
        matrices, derivatives = [], []
        h = x
        for step in steps:
            if isinstance(step, LinearStep):
                weight = remaining.pop(0)
                bias = remaining.pop(0) if step.bias else None
                # A′ (out × in) from the tall-form parameter the Gemm takes
                matrices.append(weight if step.transpose else ops.Transpose(weight, perm=[1, 0]))
                h = ops.Gemm(h, weight, bias, transB=int(step.transpose))
            else:
                derivatives.append(_activation_derivative(ops, step.name, h))
                h = _activation(ops, step.name, h)
        y = ops.Add(x, h)

        def scale_columns(matrix: ir.Value, d: ir.Value) -> ir.Value:  # A·diag(d), per sample
            return ops.Mul(
                ops.Unsqueeze(matrix, ops.const([0], INT64)),
                ops.Unsqueeze(d, ops.const([1], INT64)),
            )

        def scale_rows(matrix: ir.Value, d: ir.Value) -> ir.Value:  # diag(d)·A, per sample
            return ops.Mul(
                ops.Unsqueeze(matrix, ops.const([0], INT64)),
                ops.Unsqueeze(d, ops.const([2], INT64)),
            )

        if len(linear) == 2:
            w2, w1 = matrices
            if hidden <= width:  # W₂ D W₁: k×k
                small = ops.MatMul(scale_columns(w2, derivatives[0]), w1)
            else:  # D W₁W₂: n×n
                small = scale_rows(ops.MatMul(w1, w2), derivatives[0])
        else:
            w1, w2, w3 = matrices
            d1, d2 = derivatives
            if hidden <= width:  # (W₁W₃) D₂ · W₂ D₁: h×h
                small = ops.MatMul(scale_columns(ops.MatMul(w1, w3), d2), scale_columns(w2, d1))
            else:  # W₃ D₂ · (W₂ D₁ W₁): n×n
                small = ops.MatMul(scale_columns(w3, d2), ops.MatMul(scale_columns(w2, d1), w1))
        return y, _log_det_unit_plus(ops, small, min(hidden, width))

    if (len(linear), len(activations)) not in ((2, 1), (3, 2)):
        raise ValueError("the density graph knows the lowrank and mlp bottlenecks only")
    return Component(
        "BlockDensity", ("x", *bottleneck_inputs(steps)), body,
        doc="y = x + g(x) and log|det(I + ∂g/∂x)| by the matrix determinant lemma (unrolled LU).",
        outputs=2,
    )  # fmt: skip
