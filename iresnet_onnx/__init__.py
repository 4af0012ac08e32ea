"""iresnet-onnx: invertible residual networks in PyTorch, exported to ONNX with real Loop nodes.

The modelling and export side needs torch (``pip install 'iresnet-onnx[torch]'``); the runtime side
(:mod:`iresnet_onnx.runtimes`, ``iresnet-onnx verify --golden``, ``inspect``) does not. The names
below are imported on first use, so ``import iresnet_onnx.runtimes`` never loads torch.
"""

import importlib
from typing import Any

__version__ = "0.2.0"

_LAZY = {
    "LinearContraction": "_contraction",
    "SpectralNorm": "_spectral",
    "export": "_export",
    "iResNet": "_iresnet",
    "iResNetBlock": "_iresnet",
    "load_checkpoint": "_checkpoint",
    "save_checkpoint": "_checkpoint",
    "spectral_norm": "_spectral",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'iresnet_onnx' has no attribute {name!r}")
    try:
        value = getattr(importlib.import_module(f".{module}", __name__), name)
    except ModuleNotFoundError as error:
        if error.name not in ("torch", "onnx_ir", "onnxscript"):
            raise
        raise ImportError(
            f"iresnet_onnx.{name} needs {error.name}, which is not installed: the modelling and "
            "export side is the [torch] extra (pip install 'iresnet-onnx[torch]'; on a CPU-only "
            "machine install torch==2.13.0 first, not an unpinned torch)"
        ) from error
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
