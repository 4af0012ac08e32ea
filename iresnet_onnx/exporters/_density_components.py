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

    def sandwich(self, left: ir.Value, d: ir.Value, right: ir.Value) -> ir.Value:
        """L·diag(d)·R per row of ``d [B, n]``, ``[B, a, b]``, as one GEMM: d @ P with P[j] =
        L[:, j] ⊗ R[j, :] (``[n, a·b]``, per call, or folded where the weights are constants).
        Scaling L per row instead writes a [B, a, n] tensor and runs a batched product of only
        b columns, most of density.onnx's time at large batches."""
        ops = self.ops
        outer = ops.Mul(ops.Unsqueeze(ops.Transpose(left, perm=[1, 0]), ops.const([2], INT64)),
                        ops.Unsqueeze(right, ops.const([1], INT64)))  # [n, a, b]  # fmt: skip
        flat = ops.MatMul(d, ops.Reshape(outer, ops.const([0, -1], INT64)))  # [B, a·b]
        shape = ops.Concat(
            ops.op("Shape", d, start=0, end=-1),
            ops.op("Shape", left, start=0, end=1),
            ops.op("Shape", right, start=1, end=2),
            axis=0,
        )
        return ops.Reshape(flat, shape)


def log_det_unit_plus(ops: Ops, small: ir.Value, size: int) -> ir.Value:
    """log det(I + S) for a batch S[B, k, k] with ‖S‖₂ < 1, by an unrolled LU without pivoting.

    Every leading principal submatrix of I + S is I + (a submatrix of S), of norm < 1, hence
    nonsingular with positive determinant: elimination needs no pivoting, every pivot is > 0, and
    log det = Σ log(pivot). The matrix is laid out batch-last, ``[k, k, B]``: each elimination
    step then broadcasts along the contiguous batch, which onnxruntime's element-wise kernels
    stream (batch-first, the same step broadcasts along the innermost axis, several times
    slower at large batches). Each step splits off the pivot's row and column and updates only
    the trailing block. Unrolled, not ONNX ``Det``: only onnxruntime has a Det kernel, and only
    for float32.
    """
    matrix = ops.Transpose(ops.Add(small, ops.const(np.eye(size))), perm=[1, 2, 0])
    pivots = []
    first = ops.const([0], INT64)
    for remaining in range(size, 1, -1):
        # eliminated rows and columns are not carried: step j costs (k − j)², not k², element
        # operations. Rows and columns are taken by Gather, not Split: with Splits along both
        # axes, tract's shape analysis grows faster than the step count (minutes to load at
        # k = 32), and onnx's version converter has no adapter for Split below opset 18
        others = ops.const(np.arange(1, remaining), INT64)
        top, below = ops.Gather(matrix, first, axis=0), ops.Gather(matrix, others, axis=0)
        pivot, row = ops.Gather(top, first, axis=1), ops.Gather(top, others, axis=1)
        column, rest = ops.Gather(below, first, axis=1), ops.Gather(below, others, axis=1)
        pivots.append(pivot)
        matrix = ops.Sub(rest, ops.Mul(ops.Div(column, pivot), row))
    pivots.append(matrix)  # the last 1 × 1 block
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
