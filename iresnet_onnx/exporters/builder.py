"""A thin layer over ``onnx_ir``'s tape for writing ONNX graphs as Python over ONNX ops.

``ops.Gemm(x, w, b, transB=1)`` records a node and returns its output value, much like onnxscript's
``op.Gemm``; unlike ``@script`` functions, the graph's structure can depend on the model (activation,
variant, number of layers) and every value gets the types that ``onnx.checker``'s full check wants.
Reductions are emitted for the target opset (axes became an input in opset 18).
"""

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx_ir as ir

DOMAIN = "iresnet_onnx"
"""The domain of this package's ONNX functions."""

INT64 = ir.DataType.INT64
BOOL = ir.DataType.BOOL


def typed_value(
    name: str, dtype: ir.DataType, shape: Sequence[int | str | None] | None
) -> ir.Value:
    """A named value with its element type and (optionally) its shape."""
    return ir.Value(
        name=name, type=ir.TensorType(dtype), shape=None if shape is None else ir.Shape(shape)
    )


class Ops:
    """Records ONNX nodes for one graph or function body; ``ops.<OpType>(*inputs, **attrs)``."""

    def __init__(self, opset: int, dtype: ir.DataType, prefix: str = ""):
        self.opset = opset
        self.dtype = dtype
        self.prefix = prefix
        self.tape = ir.tape.Tape()
        self._count = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{self.prefix}{hint}_{self._count}"

    def __getattr__(self, op_type: str) -> Callable[..., ir.Value]:
        if not op_type[:1].isupper():
            raise AttributeError(op_type)
        return lambda *inputs, **attributes: self.op(op_type, *inputs, **attributes)

    def op(self, op_type: str, *inputs: ir.Value | None, **attributes: Any) -> ir.Value:
        value = self.tape.op(op_type, list(inputs), attributes or None)
        value.name = self._name(op_type.lower())
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
        for value in values:
            value.name = self._name(op_type.lower())
        return values

    def call(self, function: ir.Function, *inputs: ir.Value | None, outputs: int = 1) -> Any:
        """A node that calls one of our ONNX functions; one value, or a tuple of ``outputs``."""
        values = self.op_multi(function.name, *inputs, outputs=outputs, domain=function.domain)
        return values[0] if outputs == 1 else tuple(values)

    def const(self, value: Any, dtype: ir.DataType | None = None) -> ir.Value:
        """A ``Constant`` node; float values take the graph's dtype unless ``dtype`` says otherwise."""
        array = np.asarray(value)
        if dtype is None:
            dtype = self.dtype if array.dtype.kind == "f" else ir.DataType.from_numpy(array.dtype)
        tensor = ir.tensor(array.astype(dtype.numpy()), name=self._name("const"))
        value = self.op("Constant", value=tensor)
        value.type, value.shape = ir.TensorType(dtype), ir.Shape(array.shape)
        return value

    def reduce(
        self, op_type: str, x: ir.Value, axes: Sequence[int] | None, keepdims: int
    ) -> ir.Value:
        """``ReduceMax``/``ReduceL2``/… over ``axes`` (all axes when None), for any opset."""
        if axes is None:
            return self.op(op_type, x, keepdims=keepdims)
        if self.opset >= 18:
            return self.op(op_type, x, self.const(list(axes), INT64), keepdims=keepdims)
        return self.op(op_type, x, axes=list(axes), keepdims=keepdims)

    def loop(
        self,
        name: str,
        trip_count: ir.Value | None,
        condition: ir.Value | None,
        state: dict[str, ir.Value],
        body: Callable[..., tuple[ir.Value, Sequence[ir.Value]]],
    ) -> Sequence[ir.Value]:
        """A ``Loop`` node; ``body(ops, *state) -> (keep_going, new_state)`` writes one iteration.

        ``state`` names the loop-carried values and their initial values; the body sees them typed
        like the initial ones (the graph's float type where a value's type is unknown, as inside a
        function) and may use any value of the enclosing graph (outer-scope references).
        Returns the final state, in the order of ``state``.
        """
        inner = Ops(self.opset, self.dtype, prefix=f"{self.prefix}{name}.")
        iteration = typed_value(f"{inner.prefix}iteration", INT64, [])
        condition_in = typed_value(f"{inner.prefix}condition_in", BOOL, [])
        state_in = [
            typed_value(f"{inner.prefix}{key}", value.dtype or self.dtype, None)
            for key, value in state.items()
        ]
        keep_going, state_out = body(inner, *state_in)
        graph = ir.Graph(
            [iteration, condition_in, *state_in],
            [keep_going, *state_out],
            nodes=inner.tape.nodes,
            name=name,
        )
        return self.op_multi(
            "Loop", trip_count, condition, *state.values(), outputs=len(state), body=graph
        )


def make_function(
    name: str,
    opset: int,
    dtype: ir.DataType,
    inputs: Sequence[str],
    body: Callable[..., ir.Value | Sequence[ir.Value]],
    doc: str,
) -> ir.Function:
    """An ONNX function in our domain whose body is ``body(ops, *input_values)``."""
    ops = Ops(opset, dtype)
    parameters = [ir.Value(name=input_name) for input_name in inputs]
    result = body(ops, *parameters)
    outputs = [result] if isinstance(result, ir.Value) else list(result)
    graph = ir.Graph(
        parameters,
        outputs,
        nodes=ops.tape.nodes,
        opset_imports={"": opset, DOMAIN: 1},
        name=name,
        doc_string=doc,
    )
    return ir.Function(DOMAIN, name, graph=graph, attributes=[])
