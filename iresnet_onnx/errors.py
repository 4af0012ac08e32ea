"""The package's typed errors and warnings (no torch, no onnx: the edge install imports them).

Whose fault it is decides the type, and the type decides the command line's exit code:

- the export is wrong — :class:`ParityError`, :class:`VerificationError`: exit 1;
- the input is wrong — every other :class:`IresnetOnnxError`: a bad argument or value
  (:class:`UsageError`), data file (:class:`DataError`), output path (:class:`OutputError`),
  checkpoint, ONNX file, missing runtime or extra: exit 2;
- anything else is a bug of this package: exit 3.

Each error that is the input's fault also derives from the builtin type a caller would expect
(``ValueError``, ``TypeError``, ``RuntimeError``, ``ImportError``), so ``except ValueError`` keeps
working.
"""

__all__ = [
    "CheckpointError",
    "ConvergenceWarning",
    "DataError",
    "ExportError",
    "InvalidModelError",
    "IresnetOnnxError",
    "MissingExtraError",
    "OutputError",
    "ParityError",
    "RuntimeUnavailableError",
    "TrainingError",
    "UnsupportedModelError",
    "UsageError",
    "UsageTypeError",
    "VerificationError",
]


class IresnetOnnxError(Exception):
    """Base class of every error this package raises on purpose."""


class UsageError(IresnetOnnxError, ValueError):
    """A value the caller passed is not accepted (a shape, an option, a hyperparameter, a solver
    setting); the message says what was given and what is expected."""


class UsageTypeError(UsageError, TypeError):
    """The caller passed an object of the wrong type (e.g. a model that is not an iResNet)."""


class DataError(UsageError):
    """A data file (``train``, ``score``, ``batch``) cannot be used as given; the message names the
    file and, where it is about one, the row."""


class OutputError(UsageError):
    """An output cannot be written where it was asked for (it is the input, a folder, on a full or
    read-only disk, …); nothing was left behind."""


class CheckpointError(IresnetOnnxError, ValueError):
    """A checkpoint is missing, corrupt, of another format or version, or carries code."""


class InvalidModelError(IresnetOnnxError, ValueError):
    """An ONNX file or export folder is missing, corrupt, not ONNX, or not an export of this
    package."""


class UnsupportedModelError(InvalidModelError):
    """A valid export that this runtime cannot run (e.g. a ``Loop`` on tract); the message says why
    and which export options avoid it."""


class ExportError(IresnetOnnxError):
    """An export produced a graph that fails ONNX's checker or cannot run on onnxruntime."""


class RuntimeUnavailableError(IresnetOnnxError, RuntimeError):
    """A requested runtime or device is not available here; the message lists what is."""


class MissingExtraError(IresnetOnnxError, ImportError):
    """A command or function needs an optional package that is not installed; the message names the
    extra that brings it."""


class TrainingError(IresnetOnnxError, ValueError):
    """Training produced a non-finite loss (bad data or learning rate); nothing was saved."""


class ParityError(IresnetOnnxError, AssertionError):
    """An exported graph disagrees with eager PyTorch beyond the documented tolerance."""


class VerificationError(IresnetOnnxError):
    """``verify``'s verdict: a file changed since export, or a graph missed its golden vectors or
    parity (the export is wrong, not the input)."""


class ConvergenceWarning(UserWarning):
    """A fixed-point inverse stopped before meeting its tolerance (at ``maxiter``, or because the
    iteration blew up to NaN/Inf)."""
