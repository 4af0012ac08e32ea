"""What to export: a framework-free description of a model's tensors (:class:`ModelSpec`), read
from an iResNet or iResNetBlock in eval-mode semantics."""

import copy
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._contraction import LinearContraction
from .._iresnet import check_invertible, iResNet, iResNetBlock
from .._solver_settings import check_solver_options, maxiter_cap
from .._spectral import start_vector
from .._structure import Step, lipschitz_bound, plan
from ..errors import UsageError, UsageTypeError

__all__ = ["LayerSpec", "ModelSpec", "fixed_steps", "model_spec", "with_solver_defaults"]

_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}


@dataclass(frozen=True)
class LayerSpec:
    """One LinearContraction: its raw tensors (state_dict names) and its effective weight A′."""

    name: str
    weight: np.ndarray
    bias: np.ndarray | None
    power_vector: np.ndarray
    c: float
    effective_weight: np.ndarray

    @property
    def tall(self) -> bool:
        """Whether A has at least as many rows as columns (then A is its own tall form)."""
        out_size, in_size = self.weight.shape
        return out_size >= in_size

    def tall_form(self, matrix: np.ndarray) -> np.ndarray:
        return matrix if self.tall else matrix.T

    @property
    def tall_shape(self) -> tuple[int, int]:
        return self.tall_form(self.weight).shape


@dataclass(frozen=True)
class ModelSpec:
    """A framework-free description of an iResNet (or one block) for the graph builders."""

    kind: str
    input_size: int
    dtype: np.dtype
    blocks: tuple[tuple[LayerSpec, ...], ...]
    steps: tuple[Step, ...]
    """The layer plan of every block's g (:func:`iresnet_onnx._structure.plan`)."""
    variant: str
    hidden_size: int
    maxiter: int
    atol: float
    rtol: float
    power_iteration: dict[str, Any]
    """The layers' shared power-iteration stopping rule: atol, rtol, maxiter."""
    hp: dict[str, Any]
    lipschitz: tuple[float, ...]
    """Per block, an upper bound of Lip(g) (float64, from the exact ‖A′‖ of its layers)."""
    g_at_zero: tuple[float, ...]
    """Per block, ‖g(0)‖₂: with Lip(g), it bounds ‖g(y)‖ for any y."""

    @property
    def maxiter_cap(self) -> int:
        """The most steps a client may ask of inverse.onnx per block (maxiter is clipped to it)."""
        return maxiter_cap(self.maxiter)

    @property
    def nblocks(self) -> int:
        return len(self.blocks)

    @property
    def layers(self) -> list[LayerSpec]:
        return [layer for block in self.blocks for layer in block]

    def hp_json(self) -> str:
        return json.dumps(self.hp, sort_keys=True)


def _plan(block: iResNetBlock) -> tuple[Step, ...]:
    hp = block.HP
    return plan(hp["variant"], block.input_size, block.hidden_size, hp["activation"], hp["bias"])


def fixed_steps(spec: ModelSpec, input_radius: float | None = None) -> tuple[int, ...]:
    """Per block, the fixed-point steps that reach ``atol`` for every input with ‖y‖₂ ≤ R.

    Banach: with L = Lip(g), the k-th change ‖x_k − x_{k−1}‖ ≤ L^{k−1}·‖x₁ − x₀‖ = L^{k−1}·‖g(y)‖,
    and ‖g(y)‖ ≤ ‖g(0)‖ + L·‖y‖. The inverse's test is elementwise (max |Δx| ≤ atol + rtol|x|),
    which the 2-norm bound implies, so k = 1 + ⌈log(atol / D) / log L⌉ steps suffice, with
    D = ‖g(0)‖ + L·R. Blocks are inverted last to first, and x = y − g(x) gives
    ‖x‖ ≤ (‖y‖ + ‖g(0)‖) / (1 − L): the radius grows from block to block. Capped at maxiter.
    """
    radius = input_radius if input_radius is not None else math.sqrt(spec.input_size) + 5.0
    steps = [0] * spec.nblocks
    for index in reversed(range(spec.nblocks)):
        lip, g0 = spec.lipschitz[index], spec.g_at_zero[index]
        distance = g0 + lip * radius
        if distance <= spec.atol:
            needed = 1
        elif lip <= 0.0:
            needed = 2  # g is constant: x₁ is exact, step 2 sees a zero change
        else:
            needed = 1 + math.ceil(math.log(spec.atol / distance) / math.log(lip))
        steps[index] = max(1, min(needed, spec.maxiter))
        radius = (radius + g0) / (1.0 - lip)
    return tuple(steps)


def _block_bounds(block: iResNetBlock) -> tuple[float, float]:
    """(upper bound of Lip(g), ‖g(0)‖₂) of one block, in float64."""
    weights = [
        module.effective_weight().double()
        for module in block.bottleneck
        if isinstance(module, LinearContraction)
    ]
    lipschitz = lipschitz_bound(
        block.HP["variant"], weights, lambda w: torch.linalg.matrix_norm(w, 2), torch.matmul
    )
    zero = torch.zeros(1, block.input_size, dtype=next(block.parameters()).dtype)
    g0 = torch.linalg.vector_norm(block.bottleneck(zero).double())
    return lipschitz, float(g0)


