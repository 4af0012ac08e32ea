r"""The ONNX translations of the custom ops (:mod:`iresnet_onnx._ops`), for
``torch.onnx.export(..., dynamo=True, custom_translation_table=iresnet_onnx.onnx_translation_table())``.

Each translation writes the same components as the package's own exporter — the power-iteration
``Loop`` (``SpectralNorm``), the per-row fixed-point ``Loop`` with its constant-true start, K steps
per check and the maxiter cap (``BlockInverse``), the unrolled LU of the density — from the one
definition of each in :mod:`._components`, :mod:`._inverse_components` and
:mod:`._density_components`.

How the nodes get into torch's graph: torch's exporter calls a translation with its own values
(``onnx_ir`` values) under an onnxscript evaluator that records the nodes built through
onnxscript's ``op.*`` calls. Those calls cannot build a ``Loop`` with several loop-carried values
(onnxscript gives the node one output per *declared* output, and Loop's is variadic), so the
components are written onto an ``onnx_ir`` tape of our own and the finished nodes are handed to
that recorder (``OpRecorder.nodes`` in torch 2.13's ``torch/onnx/_internal/exporter/_building.py``):
the one place that leans on torch's exporter internals, checked loudly below.
"""

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx_ir as ir
import onnxscript

from .._structure import plan
from ..errors import ExportError
from ._builder import INT64, Ops
from ._components import spectral_norm_component
from ._density_components import log_det_unit_plus
from ._inverse_components import block_inverse_component

__all__ = ["onnx_translation_table"]

_NAMES = itertools.count(1)
"""One counter for every translation in the process: node and value names stay unique across the
ops of one graph (each op is translated on its own)."""


def onnx_translation_table(steps_per_check: int = 8) -> dict[Any, Callable[..., Any]]:
    """``{custom op: ONNX translation}`` for ``torch.onnx.export``'s ``custom_translation_table``.

    ``steps_per_check`` is the inverse Loops' K (fixed-point steps per convergence test; 1 stops
    every row exactly where eager does), as in :func:`iresnet_onnx.export`.

    Example::

        >>> import torch, iresnet_onnx
        >>> program = torch.onnx.export(model, (x,), dynamo=True,
        ...     custom_translation_table=iresnet_onnx.onnx_translation_table())
    """
    import torch

    from .. import _ops  # registers the ops

    def block_inverse(
        y: ir.Value, parameters: list[ir.Value], maxiter: ir.Value, atol: ir.Value,
        rtol: ir.Value, variant: str, activation: str, bias: bool, maxiter_cap: int,
    ) -> tuple[ir.Value, ir.Value, ir.Value]:  # fmt: skip
        return _block_inverse(y, parameters, maxiter, atol, rtol, variant, activation, bias,
                              maxiter_cap, steps_per_check)  # fmt: skip

    assert _ops.NAMESPACE == "iresnet_onnx"  # the ops exist (importing _ops registers them)
    return {
        torch.ops.iresnet_onnx.spectral_norm.default: _spectral_norm,
        torch.ops.iresnet_onnx.block_inverse.default: block_inverse,
        torch.ops.iresnet_onnx.unit_plus_log_det.default: _unit_plus_log_det,
    }


def _ops_for(like: ir.Value, scope: str) -> Ops:
    """A tape for one op's nodes, in the dtype of ``like`` and the opset torch exports to."""
    recorder = _recorder()
    opset = getattr(getattr(recorder, "opset", None), "version", 18)
    return Ops(opset, like.dtype, prefix=f"{scope}_{next(_NAMES)}/", counter=_NAMES)


def _recorder() -> Any:
    recorder = onnxscript.evaluator.default()
    if not isinstance(getattr(recorder, "nodes", None), list):
        raise ExportError(
            "iresnet_onnx's ONNX translations run inside torch.onnx.export(..., dynamo=True), "
            f"whose recorder keeps a list of nodes; this one ({type(recorder).__name__}) does "
            "not (a torch version this package does not know?)"
        )
    return recorder


def _emit(ops: Ops) -> None:
    _recorder().nodes.extend(ops.tape.nodes)


def _spectral_norm(
    weight: ir.Value, vector: ir.Value, atol: float, rtol: float, maxiter: int
) -> tuple[ir.Value, ir.Value]:
    """σ and the final iterate of one matrix: the ``SpectralNorm`` Loop on a stack of one."""
    ops = _ops_for(weight, "spectral_norm")
    out_size, in_size = weight.shape
    tall = ops.Transpose(weight, perm=[1, 0]) if out_size < in_size else weight
    size = min(out_size, in_size)
    component = spectral_norm_component(1, size, atol, rtol, maxiter, with_vector=True)
    sigma, final = ops.invoke(
        component, ops.Unsqueeze(tall, ops.const([0], INT64)),
        ops.Unsqueeze(vector, ops.const([0], INT64)),
    )  # fmt: skip
    sigma = ops.Reshape(sigma, ops.const(np.zeros(0, np.int64), INT64))
    final = ops.Reshape(final, ops.const([size], INT64))
    _emit(ops)
    return sigma, final


def _block_inverse(
    y: ir.Value, parameters: list[ir.Value], maxiter: ir.Value, atol: ir.Value, rtol: ir.Value,
    variant: str, activation: str, bias: bool, maxiter_cap: int, steps_per_check: int,
) -> tuple[ir.Value, ir.Value, ir.Value]:  # fmt: skip
    """x, the step count and the residual of one block: the ``BlockInverse`` Loop."""
    ops = _ops_for(y, "block_inverse")
    width = y.shape[-1]
    hidden = parameters[0].shape[0]
    steps = plan(variant, width, hidden, activation, bias)
    # the components take each A′ in its tall form (Gemm with transB = tall)
    tall_parameters, remaining = [], iter(parameters)
    for step in steps:
        if hasattr(step, "tall"):
            weight = next(remaining)
            tall_parameters.append(weight if step.tall else ops.Transpose(weight, perm=[1, 0]))
            if step.bias:
                tall_parameters.append(next(remaining))
    component = block_inverse_component(steps, width, maxiter_cap, steps_per_check)
    maxiter = ops.Cast(maxiter, to=INT64)
    x, iterations, residual = ops.invoke(component, y, *tall_parameters, maxiter, atol, rtol)
    _emit(ops)
    return x, iterations, residual


def _unit_plus_log_det(small: ir.Value) -> ir.Value:
    """log det(I + S) by the unrolled LU of density.onnx."""
    ops = _ops_for(small, "unit_plus_log_det")
    result = log_det_unit_plus(ops, small, small.shape[-1])
    _emit(ops)
    return result
