"""The components of an exported iResNet's forward pass, written beside the math they compute.

``WarmSpectralNorm``  σ of a stack of matrices at the warm-start vectors, and whether any is stale
``SpectralNorm``   σ of a stack of matrices: one power-iteration ``Loop`` for all of them
``Contraction``    A′ = A·min(c/σ, 1)
``Bottleneck``     g(x), the block's layer plan (:mod:`iresnet_onnx._structure`) as Gemm and
                   activation nodes
``ShiftedBottleneck``  g(y − v) from the first layer at y: the inverse's step
``BlockForward``   y = x + g(x)

The inverse's components are in :mod:`._inverse_components`, the density's in
:mod:`._density_components`. Each mirrors an eager implementation line for line
(``_spectral.power_iteration``, ``LinearContraction.effective_weight``, ``iResNetBlock.forward``),
so eager and ONNX take the same number of iterations and agree to float precision. A component
is written once and emitted inline (the default) or as an ONNX function (see :mod:`._builder`).
A linear step's parameter is A′ in its tall form (A′ itself when out ≥ in, else A′ᵀ), the form
the power iteration measures: ``Gemm(x, T, transB=tall)``.
"""

from collections.abc import Sequence

import onnx_ir as ir

from .._structure import ACTIVATIONS, LinearStep, Step
from ._builder import BOOL, INT64, Component, Ops

__all__ = [
    "activation",
    "apply_steps",
    "block_forward_component",
    "bottleneck_component",
    "bottleneck_inputs",
    "contraction_component",
    "shifted_bottleneck_component",
    "spectral_norm_component",
    "warm_spectral_norm_component",
]


def _warm_start(
    ops: Ops, T: ir.Value, x0: ir.Value, atol: float, rtol: float
) -> tuple[ir.Value, ir.Value, ir.Value, ir.Value, ir.Value, ir.Value]:
    """``(scale, T̂, x, λ, z, excess)`` at the warm start, before any update: T̂ = T/max|T| (per
    layer), x = x0/‖x0‖, λ = ‖T̂x‖², z = T̂ᵀT̂x and how far ‖z − λx‖ is above rtol·λ + atol."""
    zero, one = ops.const(0.0), ops.const(1.0)
    scale = ops.reduce("ReduceMax", ops.Abs(T), [1, 2], keepdims=1)
    scale = ops.Where(ops.Greater(scale, zero), scale, one)
    T = ops.Div(T, scale)
    x = ops.Unsqueeze(x0, ops.const([-1], INT64))
    x = ops.Div(x, ops.reduce("ReduceL2", x, [1], keepdims=1))
    return (scale, T, x, *_evaluate(ops, T, x, atol, rtol))


def _evaluate(
    ops: Ops, T: ir.Value, x: ir.Value, atol: float, rtol: float
) -> tuple[ir.Value, ir.Value, ir.Value]:
    """λ = ‖T̂x‖², z = T̂ᵀT̂x, and how far ‖z − λx‖ is above rtol·λ + atol."""
    Tx = ops.MatMul(T, x)
    lam = ops.reduce("ReduceSumSquare", Tx, [1, 2], keepdims=1)
    # (Txᵀ T̂)ᵀ, not T̂ᵀ(T̂x): OpenVINO's CPU plugin computed MatMul(Transpose(T̂), T̂x) wrong
    # for a stack of one matrix when T̂ is a constant (the torch route's per-layer Loops)
    z = ops.Transpose(ops.MatMul(ops.Transpose(Tx, perm=[0, 2, 1]), T), perm=[0, 2, 1])
    residual = ops.reduce("ReduceL2", ops.Sub(z, ops.Mul(lam, x)), [1, 2], keepdims=1)
    excess = ops.Sub(residual, ops.Add(ops.Mul(ops.const(rtol), lam), ops.const(atol)))
    return lam, z, excess


def warm_spectral_norm_component(atol: float, rtol: float) -> Component:
    """``WarmSpectralNorm(T[L,M,N], x0[L,N]) -> (σ[L,1,1], stale)``: σ at the warm start, and
    whether any layer's warm start fails the power iteration's test (then ``SpectralNorm`` must
    iterate). Without a Loop, so a runtime folds it when T and x0 are initializers."""

    def body(ops: Ops, T: ir.Value, x0: ir.Value) -> tuple[ir.Value, ir.Value]:
        scale, _, _, lam, _, excess = _warm_start(ops, T, x0, atol, rtol)
        stale = ops.Greater(ops.reduce("ReduceMax", excess, None, keepdims=0), ops.const(0.0))
        return ops.Mul(scale, ops.Sqrt(lam)), stale

    return Component(
        "WarmSpectralNorm", ("T", "x0"), body, outputs=2,
        doc=f"σ of the warm start x0, and whether any layer fails ‖T̂ᵀT̂x − λx‖ ≤ {rtol:g}·λ + "
        f"{atol:g} there.",
    )  # fmt: skip


