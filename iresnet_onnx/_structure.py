r"""The residual branch g of an iResNet block, and the activations it may use — stated once.

Everything that builds or reads a block's g takes its facts from here: the eager model and its
frozen form, the exact log-determinant (eager and ONNX), the exporters' spec and graph components,
and the benchmark's baseline. Torch-free and onnx-free: the formulas below are written against a
small :class:`Math` vocabulary that the torch side and the ONNX side each implement once.

Variants (n = input size, k = hidden size):

- ``lowrank``  g(x) = ϕ(W₁·W₂·x + …): linear n→k (W₂), linear k→n (W₁), then ϕ
- ``mlp``      g(x) = W₃ϕ(W₂ϕ(W₁x)): linear n→k, ϕ, linear k→k, ϕ, linear k→n

Their Jacobians factor through the bottleneck, which the matrix determinant lemma
det(I_n + A·B) = det(I_k + B·A) turns into a k×k determinant (:func:`lemma_matrix`).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import UsageError

__all__ = [
    "ACTIVATIONS",
    "VARIANTS",
    "Activation",
    "ActivationStep",
    "LinearStep",
    "Math",
    "lemma_matrix",
    "lipschitz_bound",
    "plan",
]


class Math(Protocol):
    """What the formulas here need of a tensor library (implemented for torch and for ONNX).

    ``u`` is a tensor ``[..., m]`` (a batch of rows), ``matrix`` a 2-D weight; ``c`` a Python float.
    """

    def where(self, condition: Any, a: Any, b: Any) -> Any: ...  # a, b: tensors or floats
    def greater(self, u: Any, c: float) -> Any: ...
    def less(self, u: Any, c: float) -> Any: ...
    def both(self, a: Any, b: Any) -> Any: ...  # logical and
    def exp(self, u: Any) -> Any: ...
    def sigmoid(self, u: Any) -> Any: ...
    def tanh(self, u: Any) -> Any: ...
    def abs(self, u: Any) -> Any: ...
    def ones_like(self, u: Any) -> Any: ...
    def add(self, a: Any, b: Any) -> Any: ...  # a or b may be a float
    def sub(self, a: Any, b: Any) -> Any: ...
    def mul(self, a: Any, b: Any) -> Any: ...
    def div(self, a: Any, b: Any) -> Any: ...
    def matmul(self, a: Any, b: Any) -> Any: ...
    def scale_columns(self, matrix: Any, d: Any) -> Any: ...  # matrix·diag(d) per row of d
    def scale_rows(self, matrix: Any, d: Any) -> Any: ...  # diag(d)·matrix per row of d
    def sandwich(self, left: Any, d: Any, right: Any) -> Any: ...  # left·diag(d)·right per row


@dataclass(frozen=True)
class Activation:
    """A ``torch.nn`` activation with Lipschitz constant ≤ 1 (default arguments), its ONNX op and
    its derivative.

    ``derivative(math, u)`` is ϕ′(u) with torch's conventions at the kinks (ReLU′(0) = 0,
    Hardtanh′(±1) = 0, LeakyReLU′(0) = slope, Softplus′ = 1 above its threshold), so the
    log-determinant equals what autograd gives."""

    name: str
    onnx_op: str
    derivative: Callable[[Math, Any], Any] = field(repr=False)
    onnx_attributes: tuple[tuple[str, float], ...] = ()
    onnx_bounds: tuple[float, ...] = ()
    """Extra constant inputs of the ONNX op (Clip's min and max)."""


def _sigmoid_derivative(m: Math, u: Any) -> Any:
    s = m.sigmoid(u)
    return m.mul(s, m.sub(1.0, s))


def _softsign_derivative(m: Math, u: Any) -> Any:
    root = m.add(m.abs(u), 1.0)
    return m.div(1.0, m.mul(root, root))


def _tanh_derivative(m: Math, u: Any) -> Any:
    t = m.tanh(u)
    return m.sub(1.0, m.mul(t, t))


ELU_ALPHA = (
    1.0  # torch's default for ELU and CELU (CELU's derivative below exp(u/α) is exp(u) at α = 1)
)
LEAKY_SLOPE = 0.01  # torch's default negative_slope
SOFTPLUS_THRESHOLD = 20.0  # torch's default: softplus(u) = u above it, so ϕ′ = 1 there

ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("CELU", "Celu", lambda m, u: m.where(m.greater(u, 0.0), 1.0, m.exp(u)),
                   (("alpha", ELU_ALPHA),)),
        Activation("ELU", "Elu", lambda m, u: m.where(m.greater(u, 0.0), 1.0, m.exp(u)),
                   (("alpha", ELU_ALPHA),)),
        Activation("Hardtanh", "Clip",
                   lambda m, u: m.where(m.both(m.greater(u, -1.0), m.less(u, 1.0)), 1.0, 0.0),
                   onnx_bounds=(-1.0, 1.0)),
        Activation("Identity", "Identity", lambda m, u: m.ones_like(u)),
        Activation("LeakyReLU", "LeakyRelu",
                   lambda m, u: m.where(m.greater(u, 0.0), 1.0, LEAKY_SLOPE),
                   (("alpha", LEAKY_SLOPE),)),
        Activation("ReLU", "Relu", lambda m, u: m.where(m.greater(u, 0.0), 1.0, 0.0)),
        Activation("ReLU6", "Clip",
                   lambda m, u: m.where(m.both(m.greater(u, 0.0), m.less(u, 6.0)), 1.0, 0.0),
                   onnx_bounds=(0.0, 6.0)),
        Activation("Sigmoid", "Sigmoid", _sigmoid_derivative),
        Activation("Softplus", "Softplus",
                   lambda m, u: m.where(m.greater(u, SOFTPLUS_THRESHOLD), 1.0, m.sigmoid(u))),
        Activation("Softsign", "Softsign", _softsign_derivative),
        Activation("Tanh", "Tanh", _tanh_derivative),
    )
}  # fmt: skip
"""The activations a block may use. SiLU, GELU, SELU, Mish, Hardswish and the like have a
Lipschitz constant above 1 and would break the contraction."""


