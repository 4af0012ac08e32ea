"""How to export: the options of :func:`iresnet_onnx.export`, checked once (torch-free)."""

import math
from dataclasses import dataclass

from ..errors import UsageError

__all__ = [
    "DEFAULT_OPSET",
    "EXPORTERS",
    "INVERSE_MODES",
    "SPECTRAL_NORM_MODES",
    "SUPPORTED_OPSETS",
    "ExportOptions",
]

EXPORTERS = ("iresnet_onnx", "torch")
SPECTRAL_NORM_MODES = ("loop", "folded")
INVERSE_MODES = ("loop", "fixed")
SUPPORTED_OPSETS = range(17, 22)
DEFAULT_OPSET = 18
STEPS_PER_CHECK_LIMIT = 64


@dataclass(frozen=True)
class ExportOptions:
    """How to export.

    ``spectral_norm``: "loop" computes σ in the graph from the raw weights by a power-iteration
    Loop; "folded" bakes A′ into the initializers. ``inverse``: "loop", a data-dependent fixed-point
    Loop; "fixed", a gated Scan whose step count per block is fixed at export from the contraction
    bound (for runtimes without Loop). ``functions``: keep the components as custom-domain ONNX
    functions (for reading in Netron) instead of plain standard-domain nodes.
    """

    opset: int = DEFAULT_OPSET
    spectral_norm: str = "loop"
    steps_per_check: int = 8
    """Fixed-point steps per Loop iteration of inverse.onnx (the convergence test runs every K);
    1 stops every row exactly where eager does (for parity work). ``export`` resolves its default,
    "auto", from the model's own step counts (:mod:`iresnet_onnx._cadence`)."""
    inverse: str = "loop"
    functions: bool = False
    input_radius: float | None = None
    """``inverse="fixed"``: the largest ‖y‖₂ the fixed step counts are sized for (default √n + 5,
    which N(0, I) latents exceed with probability < 1e-6)."""
    exporter: str = "iresnet_onnx"
    """Who writes the graphs: the package's own exporter, or ``torch.onnx.export`` with the
    custom ops' translations (the same components; a cross-check, and the route of models that
    contain an iResNet)."""

    def __post_init__(self) -> None:
        for name, value, choices in (
            ("spectral_norm", self.spectral_norm, SPECTRAL_NORM_MODES),
            ("inverse", self.inverse, INVERSE_MODES),
            ("exporter", self.exporter, EXPORTERS),
        ):
            if value not in choices:
                raise UsageError(
                    f"unknown {name} mode {value!r}; choose one of {', '.join(choices)}"
                )
        if not isinstance(self.functions, bool):
            raise UsageError(f"functions must be True or False, got {self.functions!r}")
        if self.input_radius is not None and not (
            isinstance(self.input_radius, (int, float))
            and not isinstance(self.input_radius, bool)
            and 0 < self.input_radius < math.inf
        ):
            raise UsageError(f"input_radius must be a finite number > 0, got {self.input_radius!r}")
        if isinstance(self.opset, bool) or not isinstance(self.opset, int):
            raise UsageError(f"opset must be an int, got {self.opset!r}")
        if self.opset not in SUPPORTED_OPSETS:
            raise UsageError(
                f"opset {self.opset} is not supported; choose {SUPPORTED_OPSETS.start}–"
                f"{SUPPORTED_OPSETS.stop - 1}"
            )
        if (
            isinstance(self.steps_per_check, bool)
            or not isinstance(self.steps_per_check, int)
            or not 1 <= self.steps_per_check <= STEPS_PER_CHECK_LIMIT
        ):
            raise UsageError(
                f"steps_per_check must be an int in 1–{STEPS_PER_CHECK_LIMIT}, got "
                f"{self.steps_per_check!r}"
            )