def spectral_norm_component(
    layers: int, size: int, atol: float, rtol: float, maxiter: int, with_vector: bool = False
) -> Component:
    """``SpectralNorm(T[L,M,N], x0[L,N]) -> σ[L,1,1]`` for ``layers`` tall matrices T (N = size);
    ``with_vector`` also returns the final unit iterates ``[L,N,1]`` (the next warm start).

    The algorithm of ``spectral.power_iteration``, batched: every layer stops on its own test (a
    converged layer's iterate is frozen by ``Where``), the Loop stops when none is left. The test
    runs before the first update, so a converged warm start costs zero updates. The Loop starts
    with a constant true condition, not with that test: a start condition computed from
    initializers alone is constant-folded by OpenVINO, whose Loop shape inference then gives the
    carried values a leading dimension of 0. An all-converged first pass updates nothing.
    """

    def body(ops: Ops, T: ir.Value, x0: ir.Value) -> ir.Value:
        zero = ops.const(0.0)
        scale, T, x, lam, z, excess = _warm_start(ops, T, x0, atol, rtol)

        def iterate(inner: Ops, x, z, lam, excess):
            active = inner.Greater(excess, zero)
            x = inner.Where(active, inner.Div(z, inner.reduce("ReduceL2", z, [1], keepdims=1)), x)
            lam, z, excess = _evaluate(inner, T, x, atol, rtol)
            keep_going = inner.Greater(inner.reduce("ReduceMax", excess, None, keepdims=0), zero)
            return keep_going, [x, z, lam, excess]

        dtype = ops.dtype
        x, _, lam, _ = ops.loop(
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
        sigma = ops.Mul(scale, ops.Sqrt(lam))
        return (sigma, x) if with_vector else sigma

    return Component(
        "SpectralNorm", ("T", "x0"), body, outputs=2 if with_vector else 1,
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


def activation(ops: Ops, name: str, x: ir.Value) -> ir.Value:
    """ϕ(x) for an activation of the table, as its ONNX op."""
    entry = ACTIVATIONS[name]
    attributes = dict(entry.onnx_attributes)
    if name == "LeakyReLU" and ops.dtype == ir.DataType.DOUBLE:
        # ONNX float attributes are float32: alpha = 0.01 would be off by 1e-9 in a float64 graph
        return ops.Max(x, ops.Mul(x, ops.const(attributes["alpha"])))
    return ops.op(entry.onnx_op, x, *(ops.const(v) for v in entry.onnx_bounds), **attributes)


def bottleneck_inputs(steps: Sequence[Step]) -> list[str]:
    names = []
    for index, step in enumerate(steps):
        if isinstance(step, LinearStep):
            names += [f"weight{index}"] + ([f"bias{index}"] if step.bias else [])
    return names


def apply_steps(
    ops: Ops, x: ir.Value, steps: Sequence[Step], parameters: Sequence[ir.Value]
) -> ir.Value:
    """The steps at x, each linear step taking its weight (and bias) from ``parameters``."""
    remaining = list(parameters)
    for step in steps:
        if isinstance(step, LinearStep):
            weight = remaining.pop(0)
            bias = remaining.pop(0) if step.bias else None
            x = ops.Gemm(x, weight, bias, transB=int(step.tall))
        else:
            x = activation(ops, step.name, x)
    return x


def bottleneck_component(steps: Sequence[Step]) -> Component:
    """``Bottleneck(x, weight0, bias0, …) -> g(x)``: the block's ``nn.Sequential``, step by step."""

    def body(ops: Ops, x: ir.Value, *parameters: ir.Value) -> ir.Value:
        return apply_steps(ops, x, steps, parameters)

    return Component(
        "Bottleneck", ("x", *bottleneck_inputs(steps)), body,
        doc="g(x): the residual branch of an iResNet block, Lip(g) < 1.",
    )  # fmt: skip


def shifted_bottleneck_inputs(steps: Sequence[Step]) -> list[str]:
    """The Bottleneck's parameters less the first step's bias (p holds it)."""
    names = bottleneck_inputs(steps)
    return [names[0], *names[2 if steps[0].bias else 1 :]]


def shifted_bottleneck_component(steps: Sequence[Step]) -> Component:
    """``ShiftedBottleneck(v, p, weight0, weight1, bias1, …) -> g(y − v)``, given the first linear
    step at y, p = y·weight0ᵀ + bias0: that step at y − v is p − v·weight0ᵀ, one Gemm
    (alpha = −1, C = p). The inverse iterates on v = y − x with it: a node fewer per step than
    y − g(x), whose Sub is a node of its own."""
    first = steps[0]
    assert isinstance(first, LinearStep)  # every plan of _structure starts with one

    def body(ops: Ops, v: ir.Value, p: ir.Value, weight: ir.Value, *parameters: ir.Value):
        u = ops.Gemm(v, weight, p, alpha=-1.0, transB=int(first.tall))
        return apply_steps(ops, u, steps[1:], parameters)

    return Component(
        "ShiftedBottleneck", ("v", "p", *shifted_bottleneck_inputs(steps)), body,
        doc="g(y − v) from p = the first linear step at y: the inverse's step on v = y − x.",
    )  # fmt: skip


def block_forward_component(bottleneck: Component) -> Component:
    """``BlockForward(x, parameters…) -> x + g(x)``."""

    def body(ops: Ops, x: ir.Value, *parameters: ir.Value) -> ir.Value:
        return ops.Add(x, ops.invoke(bottleneck, x, *parameters))

    return Component("BlockForward", ("x", *bottleneck.inputs[1:]), body, doc="y = x + g(x).")
