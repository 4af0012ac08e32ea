"""How to export: assemble ``forward.onnx``, ``inverse.onnx`` and ``density.onnx`` from a
:class:`ModelSpec`.

Both graphs start the same way. In loop mode the raw weights are initializers (named as in the
state_dict); the weights of one shape are stacked in their tall form, ``WarmSpectralNorm`` gives
their σ at the warm-start vectors and whether any of those is stale, ``Contraction`` scales the
stack to A′ and ``Gather`` takes each layer's A′ out of it. All of that involves initializers only,
so onnxruntime folds it once at load time. An ``If`` on "stale" passes those A′ through, or runs
one ``SpectralNorm`` (one power-iteration Loop) for the stack and takes A′ from its σ: a converged
warm start costs no node per call. In folded mode the initializers hold A′ (tall form) and none of
that exists. (``Gather``, not ``Split``: onnx's version converter has no Split adapter
below opset 18.)
"""

import math
from collections import defaultdict

import numpy as np
import onnx
import onnx_ir as ir

from .. import __version__
from ..graphs import GRAPHS
from ._builder import DOMAIN, INT64, Component, Ops, typed_value
from ._components import (
    block_forward_component,
    bottleneck_component,
    contraction_component,
    spectral_norm_component,
    warm_spectral_norm_component,
)
from ._density_components import block_density_component
from ._inverse_components import block_inverse_component, block_inverse_fixed_component
from ._metadata import graph_metadata, input_docs, model_doc, output_docs
from ._options import ExportOptions
from ._spec import LayerSpec, ModelSpec, fixed_steps

IR_VERSION = {17: 8, 18: 8, 19: 9, 20: 9, 21: 10}
_DTYPE = {np.dtype(np.float32): ir.DataType.FLOAT, np.dtype(np.float64): ir.DataType.DOUBLE}


