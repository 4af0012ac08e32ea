r"""LinearContraction: a linear layer whose Lipschitz constant is at most ``c < 1``."""

import math
import numbers
from typing import Final, NamedTuple, Optional

import torch
from torch import Tensor, nn
from torch.nn import functional

from ._ops import spectral_norm as spectral_norm_op
from ._spectral import SpectralNorm, power_iteration, start_vector_branch_free
from .errors import UsageError

__all__ = ["POWER_ITERATION", "LinearContraction"]

POWER_ITERATION: Final = {"atol": 0.0, "rtol": 1e-4, "maxiter": 50}
"""Stopping rule of a layer's power iteration, per forward pass (the ONNX graph uses the same).

Warm-started from the stored vector the iteration converges in a handful of updates; the Rayleigh
quotient's error is of the order of the squared residual, so ``rtol = 1e-4`` gives σ to ~1e-8.
"""

_COLD_START_MAXITER: Final = 10_000


class _EvalSigma(NamedTuple):
    """σ of the weights an eval call measured, with the copy of the weights and c it holds for."""

    weight: Tensor
    c: Tensor
    sigma: Tensor
    u: Tensor
    v: Tensor
    folded: Tensor  # A′, detached
    inference: bool  # made under torch.inference_mode: such tensors serve nothing else

    def holds_for(self, weight: Tensor, c: Tensor) -> bool:
        """Whether these are still the values: compared entry by entry, so an edit of any kind
        (an optimiser step, ``load_state_dict``, ``weight.data[...] = …``) is seen."""
        return (
            (not self.inference or torch.is_inference_mode_enabled())
            and weight.shape == self.weight.shape
            and weight.dtype == self.weight.dtype
            and weight.device == self.weight.device
            and torch.equal(weight, self.weight)
            and torch.equal(c, self.c)
        )


class _KnownSigma(torch.autograd.Function):
    """σ already measured (an eval call's cache), with the spectral norm's gradient u vᵀ."""

    @staticmethod
    def forward(ctx, weight: Tensor, known: _EvalSigma) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(known.u, known.v)
        return known.sigma.clone()

    @staticmethod
    def backward(ctx, grad_sigma: Tensor) -> tuple[Optional[Tensor], None]:  # type: ignore[override]
        u, v = ctx.saved_tensors
        return grad_sigma * torch.outer(u, v), None


class _KeptFolded(torch.autograd.Function):
    """A′ = A·min(c/σ, 1) of an eval call's kept σ as one autograd node, where σ, c/σ, the
    minimum and the product make four (autograd's bookkeeping per node cost more than the layer
    at batch 1). Its gradient is theirs: σ's is u vᵀ (:class:`_KnownSigma`), and where c/σ = 1
    each side of the minimum takes half, as ``torch.minimum``'s does. Under ``create_graph`` the
    backward differentiates those four ops, so higher derivatives are theirs too."""

    @staticmethod
    def forward(ctx, weight: Tensor, c: Tensor, known: _EvalSigma) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(weight, c)
        ctx.known = known
        return known.folded.clone()

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Optional[Tensor], Optional[Tensor], None]:  # type: ignore[override]
        weight, c = ctx.saved_tensors
        known, needs = ctx.known, ctx.needs_input_grad[:2]
        one = torch.ones_like(c)
        if torch.is_grad_enabled():  # create_graph: autograd differentiates the four ops
            folded = weight * torch.minimum(c / _KnownSigma.apply(weight, known), one)
            wanted = [t for t, need in zip((weight, c), needs) if need]
            found = iter(torch.autograd.grad(folded, wanted, grad, create_graph=True))
            return next(found) if needs[0] else None, next(found) if needs[1] else None, None
        ratio = c / known.sigma
        # the share of the gradient that reaches c/σ through the minimum: all, half at a tie, none
        value = float(ratio)
        share = 1.0 if value < 1 else 0.5 if value == 1 else 0.0
        inner = (grad * weight).sum() * share  # ⟨G, A⟩, as far as it reaches c/σ
        grad_weight = grad * torch.minimum(ratio, one)
        if share:
            grad_weight = grad_weight - (inner * c / known.sigma**2) * torch.outer(known.u, known.v)
        grad_c = inner / known.sigma if needs[1] else None
        return grad_weight if needs[0] else None, grad_c, None


def check_width(x: Tensor, expected: int, what: str) -> None:
    """A :class:`~iresnet_onnx.errors.UsageError` unless the last dimension of ``x`` is
    ``expected``."""
    if x.dim() == 0 or x.shape[-1] != expected:
        got = "a 0-d tensor" if x.dim() == 0 else f"{x.shape[-1]} (shape {list(x.shape)})"
        message = f"{what} expects inputs of shape [..., {expected}], last dimension is {got}"
        if torch.jit.is_scripting():
            raise ValueError(message)  # TorchScript raises builtin exceptions only
        raise UsageError(message)


