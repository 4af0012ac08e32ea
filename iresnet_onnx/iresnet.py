r"""Invertible residual networks: iResNetBlock (y = x + g(x), Lip(g) < 1) and iResNet (a stack of them).

References: Behrmann et al., "Invertible Residual Networks", ICML 2019; linodenet's ``models.iresnet``,
whose API this follows with its known bugs fixed (shared class-level HP, a zeroed residual in the
non-convergence message, a ``print`` instead of a warning).
"""

import copy
import math
import numbers
import warnings
from typing import Any, Final, Optional

import torch
from torch import Tensor, nn

from .layers import LinearContraction, check_width

__all__ = ["ACTIVATIONS", "VARIANTS", "ConvergenceWarning", "iResNet", "iResNetBlock"]

ACTIVATIONS: Final = (
    "CELU", "ELU", "Hardtanh", "Identity", "LeakyReLU", "ReLU", "ReLU6",
    "Sigmoid", "Softplus", "Softsign", "Tanh",
)  # fmt: skip
"""``torch.nn`` activations whose Lipschitz constant is ≤ 1 with default arguments (SiLU, GELU,
SELU, Mish, Hardswish and the like exceed 1 and would break the contraction)."""

VARIANTS: Final = ("lowrank", "mlp")
"""``lowrank``: g(x) = ϕ(W₁·W₂·x), a bottleneck of width hidden_size; ``mlp``: g(x) = W₃ϕ(W₂ϕ(W₁x))."""

_META_KEYS: Final = ("__name__", "__module__", "input_size")


class ConvergenceWarning(UserWarning):
    """A fixed-point inverse stopped at ``maxiter`` before meeting its tolerance."""


def _activation(name: Any) -> nn.Module:
    if name not in ACTIVATIONS:
        if isinstance(name, str) and isinstance(getattr(nn, name, None), type):
            raise ValueError(
                f"activation {name!r} may have a Lipschitz constant above 1, so g would not be a "
                f"contraction; choose one of {', '.join(ACTIVATIONS)}"
            )
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
    return getattr(nn, name)()


def _merge_hp(defaults: dict, overrides: dict, owner: str) -> dict:
    """A deep copy of ``defaults`` updated with ``overrides``; unknown keys are a ``ValueError``."""
    merged = copy.deepcopy(defaults)
    for key, value in overrides.items():
        if key not in merged:
            known = ", ".join(k for k in defaults if not k.startswith("__"))
            raise ValueError(f"{owner}: unknown hyperparameter {key!r}; known: {known}")
        if isinstance(merged[key], dict) and isinstance(value, dict):
            merged[key] = _merge_hp(merged[key], value, f"{owner}[{key!r}]")
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _check_input_size(input_size: Any, hp: dict, owner: str) -> int:
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 1:
        raise ValueError(f"{owner}: input_size must be a positive int, got {input_size!r}")
    if hp.get("input_size") not in (None, input_size):
        raise ValueError(f"{owner}: HP input_size={hp['input_size']} contradicts {input_size}")
    return input_size


def check_solver_options(maxiter: Any, atol: Any, rtol: Any, owner: str) -> None:
    """``ValueError`` unless maxiter is an integer ≥ 1 and atol, rtol are finite numbers ≥ 0.

    ``None`` means "keep the default" and passes. The one validator of solver settings: the
    model's HP, ``inverse(...)`` overrides, export defaults and session inputs all use it.
    """
    if maxiter is not None and (
        isinstance(maxiter, bool) or not isinstance(maxiter, numbers.Integral) or maxiter < 1
    ):
        raise ValueError(f"{owner}: maxiter must be an int ≥ 1, got {maxiter!r}")
    for name, value in (("atol", atol), ("rtol", rtol)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"{owner}: {name} must be a number, got {value!r}")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{owner}: {name} must be finite and ≥ 0, got {value!r}")


