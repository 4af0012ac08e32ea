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
    """log det(I + S) for a batch S[B, k, k] with ‖S‖₂ < 1, by a blocked LU without pivoting.

    Every leading principal submatrix of I + S is I + (a submatrix of S), of norm < 1, hence
    nonsingular with positive determinant, and so is every Schur complement: elimination needs no
    pivoting. The columns go two at a time: with the leading 2×2 block P (closed-form inverse and
    determinant), det M = det P · det(D − C·P⁻¹·B), the trailing update one batched MatMul — a few
    large ops per pair of columns instead of k rounds of element-wise ones. Written out, not ONNX
    ``Det``: only onnxruntime has a Det kernel, and only for float32.
    """
    matrix = ops.Add(small, ops.const(np.eye(size)))
    log_det = None
    remaining = size
    while remaining > 0:
        if remaining == 1:
            pivot = ops.Reshape(matrix, ops.const([-1], INT64))
            return _add(ops, log_det, ops.Log(pivot))
        head = ops.const([0, 1], INT64)
        top = ops.Gather(matrix, head, axis=1)  # [B, 2, m]
        (a, b), (c, d) = ([_entry(ops, top, row, column) for column in (0, 1)] for row in (0, 1))
        det = ops.Sub(ops.Mul(a, d), ops.Mul(b, c))  # det P > 0
        log_det = _add(ops, log_det, ops.Log(det))
        if remaining == 2:
            return log_det
        rest = ops.const(np.arange(2, remaining), INT64)
        upper = ops.Gather(top, rest, axis=2)  # B block: [B, 2, m − 2]
        lower = ops.Gather(matrix, rest, axis=1)  # [B, m − 2, m]
        left = ops.Gather(lower, head, axis=2)  # C block: [B, m − 2, 2]
        trailing = ops.Gather(lower, rest, axis=2)  # D block
        inverse = _inverse_2x2(ops, a, b, c, d, det)  # [B, 2, 2]
        matrix = ops.Sub(trailing, ops.MatMul(left, ops.MatMul(inverse, upper)))
        remaining -= 2
    return log_det


def _add(ops: Ops, total: ir.Value | None, term: ir.Value) -> ir.Value:
    return term if total is None else ops.Add(total, term)


def _entry(ops: Ops, rows: ir.Value, row: int, column: int) -> ir.Value:
    """``rows[:, row, column]``: ``[B]``."""
    picked = ops.Gather(rows, ops.const(row, INT64), axis=1)
    return ops.Gather(picked, ops.const(column, INT64), axis=1)


def _inverse_2x2(ops: Ops, a: ir.Value, b: ir.Value, c: ir.Value, d: ir.Value, det: ir.Value):
    """[[a, b], [c, d]]⁻¹ = [[d, −b], [−c, a]] / det, per row: ``[B, 2, 2]``."""
    stacked = ops.Concat(*(ops.Unsqueeze(v, ops.const([1], INT64))
                           for v in (d, ops.Neg(b), ops.Neg(c), a)), axis=1)  # fmt: skip
    shaped = ops.Reshape(stacked, ops.const([-1, 2, 2], INT64))
    return ops.Div(shaped, ops.Unsqueeze(det, ops.const([1, 2], INT64)))


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
