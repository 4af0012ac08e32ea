r"""Invertible residual networks: iResNetBlock (y = x + g(x), Lip(g) < 1) and iResNet (a stack).

References: Behrmann et al., "Invertible Residual Networks", ICML 2019; linodenet's
``models.iresnet``, whose API this follows (hyperparameters: :mod:`._hyperparameters`).

The modules compute from their current weights at every call, in every mode: whatever edits a
weight, the next call sees it. :func:`iresnet_onnx.freeze` makes the plain, fixed inference form.
"""

import math
import warnings
from typing import Any, Final, Optional

import torch
from torch import Tensor, nn
from torch.nn import functional

from ._branch import apply_layers, make_layers
from ._contraction import LinearContraction, check_width
from ._fixed_point import COMPACT_ROWS, FixedPointResult, fixed_point
from ._hyperparameters import BLOCK_HP, IRESNET_HP, block_hp, iresnet_hp
from ._ops import block_inverse as block_inverse_op
from ._scripted_solver import ScriptedSolver
from ._solver_settings import MAXITER_LIMIT, check_solver_options, maxiter_cap
from ._structure import LinearStep, plan
from .errors import ConvergenceWarning, UsageError

__all__ = ["LEGACY_EXPORTER", "check_invertible", "iResNet", "iResNetBlock"]

LEGACY_EXPORTER = (
    "an iResNet's inverse cannot be traced by torch.jit.trace or torch.onnx.export(dynamo=False): "
    "the trace would unroll the fixed-point iteration to the example's step counts and give wrong "
    "numbers for other inputs. Export with torch.onnx.export(..., dynamo=True, "
    "custom_translation_table=iresnet_onnx.onnx_translation_table()), which keeps the Loop"
)


def _checks_values() -> bool:
    """Whether to look at values (finiteness checks, recorded step counts, warnings): always,
    except while torch traces the model, where a value is symbolic and a branch on it fails."""
    return torch.jit.is_scripting() or not torch.compiler.is_compiling()


def check_invertible(model: nn.Module, owner: str) -> None:
    """A :class:`UsageError` naming the tensor unless every LinearContraction of ``model`` has
    finite weights, bias and warm-start vector and ``c`` in (0, 1): without them the model is not
    the contraction its inverse relies on (a state_dict can carry anything)."""
    for prefix, module in model.named_modules():
        if not isinstance(module, LinearContraction):
            continue
        where = f"{owner}: {prefix + '.' if prefix else ''}"
        c = float(module.c)
        if not 0.0 < c < 1.0:
            raise UsageError(f"{where}c is {c}, it must lie in (0, 1) for an invertible block")
        for name, tensor in (
            ("weight", module.weight),
            ("bias", module.bias),
            ("power_vector", module.power_vector),
        ):
            if tensor is not None and not bool(torch.isfinite(tensor).all()):
                raise UsageError(f"{where}{name} contains NaN or Inf")


