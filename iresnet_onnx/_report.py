"""The report of a parity check or a golden-vector verification: one row per comparison, with
the numbers, and the graphs a runtime could not run. Torch-free."""

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import runtimes as rt
from .errors import UnsupportedModelError

__all__ = ["ParityReport", "ParityRow", "load_or_note"]


@dataclass
class ParityRow:
    runtime: str
    check: str
    """What was compared: forward, inverse, capped, roundtrip, density, jacobian."""
    shape: list[int]
    max_abs: float
    max_rel: float
    tolerance: float
    passed: bool
    seconds: float
    iterations: list[int] | None = None
    eager_iterations: list[int] | None = None
    case: str | None = None
    """Where the expected values come from, when stored (a golden vector's folder)."""
    tensor: str | None = None
    """The output compared (``y``, ``x``, ``log_prob``)."""

    def __str__(self) -> str:
        where = f" {self.case}" if self.case else ""
        tensor = f" {self.tensor}" if self.tensor else ""
        text = (
            f"{self.runtime} {self.check}{where}{tensor} on {self.shape}: max|Δ| "
            f"{self.max_abs:.3g} (rel {self.max_rel:.3g}), tolerance {self.tolerance:.3g}"
        )
        if self.iterations is not None:
            text += f", steps {self.iterations} vs expected {self.eager_iterations}"
        return text


@dataclass
class ParityReport:
    export_dir: str
    dtype: str
    spectral_norm: str
    seed: int
    tolerances: dict[str, float]
    rows: list[ParityRow] = field(default_factory=list)
    unsupported: list[dict[str, str]] = field(default_factory=list)
    """Graphs a requested runtime cannot run: ``{"runtime", "graph", "reason"}`` — never a pass."""
    skipped: list[dict[str, str]] = field(default_factory=list)
    """The same for runtimes that were not requested (the default "every runtime here"):
    listed, not held against the export."""
    title: str = "parity"
    """What the report is: "parity" (against eager PyTorch) or "golden vectors"."""
    problems: list[str] = field(default_factory=list)
    """Findings that fail the report whatever the numbers: a transformed graph that computes below
    the export's precision, or that could not run a case."""

    @property
    def passed(self) -> bool:
        return (
            bool(self.rows)
            and all(row.passed for row in self.rows)
            and not self.unsupported
            and not self.problems
        )

    @property
    def failures(self) -> list[ParityRow]:
        return [row for row in self.rows if not row.passed]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}

    def summary(self) -> dict[str, dict[str, float]]:
        """Per runtime and check, the largest error and the smallest margin to the tolerance."""
        result: dict[str, dict[str, float]] = {}
        for row in self.rows:
            key = f"{row.runtime} {row.check}"
            entry = result.setdefault(key, {"max_abs": 0.0, "max_rel": 0.0, "worst_ratio": 0.0})
            entry["max_abs"] = max(entry["max_abs"], row.max_abs)
            entry["max_rel"] = max(entry["max_rel"], row.max_rel)
            entry["worst_ratio"] = max(entry["worst_ratio"], row.max_abs / row.tolerance)
        return result

    def table(self) -> str:
        header = ("runtime", "check", "shape", "max|Δ|", "rel", "tolerance", "steps", "ok")
        lines = [header]
        for row in self.rows:
            steps = "" if row.iterations is None else f"{row.iterations} vs {row.eager_iterations}"
            lines.append((
                row.runtime, row.check, "×".join(map(str, row.shape)), f"{row.max_abs:.2e}",
                f"{row.max_rel:.2e}", f"{row.tolerance:.1e}", steps, "yes" if row.passed else "NO",
            ))  # fmt: skip
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        rendered = [
            "  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines
        ]
        return "\n".join([rendered[0], "  ".join("-" * w for w in widths), *rendered[1:]])

    def __str__(self) -> str:
        if self.passed:
            verdict = "PASSED"
        else:
            verdict = f"FAILED ({len(self.failures)} rows, {len(self.unsupported)} unsupported" + (
                f", {len(self.problems)} problems)" if self.problems else ")"
            )
        lines = [
            f"{self.title} of {self.export_dir} ({self.dtype}, spectral norm {self.spectral_norm}): "
            f"{verdict}",
            self.table(),
        ]
        lines += [
            f"{kind}: {entry['runtime']} {entry['graph']}: {entry['reason']}"
            for kind, entries in (("unsupported", self.unsupported), ("skipped", self.skipped))
            for entry in entries
        ]
        lines += [f"problem: {problem}" for problem in self.problems]
        return "\n".join(lines)


def load_or_note(
    notes: list[dict[str, str]], name: str, path: Path, **options: Any
) -> rt.Session | None:
    """The graph on runtime ``name``, or None after noting why the runtime cannot run it."""
    try:
        return rt.load(path, *rt.parse_runtime(name), **options)
    except UnsupportedModelError as error:
        notes.append({"runtime": name, "graph": path.name, "reason": str(error)})
        return None
