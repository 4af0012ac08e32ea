"""iresnet-onnx: invertible residual networks in PyTorch, exported to ONNX with real Loop nodes."""

__version__ = "0.1.0"

from .checkpoint import load_checkpoint, save_checkpoint
from .exporters import export
from .iresnet import iResNet, iResNetBlock
from .layers import LinearContraction
from .spectral import SpectralNorm, spectral_norm

__all__ = [
    "LinearContraction",
    "SpectralNorm",
    "export",
    "iResNet",
    "iResNetBlock",
    "load_checkpoint",
    "save_checkpoint",
    "spectral_norm",
]