class LinearContraction(nn.Module):
    r"""``f(x) = A′x + b`` with ``A′ = A·min(c/‖A‖₂, 1)``, so ``‖f(x) − f(y)‖₂ ≤ c‖x − y‖₂``.

    ‖A‖₂ comes from :class:`~iresnet_onnx.SpectralNorm` (gradient u vᵀ), warm-started from the
    persistent buffer ``power_vector``. In training the buffer follows the weights; in eval mode
    nothing is written but ``spectral_norm`` (σ of the current weights), so two eval calls are
    bit-identical. σ follows whatever edited the weights: training measures it at every call; eval
    keeps the σ it measured with a copy of the weights and c, and measures again when an entry
    differs (one comparison per layer and call instead of a power iteration; the copy costs the
    weights' memory once more). :func:`iresnet_onnx.freeze` folds A′ once, without the comparison.
    The bias is not scaled.
    """

    __jit_ignored_attributes__ = ["_eval_sigma", "_recorded_sigma"]  # noqa: RUF012 (TorchScript)

    input_size: Final[int]
    output_size: Final[int]
    power_atol: Final[float]
    power_rtol: Final[float]
    power_maxiter: Final[int]

    c: Tensor
    """BUFFER: the contraction constant, in (0, 1)."""
    one: Tensor
    """BUFFER: the constant 1.0 (kept from the seed's state_dict layout)."""
    spectral_norm: Tensor
    """BUFFER: ‖weight‖₂ as of the last forward pass (detached)."""
    power_vector: Tensor
    """BUFFER: the unit power-iteration vector (length min(in, out)) that warm-starts the next call."""
    _scripted_weight: Optional[Tensor]
    _scripted_c: Optional[Tensor]
    _scripted_sigma: Optional[Tensor]
    # TorchScript's kept σ in eval without autograd, with the weights and c it holds for (compared
    # value by value, as the eager eval's _EvalSigma): TorchScript cannot hold that NamedTuple
    weight: Tensor
    bias: Optional[Tensor]
    _eval_sigma: Optional[_EvalSigma]

    def __init__(self, input_size: int, output_size: int, *, c: float = 0.97, bias: bool = True):
        super().__init__()
        if isinstance(c, bool) or not isinstance(c, numbers.Real) or not 0.0 < float(c) < 1.0:
            raise UsageError(f"LinearContraction: c must lie in (0, 1), got {c!r}")
        for name, size in (("input_size", input_size), ("output_size", output_size)):
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise UsageError(f"LinearContraction: {name} must be a positive int, got {size!r}")
        self.input_size = int(input_size)
        self.output_size = int(output_size)
        self.power_atol = float(POWER_ITERATION["atol"])
        self.power_rtol = float(POWER_ITERATION["rtol"])
        self.power_maxiter = int(POWER_ITERATION["maxiter"])

        self.weight = nn.Parameter(torch.empty(self.output_size, self.input_size))
        if bias:
            self.bias = nn.Parameter(torch.empty(self.output_size))
        else:
            self.register_parameter("bias", None)
        self.register_buffer("c", torch.tensor(float(c)))
        self.register_buffer("one", torch.tensor(1.0))
        # not persistent (as in the seed): σ is re-derived from the weights, and eval mode must
        # leave the state_dict unchanged while this buffer follows the current weights
        self.register_buffer("spectral_norm", torch.tensor(0.0), persistent=False)
        self.register_buffer("power_vector", torch.zeros(min(self.input_size, self.output_size)))
        self._eval_sigma = None
        self._scripted_weight = self._scripted_c = self._scripted_sigma = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``nn.Linear``'s initialisation, then a cold-start power iteration to fill the buffers."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.input_size)
            nn.init.uniform_(self.bias, -bound, bound)
        self.refresh_power_vector(maxiter=_COLD_START_MAXITER, cold=True)

    def refresh_power_vector(self, maxiter: int = _COLD_START_MAXITER, cold: bool = False) -> None:
        """Converge ``power_vector`` for the current weights (e.g. after the last optimiser step).

        Training leaves the vector one optimiser step behind the weights; refreshing it before
        export means the exported power-iteration Loop runs zero updates.
        """
        if self.weight.is_meta:  # a shape-only model (the checkpoint loader's dry run)
            return
        start = None if cold else self.power_vector
        result = power_iteration(
            self.weight.detach(), start, self.power_atol, self.power_rtol, maxiter
        )
        with torch.no_grad():
            self.power_vector.copy_(result.vector)
            self.spectral_norm.copy_(result.sigma)

    def extra_repr(self) -> str:
        return (
            f"input_size={self.input_size}, output_size={self.output_size}, "
            f"c={float(self.c):g}, bias={self.bias is not None}"
        )

    def _sigma(self) -> Tensor:
        """‖weight‖₂, differentiable when autograd needs it; updates the warm start only in training."""
        if not torch.jit.is_scripting() and torch.compiler.is_compiling():
            return self._traced_sigma()
        if torch.jit.is_scripting():
            plain = not (self.training or (torch.is_grad_enabled() and self.weight.requires_grad))
            kept = self._scripted_sigma
            if plain and kept is not None and self._scripted_holds():
                return kept
            # TorchScript cannot call an autograd.Function; σ = uᵀAv with u, v fixed has the same
            # value and the same gradient u vᵀ.
            result = power_iteration(
                self.weight, self.power_vector, self.power_atol, self.power_rtol, self.power_maxiter
            )
            if self.training:
                self.power_vector.copy_(result.vector)
            sigma = torch.dot(result.u, self.weight @ result.v)
            if plain:
                self._scripted_weight = self.weight.detach().clone()
                self._scripted_c = self.c.detach().clone()
                self._scripted_sigma = sigma.detach()
            return sigma
        # training, or a trace (which records the iteration, no cache); an eval call that is not
        # traced uses the kept σ (see effective_weight)
        start = self.power_vector if self.training else self.power_vector.clone()
        return SpectralNorm.apply(
            self.weight, self.power_atol, self.power_rtol, self.power_maxiter, start
        )

    def _scripted_holds(self) -> bool:
        """Whether TorchScript's kept σ is still the weights' and c's (see ``_scripted_sigma``)."""
        weight, c = self._scripted_weight, self._scripted_c
        if weight is None or c is None:
            return False
        return (
            weight.shape == self.weight.shape
            and weight.dtype == self.weight.dtype
            and weight.device == self.weight.device
            and c.dtype == self.c.dtype
            and c.device == self.c.device
            and torch.equal(weight, self.weight)
            and torch.equal(c, self.c)
        )

    @torch.jit.unused
    def _measured_in_eval(self) -> _EvalSigma:
        """σ of the current weights in eval mode: the kept one while weights and c are unchanged,
        else a power iteration from the stored vector (which eval leaves as it is)."""
        known = self._eval_sigma
        if known is not None and known.holds_for(self.weight, self.c):
            return known
        with torch.no_grad():
            weight = self.weight.detach()
            result = power_iteration(
                weight, self.power_vector, self.power_atol, self.power_rtol, self.power_maxiter
            )
            folded = weight * torch.minimum(self.c / result.sigma, self.one)
            known = _EvalSigma(weight.clone(), self.c.clone(), result.sigma, result.u, result.v,
                               folded, torch.is_inference_mode_enabled())  # fmt: skip
        self._eval_sigma = known
        return known

    @torch.jit.unused
    def _traced_sigma(self) -> Tensor:
        """σ while torch traces the layer (torch.export, torch.compile): one custom op, so the
        data-dependent power iteration stays whole (see :mod:`iresnet_onnx._ops`)."""
        start = start_vector_branch_free(self.weight, self.power_vector)
        sigma, vector = spectral_norm_op(
            self.weight, start, self.power_atol, self.power_rtol, self.power_maxiter
        )
        if self.training:
            with torch.no_grad():
                self.power_vector.copy_(vector)
        return sigma

    def effective_weight(self) -> Tensor:
        """A′ = A·min(c/‖A‖₂, 1) of the current weights; sets the ``spectral_norm`` buffer
        (except while torch traces the layer: a traced graph keeps no such side output)."""
        if not torch.jit.is_scripting() and self._eval_untraced():
            # eval: the kept σ (measured again when the weights or c changed) and A′ kept with
            # it; with autograd on, one node for A′
            known = self._measured_in_eval()
            self._record(known.sigma)
            if torch.is_grad_enabled() and self.weight.requires_grad:
                return _KeptFolded.apply(self.weight, self.c, known)
            return known.folded
        sigma = self._sigma()
        if torch.jit.is_scripting():
            self.spectral_norm = sigma.detach()
        elif not torch.compiler.is_compiling():
            self._record(sigma)
        return self.weight * torch.minimum(self.c / sigma, self.one)

    @torch.jit.unused
    def _record(self, sigma: Tensor) -> None:
        """The ``spectral_norm`` buffer, replaced only when σ is another tensor than last time: in
        eval mode the kept σ serves every call, and a module attribute assignment per layer cost
        more than the layer's GEMM at batch 1."""
        if self.__dict__.get("_recorded_sigma") is not sigma:
            self._buffers["spectral_norm"] = sigma.detach().clone()
            # only eval's kept σ (no autograd history: deepcopy takes it) is worth remembering
            self.__dict__["_recorded_sigma"] = None if sigma.requires_grad else sigma

    @torch.jit.unused
    def _eval_untraced(self) -> bool:
        """Eval mode, not traced: where the kept σ serves (see :meth:`_measured_in_eval`)."""
        return not (self.training or torch.compiler.is_compiling() or torch.jit.is_tracing())

    def forward(self, x: Tensor) -> Tensor:
        """Signature: ``[..., input_size] → [..., output_size]``."""
        check_width(x, self.input_size, "LinearContraction")
        return functional.linear(x, self.effective_weight(), self.bias)
