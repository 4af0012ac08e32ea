"""iresnet-onnx: invertible residual networks in PyTorch, exported to ONNX with real Loop nodes.

The modelling and export side needs torch (``pip install 'iresnet-onnx[torch]'``); the runtime side
(:mod:`iresnet_onnx.runtimes`, :mod:`iresnet_onnx.parity`'s reports, ``score_file``, ``run_batch``,
``iresnet-onnx verify --golden``, ``inspect``) does not. The names below are imported on first
use, so ``import iresnet_onnx.runtimes`` never loads torch.

Public modules: :mod:`iresnet_onnx.runtimes` (load, available), :mod:`iresnet_onnx.parity`
(check), :mod:`iresnet_onnx.graphs` (the three graphs), :mod:`iresnet_onnx.errors`,
:mod:`iresnet_onnx.exporters`, :mod:`iresnet_onnx.jobs`, :mod:`iresnet_onnx.bench` and
:mod:`iresnet_onnx.cli`; the rest (``_name.py``) is implementation.
"""

import importlib
from typing import Any

__version__ = "0.2.0"

_LAZY = {
    # the modelling side (needs torch)
    "LinearContraction": "_contraction",
    "SpectralNorm": "_spectral",
    "spectral_norm": "_spectral",
    "iResNet": "_iresnet",
    "iResNetBlock": "_iresnet",
    "freeze": "_frozen",
    "load_checkpoint": "_checkpoint",
    "save_checkpoint": "_checkpoint",
    "train_flow": "_training",
    "export": "_export",
    "ExportResult": "_export",
    "onnx_translation_table": "exporters._translations",
    # the runtime side (torch-free)
    "score_file": "jobs",
    "run_batch": "jobs",
    "ConvergenceWarning": "errors",
    "IresnetOnnxError": "errors",
    "ParityError": "errors",
    "RuntimeUnavailableError": "errors",
    "UsageError": "errors",
}

__all__ = sorted(_LAZY)

_MODULES = ("bench", "cli", "errors", "exporters", "graphs", "jobs", "parity", "runtimes")
"""The public modules, reachable as attributes once used: ``iresnet_onnx.runtimes.load(…)``."""


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return importlib.import_module(f".{name}", __name__)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'iresnet_onnx' has no attribute {name!r}")
    try:
        value = getattr(importlib.import_module(f".{module}", __name__), name)
    except ModuleNotFoundError as error:
        if error.name not in ("torch", "onnx", "onnx_ir", "onnxscript"):
            raise
        from .errors import MissingExtraError

        raise MissingExtraError(
            f"iresnet_onnx.{name} needs {error.name}, which is not installed: the modelling and "
            "export side is the [torch] extra (pip install 'iresnet-onnx[torch]'; on a CPU-only "
            "machine install torch==2.13.0 first, not an unpinned torch)"
        ) from error
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *_MODULES})
