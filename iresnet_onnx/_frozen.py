r"""``freeze(model)``: an iResNet's plain inference form, A′ folded once.

The trainable modules check σ against their current weights at every call, which keeps them
right whatever edits a weight but costs a comparison of the weights per layer and call in eval
mode (a power iteration in training). For inference,
``freeze`` takes a snapshot: each block's A′ = A·min(c/‖A‖₂, 1) and biases become buffers, and
g is plain tensor code (``linear`` and the activation), with the same ``forward``, ``inverse``,
``inverse_with_stats``, ``log_abs_det_jacobian`` and ``log_prob`` as the model. Like torch's
``parametrize.cached()``, the caching is explicit: later edits of the model do not reach a frozen
form — freeze again.
"""

import copy
import warnings
from typing import Any, Optional

import torch
from torch import Tensor, nn

from ._branch import Layer, apply_layers, make_layers
from ._contraction import check_width
from ._density import gaussian_log_density, layers_forward_and_log_det
from ._fixed_point import fixed_point
from ._iresnet import LEGACY_EXPORTER, check_invertible, iResNet, iResNetBlock
from ._ops import block_inverse as block_inverse_op
from ._solver_settings import check_solver_options, maxiter_cap
from ._structure import plan
from .errors import ConvergenceWarning, UsageError, UsageTypeError

__all__ = ["FrozenBlock", "FrozenIResNet", "freeze"]


def freeze(model: iResNet | iResNetBlock) -> "FrozenIResNet | FrozenBlock":
    """The plain inference form of ``model`` (see the module docstring); the model is unchanged.

    Example::

        >>> frozen = freeze(model.eval())
        >>> torch.testing.assert_close(frozen(x), model(x))
    """
    if isinstance(model, iResNet):
        return FrozenIResNet(model)
    if isinstance(model, iResNetBlock):
        return FrozenBlock(model)
    raise UsageTypeError(f"freeze takes an iResNet or iResNetBlock, got {type(model).__name__}")


class FrozenBlock(nn.Module):
    """An :class:`~iresnet_onnx.iResNetBlock` with A′ folded: ``y = x + g(x)``, g plain code."""

    def __init__(self, block: iResNetBlock):
        super().__init__()
        check_invertible(block, "freeze")
        self.HP = copy.deepcopy(block.HP)
        self.input_size = self.output_size = block.input_size
        self.hidden_size = block.hidden_size
        self.maxiter, self.atol, self.rtol = block.maxiter, block.atol, block.rtol
        self.variant = self.HP["variant"]
        was_training = block.training
        block.eval()  # eval: σ from the warm start, which is not moved
        try:
            with torch.no_grad():
                parameters = [p.detach().clone() for p in block.g_parameters()]
        finally:
            block.train(was_training)
        self.steps = plan(self.variant, self.input_size, self.hidden_size,
                          self.HP["activation"], self.HP["bias"])  # fmt: skip
        for index, parameter in enumerate(parameters):
            self.register_buffer(f"parameter_{index}", parameter)
        self._layers = self._build_layers()

    def _build_layers(self) -> list[Layer]:
        return make_layers(self.steps, list(self.buffers()))

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> "FrozenBlock":
        # .to(), .double(), .cuda() replace the buffers: the plain list of layers follows them
        result = super()._apply(fn, *args, **kwargs)
        self._layers = self._build_layers()
        return result

    def g(self, x: Tensor) -> Tensor:
        """g(x) with the folded weights."""
        return apply_layers(x, self._layers)

    def forward(self, x: Tensor) -> Tensor:
        check_width(x, self.input_size, "FrozenBlock")
        return x + self.g(x)

    def forward_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        check_width(x, self.input_size, "FrozenBlock")
        return layers_forward_and_log_det(self._layers, self.variant, self.hidden_size, x)

    def log_abs_det_jacobian(self, x: Tensor) -> Tensor:
        return self.forward_and_log_det(x)[1]

    def inverse_with_stats(
        self, y: Tensor, maxiter: Optional[int] = None, atol: Optional[float] = None,
        rtol: Optional[float] = None,
    ) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
        """``(x, iterations, residual)``, as :meth:`iResNetBlock.inverse_with_stats`."""
        check_width(y, self.input_size, "FrozenBlock.inverse")
        _check_finite(y, "FrozenBlock.inverse")
        return tuple(self._solve(y, maxiter, atol, rtol))

    def _solve(self, y: Tensor, maxiter: Optional[int], atol: Optional[float],
               rtol: Optional[float]) -> Any:  # fmt: skip
        if torch.jit.is_tracing():
            raise UsageError(LEGACY_EXPORTER)
        if torch.compiler.is_compiling():  # one op that torch.export keeps whole (see _ops)
            return block_inverse_op(
                y, list(self.buffers()),
                torch.as_tensor(self.maxiter if maxiter is None else maxiter, dtype=torch.int64),
                torch.as_tensor(self.atol if atol is None else atol, dtype=y.dtype),
                torch.as_tensor(self.rtol if rtol is None else rtol, dtype=y.dtype),
                self.variant, self.HP["activation"], self.HP["bias"], maxiter_cap(self.maxiter),
            )  # fmt: skip
        check_solver_options(maxiter, atol, rtol, "FrozenBlock.inverse")
        return fixed_point(
            self.g, y,
            self.maxiter if maxiter is None else maxiter,
            self.atol if atol is None else atol,
            self.rtol if rtol is None else rtol,
        )  # fmt: skip

    def inverse(self, y: Tensor, maxiter: Optional[int] = None, atol: Optional[float] = None,
                rtol: Optional[float] = None) -> Tensor:  # fmt: skip
        """x with x + g(x) = y; a ConvergenceWarning when the tolerance was not met (a frozen form
        records nothing)."""
        x, steps, residual = self.inverse_with_stats(y, maxiter, atol, rtol)
        _warn_unless_converged([steps], [residual], [self.atol if atol is None else atol])
        return x


