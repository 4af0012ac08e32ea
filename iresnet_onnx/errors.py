"""The package's typed errors and warnings (no torch, no onnx: the edge install imports them).

The CLI maps ParityError (and a failed verification) to exit 1 and the rest to exit 2."""

__all__ = [
    "CheckpointError",
    "ConvergenceWarning",
    "ExportError",
    "InvalidModelError",
    "IresnetOnnxError",
    "ParityError",
    "RuntimeUnavailableError",
    "TrainingError",
    "UnsupportedModelError",
]


class IresnetOnnxError(Exception):
    """Base class of every error this package raises on purpose."""


class CheckpointError(IresnetOnnxError, ValueError):
    """A checkpoint is missing, corrupt, of another format or version, or carries code."""


class InvalidModelError(IresnetOnnxError, ValueError):
    """An ONNX file is missing, corrupt, not ONNX, or not an export of this package."""


class UnsupportedModelError(InvalidModelError):
    """A valid export that this runtime cannot run (e.g. a ``Loop`` on tract); the message says why
    and which export options avoid it."""


class ExportError(IresnetOnnxError):
    """An export produced a graph that fails ONNX's checker or cannot run on onnxruntime."""


class RuntimeUnavailableError(IresnetOnnxError, RuntimeError):
    """A requested runtime or device is not available here; the message lists what is."""


class TrainingError(IresnetOnnxError, ValueError):
    """Training produced a non-finite loss (bad data or learning rate); nothing was saved."""


class ParityError(IresnetOnnxError, AssertionError):
    """An exported graph disagrees with eager PyTorch beyond the documented tolerance."""


class ConvergenceWarning(UserWarning):
    """A fixed-point inverse stopped before meeting its tolerance (at ``maxiter``, or because the
    iteration blew up to NaN/Inf)."""