class _ModelBuilder:
    """Collects the main graph's nodes and initializers (and, with ``functions``, the functions)."""

    def __init__(self, spec: ModelSpec, options: ExportOptions):
        self.spec = spec
        self.options = options
        self.dtype = _DTYPE[spec.dtype]
        self.ops = Ops(options.opset, self.dtype, functions=options.functions)
        self.initializers: list[ir.Value] = []
        self.bottleneck = bottleneck_component(spec.steps)

    def initializer(self, name: str, array: np.ndarray, doc: str | None = None) -> ir.Value:
        # np.array(order="C"), not np.ascontiguousarray: the latter turns 0-d defaults into 1-d
        tensor = ir.tensor(np.array(array, order="C"), name=name)
        value = ir.Value(
            name=name, type=ir.TensorType(tensor.dtype), shape=tensor.shape, const_value=tensor
        )
        value.doc_string = doc
        self.initializers.append(value)
        return value

    def block_parameters(self) -> list[list[ir.Value]]:
        """Per block, the Bottleneck's parameter values (weight as tall-form A′, bias) in order."""
        weights = (
            self._loop_weights() if self.options.spectral_norm == "loop" else self._folded_weights()
        )
        biases = {
            layer.name: self.initializer(f"{layer.name}.bias", layer.bias)
            for layer in self.spec.layers
            if layer.bias is not None
        }
        return [
            [
                value
                for layer in block
                for value in (weights[layer.name], biases.get(layer.name))
                if value is not None
            ]
            for block in self.spec.blocks
        ]

    def _folded_weights(self) -> dict[str, ir.Value]:
        return {
            layer.name: self.initializer(
                f"{layer.name}.effective_weight",
                layer.tall_form(layer.effective_weight),
                "A′ = A·min(c/‖A‖₂, 1), folded at export (transposed when A is wide)",
            )
            for layer in self.spec.layers
        }

    def _loop_weights(self) -> dict[str, ir.Value]:
        spec = self.spec
        power = spec.power_iteration
        groups: dict[tuple[int, int], list[LayerSpec]] = defaultdict(list)
        for layer in spec.layers:
            groups[layer.tall_shape].append(layer)

        weights: dict[str, ir.Value] = {}
        for group_index, ((rows, cols), layers) in enumerate(sorted(groups.items())):
            ops = self.ops.scoped(f"spectral_norm.{group_index}")
            stack = ops.Concat(
                *(
                    ops.Unsqueeze(self._tall_raw_weight(ops, layer), ops.const([0], INT64))
                    for layer in layers
                ),
                axis=0,
            )
            vectors = self.initializer(
                f"power_vectors.{group_index}",
                np.stack([layer.power_vector for layer in layers]),
                f"warm-start vectors of {', '.join(layer.name for layer in layers)}",
            )
            c = self.initializer(
                f"contraction_constants.{group_index}",
                np.array([layer.c for layer in layers], spec.dtype).reshape(-1, 1, 1),
            )
            # σ at the warm start and whether it needs the power iteration: both from initializers
            # alone, so a runtime folds them (and the A′ they give) once at load time; the If
            # runs the power-iteration Loop only where a warm start is stale
            warm = warm_spectral_norm_component(power["atol"], power["rtol"])
            warm_sigma, stale = ops.invoke(warm, stack, vectors)
            spectral = spectral_norm_component(
                len(layers), cols, power["atol"], power["rtol"], power["maxiter"]
            )

            def measured(
                inner: Ops, spectral=spectral, stack=stack, vectors=vectors, c=c, layers=layers
            ):
                return self._layer_weights(
                    inner, inner.invoke(spectral, stack, vectors), stack, c, layers
                )

            values = ops.if_(
                "stale_warm_start", stale, measured,
                self._layer_weights(ops, warm_sigma, stack, c, layers),
                [(self.dtype, [rows, cols])] * len(layers),
            )  # fmt: skip
            weights.update({layer.name: value for layer, value in zip(layers, values)})
        return weights

    def _layer_weights(
        self, ops: Ops, sigma: ir.Value, stack: ir.Value, c: ir.Value, layers: list[LayerSpec]
    ) -> list[ir.Value]:
        """Each layer's A′ (tall form) from the stack's σ: ``Contraction``, then ``Gather``."""
        effective = ops.invoke(contraction_component(), stack, sigma, c)
        return [
            ops.Gather(effective, ops.const(index, INT64), axis=0) for index in range(len(layers))
        ]

    def _tall_raw_weight(self, ops: Ops, layer: LayerSpec) -> ir.Value:
        raw = self.initializer(f"{layer.name}.weight", layer.weight, "raw weight A (state_dict)")
        return raw if layer.tall else ops.Transpose(raw, perm=[1, 0])

    def model(self, inputs: list[ir.Value], outputs: list[ir.Value], graph: str) -> ir.Model:
        """The model of ``graph``: its values documented and the metadata attached."""
        spec, options = self.spec, self.options
        for value, doc in zip(inputs, input_docs(spec, options, graph).values()):
            value.doc_string = doc
        for value, name in zip(outputs, GRAPHS[graph].outputs):
            value.name, value.doc_string = name, output_docs(graph)[name]
        opsets = {"": options.opset, **({DOMAIN: 1} if options.functions else {})}
        body = ir.Graph(
            inputs,
            outputs,
            nodes=self.ops.tape.nodes,
            initializers=self.initializers,
            opset_imports=opsets,
            name=f"{spec.kind}_{graph}",
            doc_string=f"{spec.kind} {graph} graph, spectral norm {options.spectral_norm}",
        )
        model = ir.Model(
            body,
            ir_version=IR_VERSION[options.opset],
            producer_name="iresnet-onnx",
            producer_version=__version__,
            functions=list(self.ops.registry.values()),
            metadata_props=graph_metadata(spec, options, graph),
        )
        model.doc_string = model_doc(spec, options, graph)
        return model


def _batch_input(builder: _ModelBuilder, name: str) -> ir.Value:
    return typed_value(name, builder.dtype, ["batch", builder.spec.input_size])


def build_forward(spec: ModelSpec, options: ExportOptions) -> onnx.ModelProto:
    """``forward.onnx``: x[batch, n] → y[batch, n]."""
    builder = _ModelBuilder(spec, options)
    forward = block_forward_component(builder.bottleneck)
    x = _batch_input(builder, "x")
    h = x
    for index, parameters in enumerate(builder.block_parameters()):
        h = builder.ops.invoke(forward, h, *parameters, scope=_block_scope(spec, index))
    y = h  # the last block's output is the graph output: no Identity node to run
    y.type, y.shape = ir.TensorType(builder.dtype), ir.Shape(["batch", spec.input_size])
    return ir.serde.serialize_model(builder.model([x], [y], "forward"))


