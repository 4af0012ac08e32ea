"""Save and load a model with its hyperparameters; loading never executes code.

The file is a ``torch.save`` of plain data: a format tag and version, the model class, the HP as JSON
and the state_dict. ``torch.load(weights_only=True)`` refuses anything but tensors and containers,
so a pickle that carries code is rejected instead of run. Before a model is built, its HP are checked
against the shapes in the state_dict (a shape-only model on the meta device costs no memory), so a
small forged file cannot make the loader allocate gigabytes or iterate for seconds; after loading,
the weights and buffers must describe an invertible model. A checkpoint is written atomically.
"""

import io
import json
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from ._atomic import atomic_file
from ._iresnet import check_invertible, iResNet, iResNetBlock
from .errors import CheckpointError, UsageTypeError

__all__ = ["FORMAT", "VERSION", "load_checkpoint", "save_checkpoint"]

FORMAT = "iresnet-onnx-checkpoint"
VERSION = 1
_CLASSES = {"iResNet": iResNet, "iResNetBlock": iResNetBlock}
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def save_checkpoint(model: iResNet | iResNetBlock, path: str | Path) -> Path:
    """Write ``model`` (an iResNet or iResNetBlock) with its HP to ``path``, atomically.

    A model that the loader would refuse (NaN weights, ``c`` outside (0, 1)) is a ``ValueError``
    here: a checkpoint that was written always loads.
    """
    kind = type(model).__name__
    if kind not in _CLASSES:
        raise UsageTypeError(f"save_checkpoint takes an iResNet or iResNetBlock, got {kind}")
    check_invertible(model, f"save_checkpoint({kind})")
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "class": kind,
        "hp": json.dumps(model.HP, sort_keys=True),  # plain data: the constructors made it so
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    path = Path(path)
    buffer = io.BytesIO()  # torch.save to a full disk raises RuntimeError; a write, OSError
    torch.save(payload, buffer)
    with atomic_file(path) as tmp:
        tmp.write_bytes(buffer.getvalue())
    return path


def load_checkpoint(path: str | Path) -> iResNet | iResNetBlock:
    """Rebuild the model saved at ``path``, in eval mode. Any problem is a :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # torch's message goes on to advise weights_only=False, which would run the file's code:
        # keep only its reason
        reasons = [line.strip() for line in str(error).splitlines()
                   if "WeightsUnpickler error" in line or "Unsupported" in line]  # fmt: skip
        detail = f": {reasons[0].split('. ')[0]}" if reasons else ""  # the reason, not the advice
        raise CheckpointError(
            f"checkpoint {path}: refused to unpickle: it is corrupt or holds objects other than "
            f"tensors and plain data (possibly code){detail}"
        ) from error
    except Exception as error:  # torch.load raises many types (IndexError, KeyError, …) for garbage
        raise CheckpointError(
            f"checkpoint {path}: not a readable torch file ({error!r})"
        ) from error
    return _model_from_payload(payload, path)


def _model_from_payload(payload: Any, path: Path) -> iResNet | iResNetBlock:
    def fail(reason: str) -> CheckpointError:
        return CheckpointError(f"checkpoint {path}: {reason}")

    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise fail(f"not an {FORMAT} file")
    if payload.get("version") != VERSION:
        raise fail(f"format version {payload.get('version')!r}, this package reads {VERSION}")
    name = payload.get("class")
    cls = _CLASSES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise fail(f"unknown model class {payload.get('class')!r}")
    dtype = _DTYPES.get(payload.get("dtype")) if isinstance(payload.get("dtype"), str) else None
    if dtype is None:
        raise fail(f"dtype {payload.get('dtype')!r}; expected one of {', '.join(_DTYPES)}")
    try:
        hp = json.loads(payload["hp"])
    except (KeyError, TypeError, json.JSONDecodeError) as error:
        raise fail(f"no readable HP ({error!r})") from error
    state = payload.get("state_dict")
    if not isinstance(hp, dict):
        raise fail(f"HP must be a JSON object, got {type(hp).__name__}")
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise fail("no state_dict of named tensors")
    for key, tensor in state.items():
        if tensor.dtype != dtype:
            raise fail(f"state_dict tensor {key} is {tensor.dtype}, the checkpoint says {dtype}")

    _check_shapes(cls, hp, state, fail)
    try:
        model = cls(**hp).to(dtype)
        model.load_state_dict(state)
        check_invertible(model, "the model")
    except (TypeError, ValueError, RuntimeError) as error:
        raise fail(str(error).splitlines()[0]) from error
    return model.eval()


def _check_shapes(cls: type, hp: dict, state: dict[str, torch.Tensor], fail: Any) -> None:
    """The HP must describe exactly the tensors of ``state``, checked before a real model exists."""
    if cls is iResNet:
        blocks = {int(m.group(1)) for key in state if (m := re.match(r"blocks\.(\d+)\.", key))}
        if hp.get("nblocks") != len(blocks):
            raise fail(
                f"HP nblocks={hp.get('nblocks')!r}, but the state_dict holds {len(blocks)} blocks"
            )
    try:
        with torch.device("meta"):
            skeleton = cls(**hp)
    except (TypeError, ValueError) as error:
        raise fail(f"HP do not describe a model: {str(error).splitlines()[0]}") from error
    expected = {key: tuple(value.shape) for key, value in skeleton.state_dict().items()}
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    if missing or unexpected:
        raise fail(
            f"state_dict does not match its HP (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    for key, shape in expected.items():
        if tuple(state[key].shape) != shape:
            raise fail(
                f"state_dict tensor {key} has shape {list(state[key].shape)}, its HP give "
                f"{list(shape)}"
            )
