"""The package's typed errors. The CLI maps ParityError to exit 1 and the rest to exit 2."""

__all__ = [
    "CheckpointError",
    "ExportError",
    "InvalidModelError",
    "IresnetOnnxError",
    "ParityError",
    "RuntimeUnavailableError",
]


class IresnetOnnxError(Exception):
    """Base class of every error this package raises on purpose."""


class CheckpointError(IresnetOnnxError, ValueError):
    """A checkpoint is missing, corrupt, of another format or version, or carries code."""


class InvalidModelError(IresnetOnnxError, ValueError):
    """An ONNX file is missing, corrupt, not ONNX, or not an export of this package."""


class ExportError(IresnetOnnxError):
    """An export produced a graph that fails ONNX's checker or cannot run on onnxruntime."""


class RuntimeUnavailableError(IresnetOnnxError, RuntimeError):
    """A requested runtime or device is not available here; the message lists what is."""


class ParityError(IresnetOnnxError, AssertionError):
    """An exported graph disagrees with eager PyTorch beyond the documented tolerance."""
