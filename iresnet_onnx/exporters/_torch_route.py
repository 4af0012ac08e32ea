"""The three graphs through PyTorch's own exporter: ``torch.onnx.export(..., dynamo=True)`` of the
model's forward, inverse and log-density, with :func:`onnx_translation_table` for the custom ops.

A cross-check of the package's own exporter (same inputs, outputs, metadata; the same Loop
components, from the same definitions), and the route a model that merely *contains* an iResNet
takes. The graphs differ in layout only: PyTorch's exporter measures each layer's σ in a Loop of
its own (the package's exporter stacks the layers of one shape into one Loop).

``spectral_norm="folded"`` exports :func:`iresnet_onnx.freeze` of the model (A′ as initializers);
``inverse="fixed"`` and ``functions=True`` exist in the package's own exporter only.
"""

import copy
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir
import torch

from .._frozen import freeze
from ..errors import ExportError, UsageError
from ..graphs import GRAPHS
from ._assembly import IR_VERSION, solver_defaults
from ._metadata import graph_metadata, input_docs, model_doc, output_docs
from ._options import ExportOptions
from ._spec import ModelSpec
from ._translations import onnx_translation_table

__all__ = ["build_graphs_torch"]

_PREFIX = "model."


class _Forward(torch.nn.Module):
    def __init__(self, model: Any):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class _Inverse(_Forward):
    def forward(self, y, maxiter, atol, rtol):
        return self.model.inverse_with_stats(y, maxiter, atol, rtol)


class _Density(_Forward):
    def forward(self, x: torch.Tensor):
        z, log_det = self.model.forward_and_log_det(x)
        log_prob = -0.5 * (z.square().sum(-1) + z.shape[-1] * float(np.log(2 * np.pi))) + log_det
        return log_prob, log_det, z


def build_graphs_torch(model: Any, spec: ModelSpec, options: ExportOptions) -> dict[str, Any]:
    """``{graph name: onnx.ModelProto}`` through ``torch.onnx.export``, renamed, documented and
    given the metadata of :mod:`._metadata`, like the package's own graphs."""
    if options.inverse != "loop" or options.functions:
        raise UsageError(
            "exporter='torch' writes inverse='loop' graphs of plain nodes; inverse='fixed' and "
            "functions=True are the package's own exporter's (exporter='iresnet_onnx')"
        )
    # a copy in eval mode: the caller's model keeps its mode and buffers
    source = freeze(model) if options.spectral_norm == "folded" else copy.deepcopy(model)
    source.eval()
    dtype = getattr(torch, spec.dtype.name)
    x = torch.zeros(2, spec.input_size, dtype=dtype)
    defaults = {k: torch.from_numpy(v) for k, v in solver_defaults(spec).items()}
    wrappers = {
        "forward": (_Forward(source), (x,)),
        "inverse": (_Inverse(source), (x, *defaults.values())),
        "density": (_Density(source), (x,)),
    }
    graphs = {}
    for name, (wrapper, args) in wrappers.items():
        wrapper.eval()
        graphs[name] = _finish(_export(wrapper, args, name, spec, options), name, spec, options)
    return graphs


def _export(
    wrapper: torch.nn.Module, args: tuple, graph: str, spec: ModelSpec, options: ExportOptions
) -> onnx.ModelProto:
    """``torch.onnx.export`` without its optimizer: onnxscript's constant folding would fold the
    power iteration's inputs (T/max|T|) into initializers, and then editing a raw weight would
    no longer reach σ — loop mode computes σ from the raw weights at run time."""
    table = GRAPHS[graph]
    batch = torch.export.Dim("batch", min=1)
    names = [table.input, *table.optional_inputs]
    dynamic = {names[0]: {0: batch}, **{name: None for name in names[1:]}}
    try:
        with torch.no_grad():
            program = torch.onnx.export(
                wrapper, args, dynamo=True, opset_version=options.opset,
                input_names=names, output_names=list(table.outputs), dynamic_shapes=dynamic,
                custom_translation_table=onnx_translation_table(options.steps_per_check),
                verbose=False, report=False, optimize=False,
            )  # fmt: skip
    except Exception as error:  # torch.onnx raises its own hierarchy of errors
        raise ExportError(f"torch.onnx.export of {table.file} failed: {error}") from error
    return program.model_proto


def _finish(
    proto: onnx.ModelProto, graph: str, spec: ModelSpec, options: ExportOptions
) -> onnx.ModelProto:
    """The interface of the package's own graphs: optional solver inputs with the model's
    defaults, ``batch`` as the dynamic dimension, doc strings and metadata."""
    model = ir.serde.deserialize_model(proto)
    table = GRAPHS[graph]
    if tuple(value.name for value in model.graph.outputs) != table.outputs:
        raise ExportError(f"torch.onnx.export gave {table.file} the outputs "
                          f"{[v.name for v in model.graph.outputs]}, expected {table.outputs}")  # fmt: skip
    for value in model.graph.inputs:
        value.doc_string = input_docs(spec, options, graph)[value.name]
        if value.name in table.optional_inputs:  # ONNX's way to give an input a default
            tensor = ir.tensor(solver_defaults(spec)[value.name], name=value.name)
            value.const_value = tensor
            model.graph.register_initializer(value)
        else:
            value.shape = ir.Shape(["batch", spec.input_size])
    for name, value in list(model.graph.initializers.items()):
        if name.startswith(_PREFIX):  # the wrapper's attribute: name weights as in the state_dict
            del model.graph.initializers[name]
            value.name = name[len(_PREFIX) :]
            model.graph.register_initializer(value)
    for value in model.graph.outputs:
        value.doc_string = output_docs(graph)[value.name]
        value.shape = ir.Shape(
            table.output_shape(value.name, "batch", spec.input_size, spec.nblocks)
        )
    model.ir_version = IR_VERSION[options.opset]
    model.producer_name = "iresnet-onnx (torch.onnx.export)"
    model.doc_string = model_doc(spec, options, graph)
    model.metadata_props.update(graph_metadata(spec, options, graph, exporter="torch"))
    model.graph.name = f"{spec.kind}_{graph}"
    return ir.serde.serialize_model(model)
