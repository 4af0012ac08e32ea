r"""The iterative parts of an iResNet as ``torch.library`` custom ops, for the graphs torch traces.

``torch.export``, ``torch.compile`` and ``torch.onnx.export`` cannot trace a loop whose stop depends
on the data (the power iteration, the fixed-point inverse): they guard on the value and fail, or
unroll it for the example's values. Each iterative part is therefore one opaque op with

- an eager kernel: the package's own code (:func:`._spectral.power_iteration`,
  :func:`._fixed_point.solve`), so the traced graph computes exactly what eager computes;
- a fake kernel: output shapes from input shapes, so tracing works with a symbolic batch;
- registered autograd: σ's gradient u vᵀ, the inverse's implicit-function gradient (its
  backward is an op of its own, so a compiled backward never traces autograd inside autograd),
  the log-determinant's (I + S)⁻ᵀ.

The modules call these ops only while torch traces them (``torch.compiler.is_compiling()``); in
eager mode they call the same kernels directly, because a custom op call's dispatch costs more
than a whole layer at batch 1 (results/bench.md's eager rows measure what is left).
``iresnet_onnx.onnx_translation_table()`` turns the ops into real ONNX ``Loop`` graphs
(:mod:`.exporters._translations`).
"""

import torch
from torch import Tensor

from ._branch import apply_layers, linearize, make_layers
from ._fixed_point import adjoint_solve, solve
from ._spectral import power_iteration, singular_vectors
from ._structure import plan

__all__ = ["block_inverse", "log_abs_det", "spectral_norm", "unit_plus_log_det"]

NAMESPACE = "iresnet_onnx"

BATCHED_SLOGDET_LIMIT = 128
"""torch 2.13's CPU slogdet of a *batch* of matrices larger than about 128×128 is wrong with more
than one intra-op thread (MKL's batched LU: "Parameter 6 was incorrect on entry to SLASWP", and
log-dets off by units); one matrix at a time is right."""


def log_abs_det(matrices: Tensor) -> Tensor:
    """log|det| of each matrix of ``[..., m, m]``, differentiable; see
    :data:`BATCHED_SLOGDET_LIMIT` for why large matrices go one at a time."""
    if matrices.shape[-1] <= BATCHED_SLOGDET_LIMIT or matrices.device.type != "cpu":
        return torch.linalg.slogdet(matrices)[1]
    flat = matrices.reshape(-1, *matrices.shape[-2:])
    values = [torch.linalg.slogdet(matrix)[1] for matrix in flat]
    return (
        torch.stack(values).reshape(matrices.shape[:-2])
        if values
        else flat.new_zeros(matrices.shape[:-2])
    )


@torch.library.custom_op(f"{NAMESPACE}::spectral_norm", mutates_args=())
def spectral_norm(
    weight: Tensor, vector: Tensor, atol: float, rtol: float, maxiter: int
) -> tuple[Tensor, Tensor]:
    """``(σ, final unit iterate)`` of the power iteration on ``weight`` from the unit start
    ``vector`` (see :mod:`._spectral`)."""
    result = power_iteration(weight.detach(), vector, atol, rtol, maxiter)
    return result.sigma.clone(), result.vector.clone()


@spectral_norm.register_fake
def _(weight: Tensor, vector: Tensor, atol: float, rtol: float, maxiter: int):
    return weight.new_empty(()), torch.empty_like(vector)


def _spectral_norm_setup(ctx, inputs, output) -> None:
    ctx.save_for_backward(inputs[0], output[1])


def _spectral_norm_backward(ctx, grad_sigma: Tensor, _grad_vector: Tensor):
    weight, vector = ctx.saved_tensors
    u, v = singular_vectors(weight.detach(), vector)
    return grad_sigma * torch.outer(u, v), None, None, None, None


spectral_norm.register_autograd(_spectral_norm_backward, setup_context=_spectral_norm_setup)


def _layers(variant: str, activation: str, bias: bool, width: int, parameters: list[Tensor]):
    """The layers of the block whose structure the op's arguments name."""
    hidden = parameters[0].shape[0]  # the first linear step maps n → hidden in both variants
    return make_layers(plan(variant, width, hidden, activation, bias), parameters)