def build_inverse(spec: ModelSpec, options: ExportOptions) -> onnx.ModelProto:
    """``inverse.onnx``: y (+ optional maxiter, atol, rtol) → x, iterations, residual."""
    builder = _ModelBuilder(spec, options)
    ops = builder.ops
    cap = spec.maxiter_cap
    if options.inverse == "fixed":
        steps = fixed_steps(spec, options.input_radius)
        inverses: list[Component] = [
            block_inverse_fixed_component(spec.steps, spec.input_size, k) for k in steps
        ]
    else:
        component = block_inverse_component(
            spec.steps, spec.input_size, cap, options.steps_per_check
        )
        inverses = [component] * spec.nblocks
    y = _batch_input(builder, "y")
    # Inputs with an initializer of the same name: optional, defaulting to the model's own values.
    maxiter, atol, rtol = (
        builder.initializer(name, value) for name, value in solver_defaults(spec).items()
    )
    parameters = builder.block_parameters()
    x = y
    iterations, residuals = [None] * spec.nblocks, [None] * spec.nblocks
    for index in reversed(range(spec.nblocks)):
        scope = _block_scope(spec, index)
        x, k, residual = ops.invoke(
            inverses[index], x, *parameters[index], maxiter, atol, rtol, scope=scope
        )
        iterations[index] = ops.Unsqueeze(k, ops.const([0], INT64))
        residuals[index] = ops.Unsqueeze(residual, ops.const([0], INT64))
    iterations = ops.Concat(*iterations, axis=0)
    residual = ops.Concat(*residuals, axis=0)
    for value, dtype, shape in (
        (x, builder.dtype, ["batch", spec.input_size]),
        (iterations, INT64, [spec.nblocks]),
        (residual, builder.dtype, [spec.nblocks]),
    ):
        value.type, value.shape = ir.TensorType(dtype), ir.Shape(shape)
    model = builder.model([y, maxiter, atol, rtol], [x, iterations, residual], "inverse")
    return ir.serde.serialize_model(model)


def build_density(spec: ModelSpec, options: ExportOptions) -> onnx.ModelProto:
    """``density.onnx``: x[batch, n] → log_prob[batch], log_det[batch], z[batch, n].

    z = f(x), log_det = Σ_blocks log|det ∂y/∂x| (exact, the matrix determinant lemma), and
    log_prob = log N(z; 0, I) + log_det: the flow's log-likelihood of each row.
    """
    builder = _ModelBuilder(spec, options)
    ops = builder.ops
    hidden = spec.hidden_size
    density = block_density_component(spec.steps, spec.variant, spec.input_size, hidden)
    x = _batch_input(builder, "x")
    z, log_det = x, None
    for index, parameters in enumerate(builder.block_parameters()):
        z, block_log_det = ops.invoke(density, z, *parameters, scope=_block_scope(spec, index))
        log_det = block_log_det if log_det is None else ops.Add(log_det, block_log_det)
    prior = ops.scoped("log_prob")
    squares = prior.reduce("ReduceSumSquare", z, [1], keepdims=0)
    normaliser = prior.const(spec.input_size * math.log(2 * math.pi))
    log_prior = prior.Mul(prior.const(-0.5), prior.Add(squares, normaliser))
    log_prob = prior.Add(log_prior, log_det)
    log_det = ops.Identity(log_det)  # an output of its own, not the input of log_prob's Add
    for value, shape in ((log_prob, ["batch"]), (log_det, ["batch"]),
                         (z, ["batch", spec.input_size])):  # fmt: skip
        value.type, value.shape = ir.TensorType(builder.dtype), ir.Shape(shape)
    model = builder.model([x], [log_prob, log_det, z], "density")
    return ir.serde.serialize_model(model)


def _block_scope(spec: ModelSpec, index: int) -> str:
    return f"blocks.{index}" if spec.kind == "iResNet" else "block"


def solver_defaults(spec: ModelSpec) -> dict[str, np.ndarray]:
    """The inverse graph's optional inputs and their defaults: the model's solver settings."""
    return {
        "maxiter": np.array(spec.maxiter, np.int64),
        "atol": np.array(spec.atol, spec.dtype),
        "rtol": np.array(spec.rtol, spec.dtype),
    }
