"""The component of density.onnx: a block and its exact log-determinant.

``BlockDensity``  y = x + g(x) and log|det ∂y/∂x| by the matrix determinant lemma, the small matrix
                  of :func:`iresnet_onnx._structure.lemma_matrix` written through :class:`OnnxMath`,
                  its log-determinant by an unrolled LU
"""

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx_ir as ir

from .._structure import ACTIVATIONS, LinearStep, Step, lemma_matrix
from ._builder import INT64, Component, Ops
from ._components import activation, bottleneck_inputs

__all__ = ["OnnxMath", "block_density_component", "log_det_unit_plus"]


class OnnxMath:
    """The :class:`~iresnet_onnx._structure.Math` vocabulary as ONNX nodes (Python floats become
    constants of the graph's dtype)."""

    def __init__(self, ops: Ops):
        self.ops = ops

    def _value(self, value: Any) -> ir.Value:
        return value if isinstance(value, ir.Value) else self.ops.const(float(value))

    def where(self, condition: ir.Value, a: Any, b: Any) -> ir.Value:
        return self.ops.Where(condition, self._value(a), self._value(b))

    def greater(self, u: ir.Value, c: float) -> ir.Value:
        return self.ops.Greater(u, self._value(c))

    def less(self, u: ir.Value, c: float) -> ir.Value:
        return self.ops.Less(u, self._value(c))

    def both(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.ops.And(a, b)

    def exp(self, u: ir.Value) -> ir.Value:
        return self.ops.Exp(u)

    def sigmoid(self, u: ir.Value) -> ir.Value:
        return self.ops.Sigmoid(u)

    def tanh(self, u: ir.Value) -> ir.Value:
        return self.ops.Tanh(u)

    def abs(self, u: ir.Value) -> ir.Value:
        return self.ops.Abs(u)

    def ones_like(self, u: ir.Value) -> ir.Value:
        return self.ops.Add(self.ops.Mul(u, self._value(0.0)), self._value(1.0))

    def add(self, a: Any, b: Any) -> ir.Value:
        return self.ops.Add(self._value(a), self._value(b))

    def sub(self, a: Any, b: Any) -> ir.Value:
        return self.ops.Sub(self._value(a), self._value(b))

    def mul(self, a: Any, b: Any) -> ir.Value:
        return self.ops.Mul(self._value(a), self._value(b))

    def div(self, a: Any, b: Any) -> ir.Value:
        return self.ops.Div(self._value(a), self._value(b))

    def matmul(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.ops.MatMul(a, b)

    def scale_columns(self, matrix: ir.Value, d: ir.Value) -> ir.Value:  # A·diag(d), per row
        ops = self.ops
        return ops.Mul(ops.Unsqueeze(matrix, ops.const([0], INT64)),
                       ops.Unsqueeze(d, ops.const([1], INT64)))  # fmt: skip

    def scale_rows(self, matrix: ir.Value, d: ir.Value) -> ir.Value:  # diag(d)·A, per row
        ops = self.ops
        return ops.Mul(ops.Unsqueeze(matrix, ops.const([0], INT64)),
                       ops.Unsqueeze(d, ops.const([2], INT64)))  # fmt: skip


def log_det_unit_plus(ops: Ops, small: ir.Value, size: int) -> ir.Value:
    """log det(I + S) for a batch S[B, k, k] with ‖S‖₂ < 1, by an unrolled LU without pivoting.

    Every leading principal submatrix of I + S is I + (a submatrix of S), of norm < 1, hence
    nonsingular with positive determinant: elimination needs no pivoting, every pivot is > 0, and
    log det = Σ log(pivot). The matrix is laid out batch-last, ``[k, k, B]``: each elimination
    step then broadcasts along the contiguous batch, which onnxruntime's element-wise kernels
    stream (batch-first, the same step broadcasts along the innermost axis, several times
    slower at large batches; the measurement is in results/density.md). No row mask: a row
    already eliminated is zero, so updating every row changes nothing. Unrolled, not ONNX
    ``Det``: only onnxruntime has a Det kernel, and only for float32.
    """
    matrix = ops.Transpose(ops.Add(small, ops.const(np.eye(size))), perm=[1, 2, 0])
    pivots = []
    for j in range(size):
        index = ops.const([j], INT64)
        row = ops.Gather(matrix, index, axis=0)  # [1, k, B]
        pivots.append(ops.Gather(row, index, axis=1))  # [1, 1, B]
        if j < size - 1:
            column = ops.Gather(matrix, index, axis=1)  # [k, 1, B]
            matrix = ops.Sub(matrix, ops.Mul(ops.Div(column, pivots[-1]), row))
    stacked = ops.Concat(*pivots, axis=0) if size > 1 else pivots[0]  # [k, 1, B]
    return ops.reduce("ReduceSum", ops.Log(stacked), [0, 1], keepdims=0)


def block_density_component(
    steps: Sequence[Step], variant: str, width: int, hidden: int
) -> Component:
    """``BlockDensity(x, parameters…) -> (y, log|det ∂y/∂x|)``: the block and its exact log-det,
    with D = diag(ϕ′(u)) at each activation's input (see :func:`~iresnet_onnx._structure.lemma_matrix`)."""

    def body(ops: Ops, x: ir.Value, *parameters: ir.Value) -> tuple[ir.Value, ir.Value]:
        math = OnnxMath(ops)
        remaining = list(parameters)
        matrices, derivatives = [], []
        h = x
        for step in steps:
            if isinstance(step, LinearStep):
                weight = remaining.pop(0)
                bias = remaining.pop(0) if step.bias else None
                # A′ (out × in) from the tall-form parameter the Gemm takes
                matrices.append(weight if step.tall else ops.Transpose(weight, perm=[1, 0]))
                h = ops.Gemm(h, weight, bias, transB=int(step.tall))
            else:
                derivatives.append(ACTIVATIONS[step.name].derivative(math, h))
                h = activation(ops, step.name, h)
        small = lemma_matrix(variant, math, matrices, derivatives, width, hidden)
        return ops.Add(x, h), log_det_unit_plus(ops, small, min(hidden, width))

    return Component(
        "BlockDensity", ("x", *bottleneck_inputs(steps)), body,
        doc="y = x + g(x) and log|det(I + ∂g/∂x)| by the matrix determinant lemma (unrolled LU).",
        outputs=2,
    )  # fmt: skip
