"""Save and load a model with its hyperparameters; loading never executes code.

The file is a ``torch.save`` of plain data: a format tag and version, the model class, the HP as JSON
and the state_dict. ``torch.load(weights_only=True)`` refuses anything but tensors and containers,
so a pickle that carries code is rejected instead of run.
"""

import json
import pickle
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError
from .iresnet import iResNet, iResNetBlock

__all__ = ["FORMAT", "VERSION", "load_checkpoint", "save_checkpoint"]

FORMAT = "iresnet-onnx-checkpoint"
VERSION = 1
_CLASSES = {"iResNet": iResNet, "iResNetBlock": iResNetBlock}
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def save_checkpoint(model: iResNet | iResNetBlock, path: str | Path) -> Path:
    """Write ``model`` (an iResNet or iResNetBlock) with its HP to ``path``."""
    kind = type(model).__name__
    if kind not in _CLASSES:
        raise TypeError(f"save_checkpoint takes an iResNet or iResNetBlock, got {kind}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "class": kind,
        "hp": json.dumps(model.HP, sort_keys=True, default=str),
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    torch.save(payload, path)
    return path


def load_checkpoint(path: str | Path) -> iResNet | iResNetBlock:
    """Rebuild the model saved at ``path``, in eval mode. Any problem is a :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"checkpoint {path}: refused to unpickle: it is corrupt or holds objects other than "
            f"tensors and plain data (possibly code): {str(error).splitlines()[0]}"
        ) from error
    except Exception as error:  # torch.load raises many types (IndexError, KeyError, …) for garbage
        raise CheckpointError(
            f"checkpoint {path}: not a readable torch file ({error!r})"
        ) from error
    return _model_from_payload(payload, path)


def _model_from_payload(payload: Any, path: Path) -> iResNet | iResNetBlock:
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path}: not an {FORMAT} file")
    if payload.get("version") != VERSION:
        raise CheckpointError(
            f"checkpoint {path}: format version {payload.get('version')!r}, this package reads {VERSION}"
        )
    name = payload.get("class")
    cls = _CLASSES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise CheckpointError(f"checkpoint {path}: unknown model class {payload.get('class')!r}")
    try:
        hp = json.loads(payload["hp"])
        model = cls(**hp)
        dtype = _DTYPES[payload.get("dtype", "float32")]
        model.to(dtype)
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as error:
        raise CheckpointError(f"checkpoint {path}: does not match its model ({error})") from error
    return model.eval()
