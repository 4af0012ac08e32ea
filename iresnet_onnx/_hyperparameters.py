"""Hyperparameters of iResNetBlock and iResNet: their defaults, their checks, and what linodenet's
configs may pass.

HP are written into checkpoints and ONNX metadata as JSON, so they are plain data from the start:
numpy scalars become Python numbers and anything JSON cannot hold exactly is refused here, at
construction, rather than by the loader of a checkpoint later. The class-level default dicts are
never mutated: every model gets a merged deep copy.

linodenet (whose API this follows, with its known bugs fixed: shared class-level HP, a zeroed
residual in the non-convergence message, a ``print`` instead of a warning) passes keys this package
does not use; they are accepted where their value changes nothing (with a warning where it is
ignored) and refused where honouring them would change the model.
"""

import copy
import math
import numbers
import warnings
from typing import Any, Final

from ._solver_settings import check_solver_options
from ._structure import ACTIVATIONS, VARIANTS
from .errors import UsageError

__all__ = ["BLOCK_HP", "IRESNET_HP", "NBLOCKS_LIMIT", "block_hp", "iresnet_hp", "plain_hp"]

META_KEYS: Final = ("__name__", "__module__", "input_size")
"""Keys that describe the model rather than configure it."""

BLOCK_HP: Final = {
    "__name__": "iResNetBlock",
    "__module__": "iresnet_onnx",
    "input_size": None,
    "hidden_size": None,  # ⌊√input_size⌋
    "activation": "ReLU",
    "variant": "lowrank",
    "maxiter": 100,
    "atol": 1e-6,  # the seed's 1e-8 is below float32 rounding of x ≈ y − g(x) for |y| ≈ 1
    "rtol": 1e-5,
    "bias": True,
}
IRESNET_HP: Final = {
    "__name__": "iResNet",
    "__module__": "iresnet_onnx",
    "input_size": None,
    "nblocks": 5,
    "iResNetBlock": {k: v for k, v in BLOCK_HP.items() if k not in META_KEYS},
}
NBLOCKS_LIMIT: Final = 10_000
"""More blocks than any flow uses: a bound before anything is built."""
WIDTH_LIMIT: Final = 1 << 20
"""The widest input_size or hidden_size accepted."""
LAYER_LIMIT: Final = 1 << 28
"""The most weights one layer may hold (1 GiB of float32): a bound before anything is allocated
(a layer's cold-start power iteration would otherwise run for minutes, or the allocation fail)."""

_LINODENET_KEYS: Final = {
    "iResNetBlock": ("activation_config", "input_size", "output_size", "rezero"),
    "iResNet": ("maxiter", "dropout", "bias", "rezero"),
}
_LINODENET_IGNORED: Final = {"maxiter": 10, "dropout": None, "bias": True}
"""linodenet's iResNet-level keys that linodenet itself never read, with its defaults."""


def block_hp(input_size: Any, overrides: dict[str, Any]) -> dict[str, Any]:
    """The checked, resolved HP of an iResNetBlock (``hidden_size`` filled in)."""
    input_size = _check_input_size(input_size, overrides, "iResNetBlock")
    hp = _merge(BLOCK_HP, overrides, "iResNetBlock", input_size, _LINODENET_KEYS["iResNetBlock"])
    hp["input_size"] = input_size
    if hp["hidden_size"] is None:
        hp["hidden_size"] = max(1, math.isqrt(input_size))
    hidden = hp["hidden_size"]
    if isinstance(hidden, bool) or not isinstance(hidden, int) or not 1 <= hidden <= WIDTH_LIMIT:
        raise UsageError(
            f"iResNetBlock: hidden_size must be a positive int up to {WIDTH_LIMIT:,}, got {hidden!r}"
        )
    if input_size * hidden > LAYER_LIMIT:
        raise UsageError(
            f"iResNetBlock: input_size × hidden_size = {input_size * hidden:,} weights per layer; "
            f"at most {LAYER_LIMIT:,} are accepted"
        )
    if hp["variant"] not in VARIANTS:
        raise UsageError(
            f"iResNetBlock: unknown variant {hp['variant']!r}; choose one of {', '.join(VARIANTS)}"
        )
    _check_activation(hp["activation"])
    check_solver_options(hp["maxiter"], hp["atol"], hp["rtol"], "iResNetBlock")
    hp["atol"], hp["rtol"] = float(hp["atol"]), float(hp["rtol"])
    if not isinstance(hp["bias"], bool):
        raise UsageError(f"iResNetBlock: bias must be True or False, got {hp['bias']!r}")
    return hp


