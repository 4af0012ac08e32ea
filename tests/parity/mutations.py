"""Graph mutations for the parity suite's own tests: each edits an exported graph the way a bug in
the exporter would, and the parity check must then fail.

They work on the ONNX protos whether the export keeps its functions or inlines them: every node
list (main graph, function bodies, Loop bodies) is searched.
"""

from collections.abc import Iterator
from pathlib import Path

import onnx
from onnx import helper, numpy_helper


def node_lists(model: onnx.ModelProto) -> Iterator[tuple[str, object]]:
    """(name, container with a ``.node`` list) for the main graph, functions and every subgraph."""

    def walk(name: str, container) -> Iterator[tuple[str, object]]:
        yield name, container
        for node in container.node:
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.GRAPH:
                    yield from walk(attribute.g.name, attribute.g)

    yield from walk(model.graph.name, model.graph)
    for function in model.functions:
        yield from walk(function.name, function)


def loop_bodies(
    model: onnx.ModelProto, name_part: str
) -> list[tuple[onnx.NodeProto, onnx.GraphProto]]:
    """The Loop nodes whose body graph's name contains ``name_part``, with their bodies."""
    found = []
    for _, container in node_lists(model):
        for node in container.node:
            if node.op_type == "Loop":
                body = next(a.g for a in node.attribute if a.name == "body")
                if name_part in body.name:
                    found.append((node, body))
    return found


def _constant(name: str, value, dtype=None) -> onnx.NodeProto:
    import numpy as np

    array = np.array(value, dtype=dtype)
    return helper.make_node(
        "Constant", [], [name], value=numpy_helper.from_array(array, name + "_value")
    )


def stop_at_half_atol(model: onnx.ModelProto) -> int:
    """Every test of a residual against the inverse's ``atol`` input compares with atol/2."""
    count = 0
    dtype = "float64" if _is_double(model) else "float32"
    for _, container in node_lists(model):
        for node in list(container.node):
            if node.op_type != "Greater" or len(node.input) < 2 or node.input[1] != "atol":
                continue
            half, scaled = f"mutation_half_{count}", f"mutation_half_atol_{count}"
            index = list(container.node).index(node)
            container.node.insert(index, helper.make_node("Mul", ["atol", half], [scaled]))
            container.node.insert(index, _constant(half, 0.5, dtype))
            node.input[1] = scaled
            count += 1
    return count


def one_step_short(model: onnx.ModelProto) -> int:
    """The fixed-point Loop's trip count is maxiter − 1."""
    count = 0
    for _, container in node_lists(model):
        for node in list(container.node):
            if node.op_type != "Loop":
                continue
            body = next(a.g for a in node.attribute if a.name == "body")
            if "fixed_point" not in body.name:
                continue
            one, shorter = f"mutation_one_{count}", f"mutation_short_trip_{count}"
            container.node.insert(0, _constant(one, 1, "int64"))
            index = list(container.node).index(node)
            container.node.insert(index, helper.make_node("Sub", [node.input[0], one], [shorter]))
            node.input[0] = shorter
            count += 1
    return count


def replace_activation(model: onnx.ModelProto, old: str, new: str, **attributes) -> int:
    """Every ``old`` activation node becomes ``new`` (e.g. Relu → LeakyRelu)."""
    count = 0
    for _, container in node_lists(model):
        for node in container.node:
            if node.op_type == old:
                node.op_type = new
                del node.attribute[:]
                node.attribute.extend(helper.make_attribute(k, v) for k, v in attributes.items())
                count += 1
    return count


WRONG_ACTIVATIONS = {
    "Relu": ("LeakyRelu", {"alpha": 0.3}),
    "Tanh": ("Softsign", {}),
    "Elu": ("Celu", {"alpha": 2.0}),
}
"""Each exported activation and a plausible mix-up (all still Lipschitz ≤ 1: the inverse converges)."""


def wrong_activation(model: onnx.ModelProto) -> int:
    """Every activation of :data:`WRONG_ACTIVATIONS` becomes its mix-up."""
    return sum(
        replace_activation(model, old, new, **attributes)
        for old, (new, attributes) in WRONG_ACTIVATIONS.items()
    )


def pivot_not_logged(model: onnx.ModelProto) -> int:
    """The density graph's log-det sums one block's LU pivots themselves instead of their logs."""
    for _, container in node_lists(model):
        for node in container.node:
            if node.op_type == "Log":
                node.op_type = "Identity"
                return 1
    return 0


def skip_power_iteration(model: onnx.ModelProto) -> int:
    """The power-iteration Loop never runs (start condition false): σ from the warm start alone."""
    count = 0
    for _, container in node_lists(model):
        for node in list(container.node):
            if node.op_type != "Loop":
                continue
            body = next(a.g for a in node.attribute if a.name == "body")
            if "power_iteration" not in body.name:
                continue
            false = f"mutation_false_{count}"
            container.node.insert(0, _constant(false, False, "bool"))
            node.input[1] = false
            count += 1
    return count


def _is_double(model: onnx.ModelProto) -> bool:
    return model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE


def mutate(export_dir: Path, graph: str, edit, *args, **kwargs) -> int:
    """Apply ``edit`` to ``export_dir/graph`` in place; the number of places it changed."""
    path = export_dir / graph
    model = onnx.load(path)
    count = edit(model, *args, **kwargs)
    onnx.save(model, path)
    return count