class iResNetBlock(ScriptedSolver, nn.Module):
    r"""Invertible residual block ``y = x + g(x)`` with ``Lip(g) < 1``.

    ``inverse`` solves the fixed point ``x = y − g(x)`` by :func:`~iresnet_onnx._fixed_point.fixed_point`:
    x₀ = y, x_{k+1} = y − g(x_k), each row until ``|x_{k+1} − x_k| ≤ atol + rtol·|x_k|``
    elementwise, or after ``maxiter`` steps. Converged ⇔ the residual ``max(|x_{k+1} − x_k| −
    rtol·|x_k|)`` is ≤ atol; NaN is never converged. ``inverse_with_stats`` returns the step count
    and residual of its own call; ``inverse`` also keeps them in the buffers ``residual`` and
    ``iterations`` (the last call's) and warns when the tolerance was not met. Gradients of the
    inverse are implicit (the implicit function theorem), not unrolled through the steps.
    """

    input_size: Final[int]
    hidden_size: Final[int]
    output_size: Final[int]
    maxiter: Final[int]
    atol: Final[float]
    rtol: Final[float]
    _maxiter_limit: Final[int]  # MAXITER_LIMIT, where TorchScript can read it
    _compact_rows: Final[int]  # COMPACT_ROWS, likewise

    residual: Tensor
    """BUFFER: residual of the last inverse (+inf before the first)."""
    iterations: Tensor
    """BUFFER: number of fixed-point steps of the last inverse."""

    HP = BLOCK_HP  # the seed's API: class-level defaults, copied, never mutated
    """Default hyperparameters; ``hidden_size=None`` means ⌊√input_size⌋."""

    def __init__(self, input_size: int, **HP: Any):
        super().__init__()
        hp = block_hp(input_size, HP)
        self.HP = hp
        self.input_size = self.output_size = hp["input_size"]
        self.hidden_size = hp["hidden_size"]
        self.maxiter, self.atol, self.rtol = hp["maxiter"], hp["atol"], hp["rtol"]
        self._maxiter_limit = MAXITER_LIMIT
        self._compact_rows = COMPACT_ROWS
        steps = plan(hp["variant"], self.input_size, self.hidden_size, hp["activation"], hp["bias"])
        self.bottleneck = nn.Sequential(*(
            LinearContraction(step.in_size, step.out_size, bias=step.bias)
            if isinstance(step, LinearStep) else getattr(nn, step.name)()
            for step in steps
        ))  # fmt: skip
        self.register_buffer("residual", torch.tensor(math.inf), persistent=False)
        self.register_buffer("iterations", torch.tensor(0), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """Signature: ``[..., n] → [..., n]``."""
        check_width(x, self.input_size, "iResNetBlock")
        return x + self.bottleneck(x)

    def g_parameters(self) -> list[Tensor]:
        """What g depends on, in the order :meth:`g` takes it: each linear step's A′ (of the current
        weights; differentiable where autograd needs it), then its bias where it has one."""
        parameters: list[Tensor] = []
        for module in self.bottleneck:
            # a LinearContraction, asked by what it has: TorchScript answers isinstance() by the
            # first type it compiled for the class, so a layer of another size (another type,
            # its sizes being constants) would fail it and run its whole forward at every step
            if hasattr(module, "effective_weight"):
                parameters.append(module.effective_weight())
                bias = module.bias  # a local, so that TorchScript refines the Optional
                if bias is not None:
                    parameters.append(bias)
        return parameters

    def g(self, x: Tensor, parameters: list[Tensor]) -> Tensor:
        """g(x) from the tensors of :meth:`g_parameters` (plain functional calls)."""
        index = 0
        for module in self.bottleneck:
            if hasattr(module, "effective_weight"):  # a LinearContraction (see g_parameters)
                bias: Optional[Tensor] = None
                if module.bias is not None:
                    bias = parameters[index + 1]
                x = functional.linear(x, parameters[index], bias)
                index += 1 if bias is None else 2
            else:
                x = module(x)
        return x

    def forward_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(y, log|det ∂y/∂x|)``: ``[..., n] → ([..., n], [...])``, exact (the matrix
        determinant lemma, :mod:`iresnet_onnx._density`), differentiable."""
        from ._density import forward_and_log_det

        check_width(x, self.input_size, "iResNetBlock")
        return forward_and_log_det(self, x)

    def log_abs_det_jacobian(self, x: Tensor) -> Tensor:
        """log|det ∂f/∂x| per sample, ``[..., n] → [...]`` (see :meth:`forward_and_log_det`)."""
        return self.forward_and_log_det(x)[1]

    @torch.jit.export
    def inverse_with_stats(
        self,
        y: Tensor,
        maxiter: Optional[int] = None,
        atol: Optional[float] = None,
        rtol: Optional[float] = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``(x, iterations, residual)`` of this call: x with x + g(x) = y, the fixed-point steps
        taken and the final residual (converged ⇔ residual ≤ atol; NaN is not converged). Writes
        no state, never warns; options override the block's HP."""
        check_width(y, self.input_size, "iResNetBlock.inverse")
        if _checks_values() and not bool(torch.isfinite(y).all()):
            if torch.jit.is_scripting():
                raise ValueError("iResNetBlock.inverse: the input contains NaN or Inf")
            raise UsageError("iResNetBlock.inverse: the input contains NaN or Inf")
        return self._solve(y, maxiter, atol, rtol)

    def _solve(
        self, y: Tensor, maxiter: Optional[int], atol: Optional[float], rtol: Optional[float]
    ) -> tuple[Tensor, Tensor, Tensor]:
        """:meth:`inverse_with_stats` without the input checks (an iResNet checks once; a NaN
        that an earlier block produced flows on and shows in every later residual)."""
        maxiter_ = self.maxiter if maxiter is None else maxiter
        atol_ = self.atol if atol is None else atol
        rtol_ = self.rtol if rtol is None else rtol
        if torch.jit.is_scripting():
            if (
                not 1 <= maxiter_ <= self._maxiter_limit
                or not 0.0 <= atol_ < math.inf
                or not 0.0 <= rtol_ < math.inf
            ):  # the rule of check_solver_options, in what TorchScript compiles
                raise ValueError(
                    f"iResNetBlock.inverse: need maxiter in 1…{self._maxiter_limit} and finite "
                    f"atol, rtol ≥ 0; got maxiter={maxiter_}, atol={atol_}, rtol={rtol_}"
                )
            return self._scripted_solve(y, maxiter_, atol_, rtol_)
        if torch.jit.is_tracing():
            raise UsageError(LEGACY_EXPORTER)
        if torch.compiler.is_compiling():
            return self._traced_solve(y, maxiter_, atol_, rtol_)
        check_solver_options(maxiter, atol, rtol, "iResNetBlock.inverse")
        return self._eager_solve(y, maxiter_, atol_, rtol_)

    @torch.jit.unused
    def _eager_solve(self, y: Tensor, maxiter: int, atol: float, rtol: float) -> FixedPointResult:
        # g as plain layers (what self.g computes, without a module walk per fixed-point step)
        hp = self.HP
        steps = plan(hp["variant"], self.input_size, self.hidden_size, hp["activation"], hp["bias"])
        parameters = tuple(self.g_parameters())
        if not torch.is_grad_enabled():  # no gradient to carry: the layers are made once
            layers = make_layers(steps, parameters)
            return fixed_point(lambda x: apply_layers(x, layers), y, maxiter, atol, rtol)

        def g(x: Tensor, *parameters: Tensor) -> Tensor:
            return apply_layers(x, make_layers(steps, parameters))

        return fixed_point(g, y, maxiter, atol, rtol, phi=parameters)

    @torch.jit.unused
    def _traced_solve(self, y: Tensor, maxiter: Any, atol: Any, rtol: Any) -> tuple:
        """The solve while torch traces the block: one custom op, with the implicit gradient
        registered (see :mod:`iresnet_onnx._ops`). The settings may be 0-d tensors (graph
        inputs of an exported inverse)."""
        return block_inverse_op(
            y, self.g_parameters(),
            torch.as_tensor(maxiter, dtype=torch.int64),
            torch.as_tensor(atol, dtype=y.dtype),
            torch.as_tensor(rtol, dtype=y.dtype),
            self.HP["variant"], self.HP["activation"], self.HP["bias"], maxiter_cap(self.maxiter),
        )  # fmt: skip

    @torch.jit.export
    def inverse(
        self,
        y: Tensor,
        maxiter: Optional[int] = None,
        atol: Optional[float] = None,
        rtol: Optional[float] = None,
    ) -> Tensor:
        """Solve ``x + g(x) = y`` by fixed-point iteration; options override the block's HP.

        A ``ConvergenceWarning`` (with the residual) says when the tolerance was not met.
        """
        x, k, residual = self.inverse_with_stats(y, maxiter, atol, rtol)
        self.record(k, residual, self.atol if atol is None else atol)
        return x

    def record(self, iterations: Tensor, residual: Tensor, atol: float) -> None:
        """Keep an inverse's step count and residual in the buffers; warn if it missed atol
        (not while torch traces the block: a traced graph has no such side effects)."""
        if not _checks_values():
            return
        self.residual = residual.detach()
        self.iterations = iterations
        if not bool(residual <= atol):
            message = (
                f"iResNetBlock.inverse: no convergence in {int(iterations)} iterations: "
                f"residual {float(residual)} > atol {atol}"
            )
            if torch.jit.is_scripting():
                warnings.warn(message)  # noqa: B028 (TorchScript takes no category or stacklevel)
            else:
                warnings.warn(message, ConvergenceWarning, stacklevel=3)


class iResNet(nn.Module):
    r"""A stack of :class:`iResNetBlock`; ``inverse`` runs the blocks' inverses in reversed order.

    HP: ``nblocks`` and a nested ``"iResNetBlock"`` dict merged into the block defaults, e.g.
    ``iResNet(8, nblocks=3, iResNetBlock={"activation": "ELU", "maxiter": 50})``.
    """

    __jit_unused_properties__ = ["reversed_blocks"]  # noqa: RUF012 (read by TorchScript)

    input_size: Final[int]
    output_size: Final[int]
    nblocks: Final[int]

    HP = IRESNET_HP  # the seed's API: class-level defaults, copied, never mutated
    """Default hyperparameters. linodenet's ``maxiter``, ``dropout``, ``bias`` (which linodenet
    never read) and ``rezero`` are accepted, with a warning where they are ignored."""

    def __init__(self, input_size: int, **HP: Any):
        super().__init__()
        hp = iresnet_hp(input_size, HP)
        self.HP = hp
        self.input_size = self.output_size = hp["input_size"]
        self.nblocks = hp["nblocks"]
        self.blocks = nn.Sequential(
            *(iResNetBlock(self.input_size, **hp["iResNetBlock"]) for _ in range(self.nblocks))
        )

    @property
    def reversed_blocks(self) -> nn.Sequential:
        """The blocks in the order ``inverse`` runs them (shares the modules, not a copy)."""
        return nn.Sequential(*reversed(list(self.blocks)))

    def forward(self, x: Tensor) -> Tensor:
        """Signature: ``[..., n] → [..., n]``."""
        check_width(x, self.input_size, "iResNet")
        return self.blocks(x)

    def forward_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(z, log|det ∂z/∂x|)``: the forward pass and its exact log-determinant (the sum of the
        blocks'), in one pass; ``[..., n] → ([..., n], [...])``, differentiable."""
        from ._density import forward_and_log_det

        check_width(x, self.input_size, "iResNet")
        total = x.new_zeros(x.shape[:-1])
        for block in self.blocks:
            x, log_det = forward_and_log_det(block, x)
            total = total + log_det
        return x, total

    def log_abs_det_jacobian(self, x: Tensor) -> Tensor:
        """log|det ∂f/∂x| per sample, ``[..., n] → [...]`` (see :meth:`forward_and_log_det`)."""
        return self.forward_and_log_det(x)[1]

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x) under the flow with a standard normal base: log N(f(x); 0, I) + log|det ∂f/∂x|,
        per sample, ``[..., n] → [...]``; differentiable (what maximum-likelihood training uses)."""
        from ._density import gaussian_log_density

        z, log_det = self.forward_and_log_det(x)
        return gaussian_log_density(z) + log_det

    @torch.jit.export
    def inverse_with_stats(
        self,
        y: Tensor,
        maxiter: Optional[int] = None,
        atol: Optional[float] = None,
        rtol: Optional[float] = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``(x, iterations, residual)`` of this call, the last two per block in block order
        (see :meth:`iResNetBlock.inverse_with_stats`)."""
        check_width(y, self.input_size, "iResNet.inverse")
        if _checks_values() and not bool(torch.isfinite(y).all()):
            if torch.jit.is_scripting():
                raise ValueError("iResNet.inverse: the input contains NaN or Inf")
            raise UsageError("iResNet.inverse: the input contains NaN or Inf")
        steps: list[Tensor] = []
        residuals: list[Tensor] = []
        for block in self.blocks[::-1]:
            y, k, residual = block._solve(y, maxiter, atol, rtol)
            steps.insert(0, k)
            residuals.insert(0, residual)
        return y, torch.stack(steps), torch.stack(residuals)

    @torch.jit.export
    def inverse(
        self,
        y: Tensor,
        maxiter: Optional[int] = None,
        atol: Optional[float] = None,
        rtol: Optional[float] = None,
    ) -> Tensor:
        """Invert every block, last block first; options override each block's HP. Each block
        that misses its tolerance warns (``ConvergenceWarning``)."""
        x, steps, residuals = self.inverse_with_stats(y, maxiter, atol, rtol)
        for index, block in enumerate(self.blocks):
            block.record(steps[index], residuals[index], block.atol if atol is None else atol)
        return x