def iresnet_hp(input_size: Any, overrides: dict[str, Any]) -> dict[str, Any]:
    """The checked HP of an iResNet; its ``"iResNetBlock"`` entry resolved by :func:`block_hp`."""
    input_size = _check_input_size(input_size, overrides, "iResNet")
    hp = _merge(IRESNET_HP, overrides, "iResNet", input_size, _LINODENET_KEYS["iResNet"])
    hp["input_size"] = input_size
    nblocks = hp["nblocks"]
    if (
        isinstance(nblocks, bool)
        or not isinstance(nblocks, numbers.Integral)
        or not 1 <= nblocks <= NBLOCKS_LIMIT
    ):
        raise UsageError(f"iResNet: nblocks must be an int in 1…{NBLOCKS_LIMIT:,}, got {nblocks!r}")
    block = block_hp(input_size, hp["iResNetBlock"])
    hp["iResNetBlock"] = {k: v for k, v in block.items() if k not in META_KEYS}
    return hp


def plain_hp(value: Any, where: str = "HP") -> Any:
    """``value`` as plain JSON data: numpy scalars become Python numbers, tuples lists."""
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
            raise UsageError(f"{where} must be a finite number, got {value!r}")
        return number
    raise UsageError(f"{where}: {value!r} ({type(value).__name__}) is not plain JSON data")


def _check_activation(name: Any) -> None:
    if name in ACTIVATIONS:
        return
    import torch.nn  # only to tell "not allowed" from "does not exist"

    if isinstance(name, str) and isinstance(getattr(torch.nn, name, None), type):
        raise UsageError(
            f"activation {name!r} may have a Lipschitz constant above 1, so g would not be a "
            f"contraction; choose one of {', '.join(ACTIVATIONS)}"
        )
    raise UsageError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")


def _check_input_size(input_size: Any, hp: dict, owner: str) -> int:
    if (
        isinstance(input_size, bool)
        or not isinstance(input_size, numbers.Integral)
        or not 1 <= input_size <= WIDTH_LIMIT
    ):
        raise UsageError(
            f"{owner}: input_size must be a positive int up to {WIDTH_LIMIT:,}, got {input_size!r}"
        )
    if hp.get("input_size") not in (None, input_size):
        raise UsageError(f"{owner}: HP input_size={hp['input_size']} contradicts {input_size}")
    return int(input_size)


def _merge(
    defaults: dict, overrides: dict, owner: str, input_size: int, linodenet_keys: tuple = ()
) -> dict:
    """A deep copy of ``defaults`` updated with ``overrides`` (made plain JSON data).

    Unknown keys are a :class:`UsageError`; linodenet's keys are checked by
    :func:`_linodenet_key` and dropped, so a model's HP hold only what shapes it. The meta keys
    keep the defaults' values: a checkpoint of an older version may name the module the class
    lived in then.
    """
    merged = copy.deepcopy(defaults)
    for key, value in overrides.items():
        if key not in merged and key in linodenet_keys:
            _linodenet_key(owner, key, value, input_size)
            continue
        if key not in merged:
            known = ", ".join(k for k in defaults if not k.startswith("__"))
            raise UsageError(f"{owner}: unknown hyperparameter {key!r}; known: {known}")
        if key in ("__name__", "__module__"):
            continue
        if isinstance(merged[key], dict) and isinstance(value, dict):
            merged[key] = _merge(
                merged[key], value, f"{owner}[{key!r}]", input_size, _LINODENET_KEYS.get(key, ())
            )
        else:
            merged[key] = plain_hp(value, f"{owner}: {key}")
    return merged


def _linodenet_key(owner: str, key: str, value: Any, input_size: int) -> None:
    """Accept a linodenet key where its value changes nothing, warn where it is ignored, and
    refuse it where honouring it would change the model."""
    if key == "rezero":
        if value:
            raise UsageError(f"{owner}: rezero=True (linodenet's ReZero scaling) is not supported")
    elif key in ("input_size", "output_size"):
        if value is not None and value != input_size:
            raise UsageError(
                f"{owner}: {key} must be None or the model's input_size ({input_size}) in an "
                f"invertible block, got {value!r}"
            )
    elif key == "activation_config":
        # linodenet passes {"inplace": False}; other arguments (alpha, …) would change ϕ and its
        # Lipschitz constant, which the allow-list of activations vouches for
        if not isinstance(value, dict) or set(value) - {"inplace"}:
            raise UsageError(
                f"{owner}: activation_config may only hold 'inplace' (activations run with their "
                f"default arguments, whose Lipschitz constant is ≤ 1), got {value!r}"
            )
        if value.get("inplace"):
            warnings.warn(
                f"{owner}: activation_config inplace=True has no effect here", stacklevel=5
            )
    elif value != _LINODENET_IGNORED[key]:
        warnings.warn(
            f"{owner}: hyperparameter {key!r}={value!r} has no effect (linodenet ignores it too"
            + ("; set iResNetBlock={'maxiter': …} for the inverse)" if key == "maxiter" else ")"),
            stacklevel=5,
        )
