"""The fixed-point solver's settings (maxiter, atol, rtol): their limits and their one validator.

Shared by the eager model, the exporters and the runtimes, so it imports neither torch nor onnx.
"""

import math
import numbers
from typing import Any

from .errors import UsageError

__all__ = ["MAXITER_LIMIT", "SOLVER_SETTINGS", "check_solver_options", "maxiter_cap"]

MAXITER_LIMIT = 1_000_000
"""The most fixed-point steps any setting may ask for: a bound on the work of one call."""

SOLVER_SETTINGS = ("maxiter", "atol", "rtol")

MAXITER_CAP_FACTOR = 10


def maxiter_cap(maxiter: int) -> int:
    """The most steps per block an exported inverse runs, whatever maxiter a client passes it:
    ten times the model's default, at least 1000."""
    return max(1000, MAXITER_CAP_FACTOR * maxiter)


def check_solver_options(maxiter: Any, atol: Any, rtol: Any, owner: str) -> None:
    """A :class:`~iresnet_onnx.errors.UsageError` unless maxiter is an int in 1…MAXITER_LIMIT and atol, rtol are finite ≥ 0.

    ``None`` means "keep the default" and passes. The model's HP, ``inverse(...)`` overrides,
    export defaults and session inputs all use this one rule.
    """
    if maxiter is not None and (
        isinstance(maxiter, bool)
        or not isinstance(maxiter, numbers.Integral)
        or not 1 <= maxiter <= MAXITER_LIMIT
    ):
        raise UsageError(f"{owner}: maxiter must be an int in 1…{MAXITER_LIMIT:,}, got {maxiter!r}")
    for name, value in (("atol", atol), ("rtol", rtol)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise UsageError(f"{owner}: {name} must be a number, got {value!r}")
        if not math.isfinite(value) or value < 0:
            raise UsageError(f"{owner}: {name} must be finite and ≥ 0, got {value!r}")
