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
from torch.nn import functional

from ._contraction import LinearContraction, check_width
from ._solver_settings import MAXITER_LIMIT, check_solver_options
from .errors import ConvergenceWarning

__all__ = [
    "ACTIVATIONS",
    "VARIANTS",
    "ConvergenceWarning",
    "check_invertible",
    "iResNet",
    "iResNetBlock",
]

ACTIVATIONS: Final = (
    "CELU", "ELU", "Hardtanh", "Identity", "LeakyReLU", "ReLU", "ReLU6",
    "Sigmoid", "Softplus", "Softsign", "Tanh",
)  # fmt: skip
"""``torch.nn`` activations whose Lipschitz constant is ≤ 1 with default arguments (SiLU, GELU,
SELU, Mish, Hardswish and the like exceed 1 and would break the contraction)."""

VARIANTS: Final = ("lowrank", "mlp")
"""``lowrank``: g(x) = ϕ(W₁·W₂·x), a bottleneck of width hidden_size; ``mlp``: g(x) = W₃ϕ(W₂ϕ(W₁x))."""

_META_KEYS: Final = ("__name__", "__module__", "input_size")


def _activation(name: Any) -> nn.Module:
    if name not in ACTIVATIONS:
        if isinstance(name, str) and isinstance(getattr(nn, name, None), type):
            raise ValueError(
                f"activation {name!r} may have a Lipschitz constant above 1, so g would not be a "
                f"contraction; choose one of {', '.join(ACTIVATIONS)}"
            )
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
    return getattr(nn, name)()


def plain_hp(value: Any, where: str = "HP") -> Any:
    """``value`` as plain JSON data: numpy scalars become Python numbers, tuples lists.

    HP are written into checkpoints and ONNX metadata as JSON, so a value that JSON cannot hold
    exactly is refused here, at construction, rather than by the loader of a checkpoint later.
    """
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:
        value = value.item()  # numpy scalars (np.float32, np.int64, np.bool_, np.str_)
    if isinstance(value, dict):
        return {str(key): plain_hp(item, f"{where}[{key!r}]") for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_hp(item, f"{where}[{index}]") for index, item in enumerate(value)]
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"{where} must be a finite number, got {value!r}")
        return number
    raise ValueError(f"{where}: {value!r} ({type(value).__name__}) is not plain JSON data")


_LINODENET_KEYS: Final = {
    "iResNetBlock": ("activation_config", "input_size", "output_size", "rezero"),
    "iResNet": ("maxiter", "dropout", "bias", "rezero"),
}
"""Keys that linodenet's configs pass and this package does not use (see :func:`_linodenet_key`)."""

_LINODENET_IGNORED: Final = {"maxiter": 10, "dropout": None, "bias": True}
"""linodenet's iResNet-level keys that linodenet itself never read, with its defaults."""


def _linodenet_key(owner: str, key: str, value: Any, input_size: int) -> None:
    """Accept a linodenet key where its value changes nothing, warn where it is ignored, and
    refuse it where honouring it would change the model."""
    if key == "rezero":
        if value:
            raise ValueError(f"{owner}: rezero=True (linodenet's ReZero scaling) is not supported")
    elif key in ("input_size", "output_size"):
        if value is not None and value != input_size:
            raise ValueError(
                f"{owner}: {key} must be None or the model's input_size ({input_size}) in an "
                f"invertible block, got {value!r}"
            )
    elif key == "activation_config":
        # linodenet passes {"inplace": False}; other arguments (alpha, …) would change ϕ and its
        # Lipschitz constant, which the allow-list of activations vouches for
        if not isinstance(value, dict) or set(value) - {"inplace"}:
            raise ValueError(
                f"{owner}: activation_config may only hold 'inplace' (activations run with their "
                f"default arguments, whose Lipschitz constant is ≤ 1), got {value!r}"
            )
        if value.get("inplace"):
            warnings.warn(
                f"{owner}: activation_config inplace=True has no effect here", stacklevel=4
            )
    elif value != _LINODENET_IGNORED[key]:
        warnings.warn(
            f"{owner}: hyperparameter {key!r}={value!r} has no effect (linodenet ignores it too"
            + ("; set iResNetBlock={'maxiter': …} for the inverse)" if key == "maxiter" else ")"),
            stacklevel=4,
        )


