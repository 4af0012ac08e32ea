"""What is in an exported graph: opset, interface, Loop nodes and where they sit, functions, sizes."""

from collections import Counter
from typing import Any

import onnx
from onnx import numpy_helper


def _subgraphs(node: onnx.NodeProto) -> list[onnx.GraphProto]:
    graphs = []
    for attribute in node.attribute:
        if attribute.type == onnx.AttributeProto.GRAPH:
            graphs.append(attribute.g)
        graphs.extend(attribute.graphs)
    return graphs


def _walk(nodes: Any, where: str, ops: Counter, loops: list[dict[str, Any]]) -> None:
    for node in nodes:
        ops[node.op_type if not node.domain else f"{node.domain}.{node.op_type}"] += 1
        for graph in _subgraphs(node):
            if node.op_type == "Loop":
                loops.append({"where": where, "body": graph.name, "body_nodes": len(graph.node)})
            _walk(graph.node, f"{where} › {graph.name}", ops, loops)


def _value_info(value: onnx.ValueInfoProto) -> dict[str, Any]:
    tensor = value.type.tensor_type
    shape = (
        [d.dim_param or d.dim_value for d in tensor.shape.dim] if tensor.HasField("shape") else None
    )
    return {
        "name": value.name,
        "dtype": onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name,
        "shape": shape,
        "doc": value.doc_string,
    }


def graph_summary(model: onnx.ModelProto) -> dict[str, Any]:
    """A JSON-ready description of ``model``; Loop nodes are counted inside functions too."""
    ops: Counter = Counter()
    loops: list[dict[str, Any]] = []
    _walk(model.graph.node, "main graph", ops, loops)
    for function in model.functions:
        _walk(function.node, f"function {function.domain}.{function.name}", ops, loops)
    initializers = {init.name for init in model.graph.initializer}
    optional = [v.name for v in model.graph.input if v.name in initializers]
    return {
        "ir_version": model.ir_version,
        "opsets": {entry.domain or "ai.onnx": entry.version for entry in model.opset_import},
        "inputs": [{**_value_info(v), "optional": v.name in optional} for v in model.graph.input],
        "outputs": [_value_info(v) for v in model.graph.output],
        "functions": [f"{f.domain}.{f.name}" for f in model.functions],
        "loops": loops,
        "nodes": sum(ops.values()),
        "op_counts": dict(sorted(ops.items())),
        "initializers": len(model.graph.initializer),
        "initializer_bytes": sum(numpy_helper.to_array(i).nbytes for i in model.graph.initializer),
        "metadata": {p.key: p.value for p in model.metadata_props},
    }