class FrozenIResNet(nn.Module):
    """An :class:`~iresnet_onnx.iResNet` of :class:`FrozenBlock`; inverse in reversed order."""

    def __init__(self, model: iResNet):
        super().__init__()
        self.HP = copy.deepcopy(model.HP)
        self.input_size = self.output_size = model.input_size
        self.nblocks = model.nblocks
        self.blocks = nn.ModuleList(FrozenBlock(block) for block in model.blocks)

    def forward(self, x: Tensor) -> Tensor:
        check_width(x, self.input_size, "FrozenIResNet")
        for block in self.blocks:
            x = x + block.g(x)  # the blocks' g directly: no module call per block
        return x

    def forward_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        check_width(x, self.input_size, "FrozenIResNet")
        total = x.new_zeros(x.shape[:-1])
        for block in self.blocks:
            x, log_det = block.forward_and_log_det(x)
            total = total + log_det
        return x, total

    def log_abs_det_jacobian(self, x: Tensor) -> Tensor:
        return self.forward_and_log_det(x)[1]

    def log_prob(self, x: Tensor) -> Tensor:
        z, log_det = self.forward_and_log_det(x)
        return gaussian_log_density(z) + log_det

    def inverse_with_stats(
        self, y: Tensor, maxiter: Optional[int] = None, atol: Optional[float] = None,
        rtol: Optional[float] = None,
    ) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
        """``(x, iterations, residual)``, the last two per block in block order."""
        check_width(y, self.input_size, "FrozenIResNet.inverse")
        _check_finite(y, "FrozenIResNet.inverse")
        steps, residuals = [], []
        for block in reversed(self.blocks):
            y, k, residual = block._solve(y, maxiter, atol, rtol)
            steps.insert(0, k)
            residuals.insert(0, residual)
        return y, torch.stack(steps), torch.stack(residuals)

    def inverse(self, y: Tensor, maxiter: Optional[int] = None, atol: Optional[float] = None,
                rtol: Optional[float] = None) -> Tensor:  # fmt: skip
        x, steps, residuals = self.inverse_with_stats(y, maxiter, atol, rtol)
        _warn_unless_converged(
            steps, residuals, [block.atol if atol is None else atol for block in self.blocks]
        )
        return x


def _check_finite(y: Tensor, owner: str) -> None:
    if not torch.compiler.is_compiling() and not bool(torch.isfinite(y).all()):
        raise UsageError(f"{owner}: the input contains NaN or Inf")


def _warn_unless_converged(steps: Any, residuals: Any, atols: list[float]) -> None:
    if torch.compiler.is_compiling():  # values are symbolic while torch traces the model
        return
    for index, (k, residual, atol) in enumerate(zip(steps, residuals, atols)):
        if not bool(residual <= atol):
            warnings.warn(
                f"inverse of block {index}: no convergence in {int(k)} iterations: residual "
                f"{float(residual)} > atol {atol}",
                ConvergenceWarning,
                stacklevel=3,
            )