@torch.library.custom_op(f"{NAMESPACE}::block_inverse", mutates_args=())
def block_inverse(
    y: Tensor,
    parameters: list[Tensor],
    maxiter: Tensor,
    atol: Tensor,
    rtol: Tensor,
    variant: str,
    activation: str,
    bias: bool,
    maxiter_cap: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """``(x, iterations, residual)`` with x + g(x) = y for the block g whose A′ and biases are
    ``parameters`` (see :func:`._fixed_point.solve`). ``maxiter_cap`` bounds the exported graph's
    work whatever maxiter a client passes it; eager takes maxiter as given."""
    layers = _layers(variant, activation, bias, y.shape[-1], parameters)
    result = solve(lambda x: apply_layers(x, layers), y, int(maxiter), float(atol), float(rtol))
    x = result.x if result.x.data_ptr() != y.data_ptr() else result.x.clone()
    return x, result.iterations, result.residual


@block_inverse.register_fake
def _(y, parameters, maxiter, atol, rtol, variant, activation, bias, maxiter_cap):
    return torch.empty_like(y), y.new_empty((), dtype=torch.int64), y.new_empty(())


@torch.library.custom_op(f"{NAMESPACE}::block_inverse_backward", mutates_args=())
def block_inverse_backward(
    grad_x: Tensor,
    x: Tensor,
    parameters: list[Tensor],
    maxiter: Tensor,
    atol: Tensor,
    rtol: Tensor,
    variant: str,
    activation: str,
    bias: bool,
) -> list[Tensor]:
    """``[∂L/∂y, ∂L/∂parameters…]`` by the implicit function theorem at the solution ``x``,
    with g's vector-Jacobian products written out (:func:`._branch.linearize`): a kernel runs
    below autograd, where autograd would record nothing."""
    layers = _layers(variant, activation, bias, x.shape[-1], parameters)
    flat_x, flat_grad = x.reshape(-1, x.shape[-1]), grad_x.reshape(-1, x.shape[-1])
    vjp_x, vjp_parameters = linearize(layers, flat_x)
    w = adjoint_solve(vjp_x, flat_grad, int(maxiter), float(atol), float(rtol))
    return [w.reshape(grad_x.shape), *(-grad for grad in vjp_parameters(w))]


@block_inverse_backward.register_fake
def _(grad_x, x, parameters, maxiter, atol, rtol, variant, activation, bias):
    return [torch.empty_like(grad_x), *(torch.empty_like(p) for p in parameters)]


def _block_inverse_setup(ctx, inputs, output) -> None:
    _y, parameters, maxiter, atol, rtol, variant, activation, bias, _cap = inputs
    ctx.save_for_backward(output[0], maxiter, atol, rtol, *parameters)
    ctx.structure = (variant, activation, bias)


def _block_inverse_backward(ctx, grad_x: Tensor, *_: Tensor):
    x, maxiter, atol, rtol, *parameters = ctx.saved_tensors
    grad_y, *grad_parameters = block_inverse_backward(
        grad_x, x, parameters, maxiter, atol, rtol, *ctx.structure
    )
    return grad_y, grad_parameters, None, None, None, None, None, None, None


block_inverse.register_autograd(_block_inverse_backward, setup_context=_block_inverse_setup)


@torch.library.custom_op(f"{NAMESPACE}::unit_plus_log_det", mutates_args=())
def unit_plus_log_det(small: Tensor) -> Tensor:
    """log det(I + S) of each ``[..., s, s]`` matrix S with ‖S‖₂ < 1 (then the determinant is
    positive): the density's small determinant (:mod:`._density`)."""
    identity = torch.eye(small.shape[-1], dtype=small.dtype, device=small.device)
    return log_abs_det(identity + small).clone()


@unit_plus_log_det.register_fake
def _(small: Tensor):
    return small.new_empty(small.shape[:-2])


def _log_det_setup(ctx, inputs, output) -> None:
    ctx.save_for_backward(inputs[0])


def _log_det_backward(ctx, grad: Tensor):
    (small,) = ctx.saved_tensors
    identity = torch.eye(small.shape[-1], dtype=small.dtype, device=small.device)
    # ∂ log det M / ∂M = M⁻ᵀ
    return grad[..., None, None] * torch.linalg.inv(identity + small).mT


unit_plus_log_det.register_autograd(_log_det_backward, setup_context=_log_det_setup)