def _merge_hp(
    defaults: dict, overrides: dict, owner: str, input_size: int, linodenet_keys: tuple = ()
) -> dict:
    """A deep copy of ``defaults`` updated with ``overrides`` (made plain JSON data).

    Unknown keys are a ``ValueError``; linodenet's keys are checked by :func:`_linodenet_key` and
    dropped, so a model's HP hold only what shapes it.
    """
    merged = copy.deepcopy(defaults)
    for key, value in overrides.items():
        if key not in merged and key in linodenet_keys:
            _linodenet_key(owner, key, value, input_size)
            continue
        if key not in merged:
            known = ", ".join(k for k in defaults if not k.startswith("__"))
            raise ValueError(f"{owner}: unknown hyperparameter {key!r}; known: {known}")
        if isinstance(merged[key], dict) and isinstance(value, dict):
            merged[key] = _merge_hp(
                merged[key], value, f"{owner}[{key!r}]", input_size, _LINODENET_KEYS.get(key, ())
            )
        else:
            merged[key] = plain_hp(value, f"{owner}: {key}")
    return merged


def _check_input_size(input_size: Any, hp: dict, owner: str) -> int:
    if (
        isinstance(input_size, bool)
        or not isinstance(input_size, numbers.Integral)
        or input_size < 1
    ):
        raise ValueError(f"{owner}: input_size must be a positive int, got {input_size!r}")
    if hp.get("input_size") not in (None, input_size):
        raise ValueError(f"{owner}: HP input_size={hp['input_size']} contradicts {input_size}")
    return int(input_size)


def _check_positive_int(value: Any, name: str, owner: str, limit: int) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or not 1 <= value <= limit
    ):
        raise ValueError(f"{owner}: {name} must be an int in 1…{limit:,}, got {value!r}")
    return int(value)


def check_invertible(model: nn.Module, owner: str) -> None:
    """``ValueError`` naming the tensor unless every LinearContraction of ``model`` has finite
    weights, bias and warm-start vector and ``c`` in (0, 1): without them the model is not the
    contraction its inverse relies on (a state_dict can carry anything)."""
    for prefix, module in model.named_modules():
        if not isinstance(module, LinearContraction):
            continue
        where = f"{owner}: {prefix + '.' if prefix else ''}"
        c = float(module.c)
        if not 0.0 < c < 1.0:
            raise ValueError(f"{where}c is {c}, it must lie in (0, 1) for an invertible block")
        for name, tensor in (
            ("weight", module.weight),
            ("bias", module.bias),
            ("power_vector", module.power_vector),
        ):
            if tensor is not None and not bool(torch.isfinite(tensor).all()):
                raise ValueError(f"{where}{name} contains NaN or Inf")


def _hooked(module: nn.Module) -> bool:
    return bool(
        module._forward_hooks
        or module._forward_pre_hooks
        or module._backward_hooks
        or module._backward_pre_hooks
    )


def _global_hooks() -> bool:
    """Whether any module-global hook is registered (``nn.modules.module.register_module_*``)."""
    registry = nn.modules.module
    return any(
        getattr(registry, name, None)
        for name in (
            "_global_forward_hooks", "_global_forward_pre_hooks",
            "_global_backward_hooks", "_global_backward_pre_hooks",
        )
    )  # fmt: skip


