"""A thin layer over ``onnx_ir``'s tape for writing ONNX graphs as Python over ONNX ops.

``ops.Gemm(x, w, b, transB=1)`` records a node and returns its output value, much like onnxscript's
``op.Gemm``; unlike ``@script`` functions, the graph's structure can depend on the model (activation,
variant, number of layers) and every value gets the types that ``onnx.checker``'s full check wants.
Reductions are emitted for the target opset (axes became an input in opset 18; ReduceSum's in 13).

A :class:`Component` (SpectralNorm, Bottleneck, BlockInverse, …) is a named piece of graph written
once as a Python function. ``ops.invoke(component, …)`` either calls it as a custom-domain ONNX
function (``functions=True``, for reading in Netron) or, by default, writes its nodes inline as
plain standard-domain nodes — what every runtime loads. Inline, every node's name says where it
comes from: ``blocks.3/BlockInverse/fixed_point/Bottleneck/Gemm_41``.
"""

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx_ir as ir

DOMAIN = "iresnet_onnx"
"""The domain of this package's ONNX functions (``functions=True`` exports only)."""

INT64 = ir.DataType.INT64
BOOL = ir.DataType.BOOL
Shape = Sequence[int | str | None] | None


def typed_value(name: str, dtype: ir.DataType, shape: Shape) -> ir.Value:
    """A named value with its element type and (optionally) its shape."""
    return ir.Value(
        name=name, type=ir.TensorType(dtype), shape=None if shape is None else ir.Shape(shape)
    )


@dataclass(frozen=True)
class Component:
    """A named piece of graph: ``body(ops, *inputs) -> value(s)``, emitted inline or as a function."""

    name: str
    inputs: tuple[str, ...]
    body: Callable[..., Any]
    doc: str
    outputs: int = 1


