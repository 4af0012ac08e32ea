"""iresnet-onnx: invertible residual networks in PyTorch, exported to ONNX with real Loop nodes."""

from .iresnet import iResNet, iResNetBlock
from .layers import LinearContraction
from .spectral import SpectralNorm, spectral_norm

__version__ = "0.1.0"

__all__ = ["LinearContraction", "SpectralNorm", "iResNet", "iResNetBlock", "spectral_norm"]