class iResNetBlock(nn.Module):
    r"""Invertible residual block ``y = x + g(x)`` with ``Lip(g) < 1``.

    ``inverse`` solves the fixed point ``x = y − g(x)``: x₀ = y, x_{k+1} = y − g(x_k), until every
    element meets ``|x_{k+1} − x_k| ≤ atol + rtol·|x_k|`` or after ``maxiter`` steps. Converged ⇔
    the residual ``max(|x_{k+1} − x_k| − rtol·|x_k|)`` is ≤ atol; a NaN residual (a fixed point
    that blew up) stops the iteration and counts as not converged. ``inverse_with_stats`` returns
    the step count and residual of its own call; ``inverse`` also keeps them in the buffers
    ``residual`` and ``iterations`` (the last call's, whichever thread made it) and warns when the
    tolerance was not met.

    Gradients of the inverse are implicit (eager mode): x* = y − g(x*) gives
    dx* = (I + J_g)⁻¹(dy − ∂g/∂θ dθ), so backward solves (I + J_gᵀ)w = ∂L/∂x* by the same kind of
    fixed-point iteration instead of differentiating through every step.
    """

    input_size: Final[int]
    hidden_size: Final[int]
    output_size: Final[int]
    maxiter: Final[int]
    atol: Final[float]
    rtol: Final[float]
    _maxiter_limit: Final[int]  # MAXITER_LIMIT, where TorchScript can read it

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
    """Default hyperparameters; ``hidden_size=None`` means ⌊√input_size⌋. Never mutated.

    linodenet's keys ``activation_config``, ``output_size`` and ``rezero`` are accepted where
    their value changes nothing (a warning where it is ignored) and not kept."""

    def __init__(self, input_size: int, **HP: Any):
        super().__init__()
        input_size = _check_input_size(input_size, HP, "iResNetBlock")
        hp = _merge_hp(
            iResNetBlock.HP, HP, "iResNetBlock", input_size, _LINODENET_KEYS["iResNetBlock"]
        )
        hp["input_size"] = input_size
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
        hp["atol"], hp["rtol"] = float(hp["atol"]), float(hp["rtol"])
        if not isinstance(hp["bias"], bool):
            raise ValueError(f"iResNetBlock: bias must be True or False, got {hp['bias']!r}")
        self.HP = hp

        self.input_size = input_size
        self.output_size = input_size
        self.hidden_size = hidden
        self.maxiter = hp["maxiter"]
        self.atol = hp["atol"]
        self.rtol = hp["rtol"]
        self._maxiter_limit = MAXITER_LIMIT

        bias = hp["bias"]
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

    def log_abs_det_jacobian(self, x: Tensor) -> Tensor:
        """log|det ∂f/∂x| per sample, ``[..., n] → [...]``: exact, by the matrix determinant lemma
        (a hidden×hidden determinant, see :mod:`iresnet_onnx._density`); differentiable."""
        from ._density import forward_and_log_det

        check_width(x, self.input_size, "iResNetBlock.log_abs_det_jacobian")
        return forward_and_log_det(self, x)[1]

    @torch.jit.unused
    def frozen_forward(self, x: Tensor) -> Tensor:
        """``forward`` for eval mode without autograd: the cached A′ of each layer (exact, see
        :meth:`LinearContraction.frozen_effective_weight`) and plain functional calls, without a
        module call per layer. What :meth:`iResNet.forward` runs when no hook would be skipped."""
        h = x
        # the registries, not attribute access: nn.Module.__getattr__ costs ~1 µs a lookup, and
        # at batch 1 the whole block costs tens of µs
        for module in self._modules["bottleneck"]._modules.values():
            if isinstance(module, LinearContraction):
                h = functional.linear(
                    h, module.frozen_effective_weight(), module._parameters["bias"]
                )
            else:
                h = module.forward(h)  # an activation; hookless() vouched that no hook is skipped
        return x + h

    @torch.jit.unused
    def hookless(self) -> bool:
        """Whether no hook sits on this block or its bottleneck (the fast path may skip modules)."""
        bottleneck = self._modules["bottleneck"]
        if _hooked(self) or _hooked(bottleneck):
            return False
        return not any(_hooked(module) for module in bottleneck._modules.values())

    def _frozen_weights(self) -> list[Tensor]:
        """A′ of every LinearContraction in the bottleneck, without autograd."""
        weights: list[Tensor] = []
        for module in self.bottleneck:
            if isinstance(module, LinearContraction):
                if torch.jit.is_scripting():
                    weights.append(module.effective_weight().detach())
                else:
                    weights.append(module.frozen_effective_weight())
        return weights

    def _g(self, x: Tensor, weights: list[Tensor]) -> Tensor:
        """g(x) with the given A′ (one per LinearContraction, in order)."""
        index = 0
        for module in self.bottleneck:
            if isinstance(module, LinearContraction):
                x = functional.linear(x, weights[index], module.bias)
                index += 1
            else:
                x = module(x)
        return x

    def _fixed_point(
        self, y: Tensor, weights: list[Tensor], maxiter: int, atol: float, rtol: float
    ) -> tuple[Tensor, Tensor, Tensor]:
        """x = y − g(x) from x₀ = y, row by row, without autograd.

        Each row (sample) stops at its first step whose residual max(|x_{k+1} − x_k| −
        rtol·|x_k|) over the row is ≤ atol — or is NaN — while the others go on. A row's result
        never depends on the rest of its batch, and the work follows the rows: rows that are done
        leave the computation. Returns (x, the most steps any row took, the largest final row
        residual; NaN if a row blew up).
        """
        width = y.shape[-1]
        flat = y.reshape(-1, width)
        rows = flat.shape[0]
        if rows == 0:
            zero = torch.zeros((), dtype=y.dtype, device=y.device)
            return y, torch.tensor(0, device=y.device), zero
        x = torch.empty_like(flat)  # each row is written once, when it stops
        residuals = torch.empty(rows, dtype=y.dtype, device=y.device)
        index = torch.arange(rows, device=y.device)  # the rows still running
        y_active, x_active = flat, flat
        r_active = torch.full((rows,), math.inf, dtype=y.dtype, device=y.device)
        k = 0
        while k < maxiter:
            x_next = y_active - self._g(x_active, weights)
            # a max reduction per row: one ReduceMax node in the exported Loop
            r_active = torch.amax(torch.abs(x_next - x_active) - rtol * torch.abs(x_active), dim=-1)
            x_active = x_next
            k += 1
            # `>`: a NaN residual is not "running" either (as the ONNX Loop's Greater)
            running = r_active > atol
            if bool(running.all()):
                continue
            stopped = ~running
            x[index[stopped]] = x_active[stopped]
            residuals[index[stopped]] = r_active[stopped]
            index = index[running]
            if index.numel() == 0:
                break
            x_active, y_active, r_active = x_active[running], y_active[running], r_active[running]
        if index.numel() > 0:  # maxiter reached with rows still running
            x[index] = x_active
            residuals[index] = r_active
        return x.reshape(y.shape), torch.tensor(k, device=y.device), torch.amax(residuals)

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
        if not bool(torch.isfinite(y).all()):
            raise ValueError("iResNetBlock.inverse: the input contains NaN or Inf")
        return self._solve(y, maxiter, atol, rtol)

    def _solve(
        self, y: Tensor, maxiter: Optional[int], atol: Optional[float], rtol: Optional[float]
    ) -> tuple[Tensor, Tensor, Tensor]:
        """:meth:`inverse_with_stats` without the input checks (an iResNet checks once; a NaN
        that an earlier block produced flows on and shows in every later residual)."""
        maxiter_ = self.maxiter if maxiter is None else maxiter
        atol_ = self.atol if atol is None else atol
        rtol_ = self.rtol if rtol is None else rtol
        if not torch.jit.is_scripting():
            check_solver_options(maxiter, atol, rtol, "iResNetBlock.inverse")
        elif (
            not 1 <= maxiter_ <= self._maxiter_limit
            or not 0.0 <= atol_ < math.inf
            or not 0.0 <= rtol_ < math.inf
        ):
            # the same rule in what TorchScript compiles (its types already make maxiter an int)
            raise ValueError(
                f"iResNetBlock.inverse: need maxiter in 1…{self._maxiter_limit} and finite atol, "
                f"rtol ≥ 0; got maxiter={maxiter_}, atol={atol_}, rtol={rtol_}"
            )
        with torch.no_grad():
            x, k, residual = self._fixed_point(y, self._frozen_weights(), maxiter_, atol_, rtol_)
        if not torch.jit.is_scripting() and torch.is_grad_enabled():
            x = self._attach_implicit_gradient(x, y, maxiter_, atol_, rtol_)
        return x, k, residual

    @torch.jit.unused
    def _attach_implicit_gradient(
        self, x: Tensor, y: Tensor, maxiter: int, atol: float, rtol: float
    ) -> Tensor:
        """x* with autograd through the implicit function x* = y − g(x*) (DEQ-style).

        One differentiable evaluation F(z) = y − g(z) at z = x* connects y and θ; a hook on the
        output turns the incoming gradient u into w = (I + J_gᵀ)⁻¹u, found by w = u − J_gᵀw.
        """
        parameters = [p for p in self.parameters() if p.requires_grad]
        if not (y.requires_grad or parameters) or y.numel() == 0:
            return x
        z = x.detach().requires_grad_()
        g = self.bottleneck(z)
        connected = y - g
        # the value stays the solver's x* exactly; only the graph comes from F
        out = x.detach() + (connected - connected.detach())

        def implicit(u: Tensor) -> Tensor:
            w = u
            for _ in range(maxiter):
                (vjp,) = torch.autograd.grad(g, z, w, retain_graph=True)
                w_next = u - vjp
                done = bool((w_next - w).abs().max() <= atol + rtol * w.abs().max())
                w = w_next
                if done:
                    break
            return w

        out.register_hook(implicit)
        return out

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
        """Keep an inverse's step count and residual in the buffers; warn if it missed atol."""
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

    HP = {  # noqa: RUF012 (the seed's API: a class-level dict, copied, never mutated)
        "__name__": "iResNet",
        "__module__": __name__,
        "input_size": None,
        "nblocks": 5,
        "iResNetBlock": {k: v for k, v in iResNetBlock.HP.items() if k not in _META_KEYS},
    }
    """Default hyperparameters. Never mutated. linodenet's ``maxiter``, ``dropout``, ``bias`` (which
    linodenet never read) and ``rezero`` are accepted, with a warning where they are ignored."""

    NBLOCKS_LIMIT: Final = 10_000
    """More blocks than any flow uses: a bound before anything is built."""

    def __init__(self, input_size: int, **HP: Any):
        super().__init__()
        input_size = _check_input_size(input_size, HP, "iResNet")
        hp = _merge_hp(iResNet.HP, HP, "iResNet", input_size, _LINODENET_KEYS["iResNet"])
        hp["input_size"] = input_size
        nblocks = _check_positive_int(hp["nblocks"], "nblocks", "iResNet", self.NBLOCKS_LIMIT)
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
        """Signature: ``[..., n] → [..., n]``.

        In eval mode without autograd, blocks without hooks run :meth:`iResNetBlock.frozen_forward`
        (the cached A′, no module call per layer): the same numbers, a third of the overhead at
        batch 1. Everything else takes the modules.
        """
        check_width(x, self.input_size, "iResNet")
        if not torch.jit.is_scripting() and not self.training and not torch.is_grad_enabled():
            return self._frozen_forward(x)
        return self.blocks(x)

    @torch.jit.unused
    def _frozen_forward(self, x: Tensor) -> Tensor:
        if _global_hooks():
            return self.blocks(x)
        for block in self._modules["blocks"]._modules.values():
            x = block.frozen_forward(x) if block.hookless() else block(x)
        return x

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
        if not bool(torch.isfinite(y).all()):
            raise ValueError("iResNet.inverse: the input contains NaN or Inf")
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