class Ops:
    """Records ONNX nodes for one graph, function body or Loop body: ``ops.<OpType>(*in, **attrs)``.

    Views made by :meth:`scoped` share the tape and add to the name prefix; Loop and function bodies
    get their own tape. All of them share one counter (unique names) and one function registry.
    """

    def __init__(
        self,
        opset: int,
        dtype: ir.DataType,
        *,
        functions: bool = False,
        prefix: str = "",
        tape: ir.tape.Tape | None = None,
        counter: Any = None,
        registry: dict[str, ir.Function] | None = None,
    ):
        self.opset = opset
        self.dtype = dtype
        self.functions = functions
        self.prefix = prefix
        self.tape = tape if tape is not None else ir.tape.Tape()
        self._counter = counter if counter is not None else itertools.count(1)
        self.registry = registry if registry is not None else {}

    def _view(self, prefix: str, tape: ir.tape.Tape | None = None) -> "Ops":
        return Ops(
            self.opset, self.dtype, functions=self.functions, prefix=prefix, tape=tape or self.tape,
            counter=self._counter, registry=self.registry,
        )  # fmt: skip

    def scoped(self, scope: str) -> "Ops":
        """The same graph, with ``scope/`` added to the names of the nodes written through it."""
        return self._view(f"{self.prefix}{scope}/")

    def _name(self, hint: str) -> str:
        return f"{self.prefix}{hint}_{next(self._counter)}"

    def __getattr__(self, op_type: str) -> Callable[..., ir.Value]:
        if not op_type[:1].isupper():
            raise AttributeError(op_type)
        return lambda *inputs, **attributes: self.op(op_type, *inputs, **attributes)

    def op(self, op_type: str, *inputs: ir.Value | None, **attributes: Any) -> ir.Value:
        (value,) = self.op_multi(op_type, *inputs, outputs=1, **attributes)
        return value

    def op_multi(
        self,
        op_type: str,
        *inputs: ir.Value | None,
        outputs: int,
        domain: str = "",
        **attributes: Any,
    ) -> Sequence[ir.Value]:
        values = self.tape.op_multi_out(
            op_type, list(inputs), attributes or None, num_outputs=outputs, domain=domain
        )
        name = self._name(op_type)
        values[0].producer().name = name
        for index, value in enumerate(values):
            value.name = name if outputs == 1 else f"{name}.{index}"
        return values

    def const(self, value: Any, dtype: ir.DataType | None = None) -> ir.Value:
        """A ``Constant`` node; float values take the graph's dtype unless ``dtype`` says otherwise."""
        array = np.asarray(value)
        if dtype is None:
            dtype = self.dtype if array.dtype.kind == "f" else ir.DataType.from_numpy(array.dtype)
        tensor = ir.tensor(array.astype(dtype.numpy()), name=self._name("value"))
        value = self.op("Constant", value=tensor)
        value.type, value.shape = ir.TensorType(dtype), ir.Shape(array.shape)
        return value

    def reduce(
        self, op_type: str, x: ir.Value, axes: Sequence[int] | None, keepdims: int
    ) -> ir.Value:
        """``ReduceMax``/``ReduceL2``/… over ``axes`` (all axes when None), for any opset."""
        if axes is None:
            return self.op(op_type, x, keepdims=keepdims)
        # axes became an input in opset 18, for ReduceSum already in 13
        if self.opset >= (13 if op_type == "ReduceSum" else 18):
            return self.op(op_type, x, self.const(list(axes), INT64), keepdims=keepdims)
        return self.op(op_type, x, axes=list(axes), keepdims=keepdims)

    def invoke(self, component: Component, *inputs: ir.Value | None, scope: str = "") -> Any:
        """``component`` applied to ``inputs``: a function call node, or its nodes inline under
        ``scope/component.name/``. One value, or a tuple of ``component.outputs`` values."""
        where = f"{scope}/" if scope else ""
        if self.functions:
            function = self.registry.get(component.name)
            if function is None:
                function = self.registry[component.name] = self._function(component)
            values = self.tape.op_multi_out(
                component.name, list(inputs), None, num_outputs=component.outputs, domain=DOMAIN
            )
            node_name = self._name(f"{where}{component.name}")
            values[0].producer().name = node_name
            for index, value in enumerate(values):
                value.name = f"{node_name}.{index}"
            return values[0] if component.outputs == 1 else tuple(values)
        result = component.body(self._view(f"{self.prefix}{where}{component.name}/"), *inputs)
        return result

    def _function(self, component: Component) -> ir.Function:
        body_ops = Ops(self.opset, self.dtype, functions=True, registry=self.registry)
        parameters = [ir.Value(name=name) for name in component.inputs]
        result = component.body(body_ops, *parameters)
        outputs = [result] if isinstance(result, ir.Value) else list(result)
        graph = ir.Graph(
            parameters,
            outputs,
            nodes=body_ops.tape.nodes,
            opset_imports={"": self.opset, DOMAIN: 1},
            name=component.name,
            doc_string=component.doc,
        )
        return ir.Function(DOMAIN, component.name, graph=graph, attributes=[])

    def loop(
        self,
        name: str,
        trip_count: ir.Value | None,
        condition: ir.Value | None,
        state: dict[str, tuple[ir.Value, ir.DataType, Shape]],
        body: Callable[..., tuple[ir.Value, Sequence[ir.Value]]],
    ) -> Sequence[ir.Value]:
        """A ``Loop`` node; ``body(ops, *state) -> (keep_going, new_state)`` writes one iteration.

        ``state`` maps each loop-carried value's name to (initial value, type, shape); the body's
        inputs and outputs are declared with those types and shapes (IREE, for one, imports an
        undeclared one as a scalar). The body may use values of the enclosing graph.
        Returns the final state, in the order of ``state``.
        """
        inner = self._view(f"{self.prefix}{name}/", tape=ir.tape.Tape())
        state = self._typed_only(state)
        iteration = typed_value(f"{inner.prefix}iteration", INT64, [])
        condition_in = typed_value(f"{inner.prefix}condition_in", BOOL, [])
        state_in = [
            typed_value(f"{inner.prefix}{key}_in", dtype, shape)
            for key, (_, dtype, shape) in state.items()
        ]
        keep_going, state_out = body(inner, *state_in)
        _declare(keep_going, BOOL, [])
        for value, (_, dtype, shape) in zip(state_out, state.values()):
            _declare(value, dtype, shape)
        graph = ir.Graph(
            [iteration, condition_in, *state_in],
            [keep_going, *state_out],
            nodes=inner.tape.nodes,
            name=name,
        )
        initial = [value for value, _, _ in state.values()]
        values = self.op_multi(
            "Loop", trip_count, condition, *initial, outputs=len(state), body=graph
        )
        for value, (_, dtype, shape) in zip(values, state.values()):
            _declare(value, dtype, shape)
        return values

    def if_(
        self,
        name: str,
        condition: ir.Value,
        then_body: Callable[["Ops"], Sequence[ir.Value]],
        otherwise: Sequence[ir.Value],
        types: Sequence[tuple[ir.DataType, Shape]],
    ) -> Sequence[ir.Value]:
        """An ``If`` node: ``then_body(ops)`` writes the then branch, whose values are returned
        where ``condition`` holds; else the values ``otherwise`` of the enclosing graph pass
        through. ``types`` declares each output's (dtype, shape)."""
        branches = []
        for branch in ("then", "else"):
            inner = self._view(f"{self.prefix}{name}/{branch}/", tape=ir.tape.Tape())
            values = list(then_body(inner) if branch == "then" else map(inner.Identity, otherwise))
            for value, (dtype, shape) in zip(values, types):
                _declare(value, dtype, shape)
            branches.append(ir.Graph([], values, nodes=inner.tape.nodes, name=f"{name}_{branch}"))
        values = self.op_multi(
            "If", condition, outputs=len(types), then_branch=branches[0], else_branch=branches[1]
        )
        for value, (dtype, shape) in zip(values, types):
            _declare(value, dtype, shape)
        return values

    def gated_scan(
        self,
        name: str,
        steps: int,
        state: dict[str, tuple[ir.Value, ir.DataType, Shape]],
        body: Callable[..., Sequence[ir.Value]],
    ) -> Sequence[ir.Value]:
        """``steps`` iterations of ``body(ops, step, *state) -> new_state`` as a ``Scan`` (no
        ``Loop``); ``step`` is the iteration's index 0, 1, ….

        For runtimes without ``Loop`` (tract, static-graph compilers). Every value the body uses
        must be in ``state`` (passed through unchanged where it is constant): OpenVINO's Scan does
        not resolve outer-scope references. The body freezes its state itself once done (``Where``).
        """
        inner = self._view(f"{self.prefix}{name}/", tape=ir.tape.Tape())
        state = self._typed_only(state)
        state_in = [
            typed_value(f"{inner.prefix}{key}_in", dtype, shape)
            for key, (_, dtype, shape) in state.items()
        ]
        tick = typed_value(f"{inner.prefix}step", INT64, [])
        state_out = list(body(inner, tick, *state_in))
        for value, (_, dtype, shape) in zip(state_out, state.values()):
            _declare(value, dtype, shape)
        graph = ir.Graph([*state_in, tick], state_out, nodes=inner.tape.nodes, name=name)
        ticks = self.const(np.arange(steps, dtype=np.int64), INT64)
        initial = [value for value, _, _ in state.values()]
        values = self.op_multi(
            "Scan", *initial, ticks, outputs=len(state), body=graph, num_scan_inputs=1
        )
        for value, (_, dtype, shape) in zip(values, state.values()):
            _declare(value, dtype, shape)
        return values

    def _typed_only(
        self, state: dict[str, tuple[ir.Value, ir.DataType, Shape]]
    ) -> dict[str, tuple[ir.Value, ir.DataType, Shape]]:
        """Inside a function body the dimensions depend on the call site: declare the ranks only
        (onnxruntime's Scan needs a shape, of unknown dimensions, on every body output)."""
        if not self.functions:
            return state
        return {
            key: (value, dtype, None if shape is None else [None] * len(shape))
            for key, (value, dtype, shape) in state.items()
        }


def _declare(value: ir.Value, dtype: ir.DataType, shape: Shape) -> None:
    value.type = ir.TensorType(dtype)
    if shape is not None:
        value.shape = ir.Shape(shape)