class iResNetBlock(nn.Module):
    r"""Invertible residual block ``y = x + g(x)`` with ``Lip(g) < 1``.

    ``inverse`` solves the fixed point ``x = y − g(x)``: x₀ = y, x_{k+1} = y − g(x_k), until every
    element meets ``|x_{k+1} − x_k| ≤ atol + rtol·|x_k|`` or after ``maxiter`` steps. The residual
    ``max(|x_{k+1} − x_k| − rtol·|x_k|)`` and the step count of the last inverse are kept in the
    buffers ``residual`` and ``iterations``; converged ⇔ residual ≤ atol.
    """

    input_size: Final[int]
    hidden_size: Final[int]
    output_size: Final[int]
    maxiter: Final[int]
    atol: Final[float]
    rtol: Final[float]

    residual: Tensor
    """BUFFER: residual of the last inverse (+inf before the first)."""
    iterations: Tensor
    """BUFFER: number of fixed-point steps of the last inverse."""

    HP = {  # noqa: RUF012 (the seed's API: a class-level dict, copied, never mutated)
        "__name__": "iResNetBlock",
        "__module__": __name__,
        "input_size": None,
        "hidden_size": None,
        "activation": "ReLU",
        "variant": "lowrank",
        "maxiter": 100,
        "atol": 1e-6,  # the seed's 1e-8 is below float32 rounding of x ≈ y − g(x) for |y| ≈ 1
        "rtol": 1e-5,
        "bias": True,
    }
    """Default hyperparameters; ``hidden_size=None`` means ⌊√input_size⌋. Never mutated."""

    def __init__(self, input_size: int, **HP: Any):
        super().__init__()
        hp = _merge_hp(iResNetBlock.HP, HP, "iResNetBlock")
        hp["input_size"] = _check_input_size(input_size, HP, "iResNetBlock")
        if hp["hidden_size"] is None:
            hp["hidden_size"] = max(1, math.isqrt(input_size))
        hidden = hp["hidden_size"]
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
            raise ValueError(f"iResNetBlock: hidden_size must be a positive int, got {hidden!r}")
        if hp["variant"] not in VARIANTS:
            raise ValueError(
                f"iResNetBlock: unknown variant {hp['variant']!r}; choose one of {', '.join(VARIANTS)}"
            )
        check_solver_options(hp["maxiter"], hp["atol"], hp["rtol"], "iResNetBlock")
        self.HP = hp

        self.input_size = input_size
        self.output_size = input_size
        self.hidden_size = hidden
        self.maxiter = hp["maxiter"]
        self.atol = float(hp["atol"])
        self.rtol = float(hp["rtol"])

        bias = bool(hp["bias"])
        if hp["variant"] == "lowrank":
            layers = [
                LinearContraction(input_size, hidden, bias=bias),  # W₂
                LinearContraction(hidden, input_size, bias=bias),  # W₁
                _activation(hp["activation"]),
            ]
        else:
            layers = [
                LinearContraction(input_size, hidden, bias=bias),
                _activation(hp["activation"]),
                LinearContraction(hidden, hidden, bias=bias),
                _activation(hp["activation"]),
                LinearContraction(hidden, input_size, bias=bias),
            ]
        self.bottleneck = nn.Sequential(*layers)
        self.register_buffer("residual", torch.tensor(math.inf), persistent=False)
        self.register_buffer("iterations", torch.tensor(0), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """Signature: ``[..., n] → [..., n]``."""
        check_width(x, self.input_size, "iResNetBlock")
        return x + self.bottleneck(x)

    @torch.jit.export
    def inverse(
        self,
        y: Tensor,
        maxiter: Optional[int] = None,
        atol: Optional[float] = None,
        rtol: Optional[float] = None,
    ) -> Tensor:
        """Solve ``x + g(x) = y`` by fixed-point iteration; options override the block's HP."""
        check_width(y, self.input_size, "iResNetBlock.inverse")
        if not bool(torch.isfinite(y).all()):
            raise ValueError("iResNetBlock.inverse: the input contains NaN or Inf")
        maxiter_ = self.maxiter if maxiter is None else maxiter
        atol_ = self.atol if atol is None else atol
        rtol_ = self.rtol if rtol is None else rtol
        if not torch.jit.is_scripting():
            check_solver_options(maxiter, atol, rtol, "iResNetBlock.inverse")
        elif maxiter_ < 1 or not 0.0 <= atol_ < math.inf or not 0.0 <= rtol_ < math.inf:
            # the same rule in what TorchScript compiles (its types already make maxiter an int)
            raise ValueError(
                f"iResNetBlock.inverse: need maxiter ≥ 1 and finite atol, rtol ≥ 0; "
                f"got maxiter={maxiter_}, atol={atol_}, rtol={rtol_}"
            )
        x = y
        residual = torch.full((), math.inf, dtype=y.dtype, device=y.device)
        k = 0
        if y.numel() > 0:
            while k < maxiter_:
                x_next = y - self.bottleneck(x)
                # a max reduction, not `.all()`: one ReduceMax node in the exported Loop
                residual = torch.amax(torch.abs(x_next - x) - rtol_ * torch.abs(x))
                x = x_next
                k += 1
                if not bool(residual > atol_):
                    break
        else:
            residual = torch.zeros((), dtype=y.dtype, device=y.device)
        self.residual = residual.detach()
        self.iterations = torch.tensor(k, device=y.device)
        if bool(residual > atol_):
            message = (
                f"iResNetBlock.inverse: no convergence in {k} iterations: "
                f"residual {float(residual)} > atol {atol_}"
            )
            if torch.jit.is_scripting():
                warnings.warn(message)  # noqa: B028 (TorchScript takes no category or stacklevel)
            else:
                warnings.warn(message, ConvergenceWarning, stacklevel=2)
        return x


class iResNet(nn.Module):
    r"""A stack of :class:`iResNetBlock`; ``inverse`` runs the blocks' inverses in reversed order.

    HP: ``nblocks`` and a nested ``"iResNetBlock"`` dict merged into the block defaults, e.g.
    ``iResNet(8, nblocks=3, iResNetBlock={"activation": "ELU", "maxiter": 50})``.
    """

    __jit_unused_properties__ = ["reversed_blocks"]  # noqa: RUF012 (read by TorchScript)

    input_size: Final[int]
    output_size: Final[int]
    nblocks: Final[int]

    HP = {  # noqa: RUF012 (the seed's API: a class-level dict, copied, never mutated)
        "__name__": "iResNet",
        "__module__": __name__,
        "input_size": None,
        "nblocks": 5,
        "iResNetBlock": {k: v for k, v in iResNetBlock.HP.items() if k not in _META_KEYS},
    }
    """Default hyperparameters. Never mutated."""

    def __init__(self, input_size: int, **HP: Any):
        super().__init__()
        hp = _merge_hp(iResNet.HP, HP, "iResNet")
        hp["input_size"] = _check_input_size(input_size, HP, "iResNet")
        nblocks = hp["nblocks"]
        if isinstance(nblocks, bool) or not isinstance(nblocks, int) or nblocks < 1:
            raise ValueError(f"iResNet: nblocks must be a positive int, got {nblocks!r}")
        self.input_size = input_size
        self.output_size = input_size
        self.nblocks = nblocks
        self.blocks = nn.Sequential(
            *(iResNetBlock(input_size, **hp["iResNetBlock"]) for _ in range(nblocks))
        )
        # record the resolved block HP (hidden_size filled in), without the per-block meta keys
        hp["iResNetBlock"] = {k: v for k, v in self.blocks[0].HP.items() if k not in _META_KEYS}
        self.HP = hp

    @property
    def reversed_blocks(self) -> nn.Sequential:
        """The blocks in the order ``inverse`` runs them (shares the modules, not a copy)."""
        return nn.Sequential(*reversed(list(self.blocks)))

    def forward(self, x: Tensor) -> Tensor:
        """Signature: ``[..., n] → [..., n]``."""
        check_width(x, self.input_size, "iResNet")
        return self.blocks(x)

    @torch.jit.export
    def inverse(
        self,
        y: Tensor,
        maxiter: Optional[int] = None,
        atol: Optional[float] = None,
        rtol: Optional[float] = None,
    ) -> Tensor:
        """Invert every block, last block first; options override each block's HP."""
        check_width(y, self.input_size, "iResNet.inverse")
        for block in self.blocks[::-1]:
            y = block.inverse(y, maxiter, atol, rtol)
        return y