def _layer(prefix: str, layer: LinearContraction, dtype: type) -> LayerSpec:
    def array(tensor: torch.Tensor) -> np.ndarray:
        return tensor.detach().cpu().numpy().astype(dtype, copy=True)

    return LayerSpec(
        name=prefix,
        weight=array(layer.weight),
        bias=None if layer.bias is None else array(layer.bias),
        # the vector eager starts from: a zero or non-finite warm start means the cold start
        power_vector=array(start_vector(layer.weight, layer.power_vector)),
        c=float(layer.c),
        effective_weight=array(layer.effective_weight()),
    )


def model_spec(model: Any) -> ModelSpec:
    """Read an ``iResNet`` or ``iResNetBlock`` into a :class:`ModelSpec` (eval-mode semantics).

    The model's mode is restored afterwards; nothing but the ``spectral_norm`` buffers (σ of the
    current weights) is written.
    """
    blocks = blocks_of(model)
    check_invertible(model, "export")  # a NaN weight or c = 5 is the model's fault: say so
    kind = type(model).__name__
    prefixes = [f"blocks.{i}." for i in range(len(blocks))] if kind == "iResNet" else [""]
    parameter = next(model.parameters())
    if parameter.dtype not in _DTYPES:
        raise UsageError(f"export supports float32 and float64 models, got {parameter.dtype}")
    dtype = _DTYPES[parameter.dtype]
    solver = {(b.maxiter, b.atol, b.rtol) for b in blocks}
    if len(solver) != 1:
        raise UsageError(f"all blocks must share maxiter/atol/rtol to export, got {sorted(solver)}")
    ((maxiter, atol, rtol),) = solver
    largest = float(np.finfo(dtype).max)
    for name, value in (("atol", atol), ("rtol", rtol)):
        if value > largest:
            raise UsageError(
                f"export: {name}={value:g} overflows the model's {np.dtype(dtype).name} "
                f"(largest {largest:.3g})"
            )
    steps = {_plan(b) for b in blocks}
    if len(steps) != 1:
        raise UsageError("all blocks must have the same bottleneck structure to export")
    # one SpectralNorm function serves every layer, so the layers must share its stopping rule
    power = {
        (m.power_atol, m.power_rtol, m.power_maxiter)
        for b in blocks
        for m in b.bottleneck
        if isinstance(m, LinearContraction)
    }
    if len(power) != 1:
        raise UsageError(
            f"all layers must share one power-iteration rule to export, got {sorted(power)}"
        )
    ((power_atol, power_rtol, power_maxiter),) = power

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            layer_specs = tuple(
                tuple(
                    _layer(f"{prefix}bottleneck.{index}", module, dtype)
                    for index, module in enumerate(block.bottleneck)
                    if isinstance(module, LinearContraction)
                )
                for prefix, block in zip(prefixes, blocks)
            )
            bounds = [_block_bounds(block) for block in blocks]
    finally:
        model.train(was_training)
    return ModelSpec(
        kind=kind,
        input_size=model.input_size,
        dtype=np.dtype(dtype),
        blocks=layer_specs,
        steps=steps.pop(),
        variant=blocks[0].HP["variant"],
        hidden_size=blocks[0].hidden_size,
        maxiter=maxiter,
        atol=atol,
        rtol=rtol,
        power_iteration={"atol": power_atol, "rtol": power_rtol, "maxiter": power_maxiter},
        hp=_jsonable(model.HP),
        lipschitz=tuple(lip for lip, _ in bounds),
        g_at_zero=tuple(g0 for _, g0 in bounds),
    )


def blocks_of(model: Any) -> list[iResNetBlock]:
    """The blocks of an iResNet, or [block]; ``TypeError`` for anything else."""
    if isinstance(model, iResNet):
        return list(model.blocks)
    if isinstance(model, iResNetBlock):
        return [model]
    raise UsageTypeError(
        f"export takes an iresnet_onnx.iResNet or iResNetBlock, got {type(model).__name__}"
    )


def _jsonable(hp: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(hp, default=str))


def with_solver_defaults(
    model: Any, *, maxiter: int | None, atol: float | None, rtol: float | None
) -> Any:
    """A copy of ``model`` whose blocks (and HP) use these inverse-solver defaults."""
    blocks_of(model)  # the type check, before copying
    model = copy.deepcopy(model)
    blocks = blocks_of(model)
    first = blocks[0]
    values = {
        "maxiter": first.maxiter if maxiter is None else maxiter,
        "atol": first.atol if atol is None else atol,
        "rtol": first.rtol if rtol is None else rtol,
    }
    check_solver_options(values["maxiter"], values["atol"], values["rtol"], "export")
    for block in blocks:
        block.maxiter, block.atol, block.rtol = (
            values["maxiter"],
            float(values["atol"]),
            float(values["rtol"]),
        )
        block.HP.update(values)
    if isinstance(model, iResNet):
        model.HP["iResNetBlock"].update(values)
    return model