@dataclass(frozen=True)
class LinearStep:
    """A LinearContraction of the bottleneck, ``in_size → out_size``."""

    in_size: int
    out_size: int
    bias: bool

    @property
    def tall(self) -> bool:
        """Whether A (out × in) has at least as many rows as columns (then it is its own tall
        form, the one the power iteration works on)."""
        return self.out_size >= self.in_size


@dataclass(frozen=True)
class ActivationStep:
    name: str


Step = LinearStep | ActivationStep

VARIANTS = ("lowrank", "mlp")


def plan(variant: str, n: int, hidden: int, activation: str, bias: bool) -> tuple[Step, ...]:
    """The steps of g in order (what ``block.bottleneck``, an ``nn.Sequential``, holds)."""
    act = ActivationStep(activation)
    if variant == "lowrank":
        return (LinearStep(n, hidden, bias), LinearStep(hidden, n, bias), act)
    if variant == "mlp":
        return (LinearStep(n, hidden, bias), act, LinearStep(hidden, hidden, bias), act,
                LinearStep(hidden, n, bias))  # fmt: skip
    raise UsageError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")


def lemma_matrix(
    variant: str, m: Math, weights: Sequence[Any], derivatives: Sequence[Any], n: int, hidden: int
) -> Any:
    """The small matrix S with det(I + J_g) = det(I + S), per row: ``[..., s, s]``, s = min(k, n).

    ``weights`` are the A′ (out × in) of the linear steps in order, ``derivatives`` ϕ′ at each
    activation's input. D = diag(ϕ′(u)):

    - lowrank, J_g = D W₁ W₂:          k ≤ n: W₂ D W₁ (k×k);   else D W₁W₂ (n×n)
    - mlp, J_g = W₃ D₂ W₂ D₁ W₁:         k ≤ n: (W₁W₃) D₂ · W₂ D₁ (k×k);   else W₃D₂ · W₂D₁W₁ (n×n)
    """
    if variant == "lowrank":
        w2, w1 = weights  # W₂: k×n (applied first), W₁: n×k
        (d,) = derivatives
        if hidden <= n:
            return m.sandwich(w2, d, w1)
        return m.scale_rows(m.matmul(w1, w2), d)
    w1, w2, w3 = weights
    d1, d2 = derivatives
    if hidden <= n:
        return m.matmul(m.scale_columns(m.matmul(w1, w3), d2), m.scale_columns(w2, d1))
    return m.matmul(m.scale_columns(w3, d2), m.matmul(m.scale_columns(w2, d1), w1))


def lipschitz_bound(
    variant: str,
    weights: Sequence[Any],
    norm: Callable[[Any], float],
    matmul: Callable[[Any, Any], Any],
) -> float:
    """An upper bound of Lip(g) from the A′ of the linear steps (``norm`` is the spectral norm):
    for lowrank ‖W₁W₂‖ (ϕ, elementwise and 1-Lipschitz, comes last); for mlp the product of the
    norms (activations sit between the layers)."""
    if variant == "lowrank":
        w2, w1 = weights
        return float(norm(matmul(w1, w2)))
    bound = 1.0
    for weight in weights:
        bound *= float(norm(weight))
    return bound
