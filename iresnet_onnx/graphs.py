"""The three graphs of an export, stated once: their names, files, inputs and outputs.

Everything that handles a graph by name — the exporters, the runtimes, golden vectors, ``score``,
``batch``, ``inspect``, the benchmarks and the command line's choices — reads this table. Torch-free
and onnx-free: the edge install imports it.
"""

from dataclasses import dataclass

from ._solver_settings import SOLVER_SETTINGS
from .errors import UsageError

__all__ = ["DENSITY", "FORWARD", "GRAPHS", "INVERSE", "Graph", "graph"]


@dataclass(frozen=True)
class Graph:
    """One graph of an export folder."""

    name: str
    input: str
    """The data input, ``[batch, n]``."""
    outputs: tuple[str, ...]
    """Every output, in the graph's order."""
    per_row: tuple[str, ...]
    """The outputs with one entry per input row (the rest, like ``iterations``, are per block)."""
    main: str
    """What ``Session.run`` returns, ``score`` and ``batch`` write."""
    vectors: tuple[str, ...]
    """The per-row outputs that hold n values per row (the rest hold one value per row)."""
    optional_inputs: tuple[str, ...] = ()
    """Inputs with a default in the graph (the inverse's solver settings, the model's own)."""

    @property
    def file(self) -> str:
        """The graph's file name in an export folder."""
        return f"{self.name}.onnx"

    def output_shape(self, output: str, rows: int | str, width: int, nblocks: int) -> list:
        """The shape of ``output`` for ``rows`` rows of width n: ``[rows, n]``, ``[rows]``, or
        ``[nblocks]`` for the per-block outputs."""
        if output not in self.per_row:
            return [nblocks]
        return [rows, width] if output in self.vectors else [rows]


FORWARD = Graph("forward", "x", ("y",), per_row=("y",), main="y", vectors=("y",))
INVERSE = Graph(
    "inverse",
    "y",
    ("x", "iterations", "residual"),
    per_row=("x",),
    main="x",
    vectors=("x",),
    optional_inputs=SOLVER_SETTINGS,
)
DENSITY = Graph(
    "density",
    "x",
    ("log_prob", "log_det", "z"),
    per_row=("log_prob", "log_det", "z"),
    main="log_prob",
    vectors=("z",),
)
GRAPHS = {graph.name: graph for graph in (FORWARD, INVERSE, DENSITY)}


def graph(name: str) -> Graph:
    """The graph called ``name``; :class:`~iresnet_onnx.errors.UsageError` listing the names
    otherwise."""
    try:
        return GRAPHS[name]
    except (KeyError, TypeError):
        raise UsageError(f"unknown graph {name!r}; the graphs are {', '.join(GRAPHS)}") from None
