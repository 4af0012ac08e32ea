"""What the exported graphs contain: Loop nodes where they belong, functions, types, metadata."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from iresnet_onnx import __version__, export
from iresnet_onnx._inspect import graph_summary
from tests.conftest import make_model, stale_power_vectors


def loops_in(proto: onnx.ModelProto) -> list[dict]:
    return graph_summary(proto)["loops"]


@pytest.fixture(scope="module")
def lowrank(exported):
    model = make_model(16, 3, variant="lowrank", activation="ELU")
    return (
        model,
        exported("structure-loop", model),
        exported("structure-folded", model, spectral_norm="folded"),
    )


@pytest.fixture(scope="module")
def mlp(exported):
    model = make_model(16, 2, variant="mlp", activation="Tanh")
    return model, exported("structure-mlp-loop", model)


def test_loop_mode_has_power_iteration_loops_and_folded_has_none(lowrank, mlp):
    _, loop, folded = lowrank
    forward = onnx.load(loop.forward)
    power_loops = [entry for entry in loops_in(forward) if entry["body"] == "power_iteration"]
    # one Loop for all six contractions (they share one shape), inline, named where it comes from:
    # in the then branch of the If that runs it only for a stale warm start
    assert len(power_loops) == 1
    assert power_loops[0]["where"] == "main graph › stale_warm_start_then"
    assert power_loops[0]["node"].startswith("spectral_norm.0/stale_warm_start/then/SpectralNorm/")
    assert loops_in(onnx.load(folded.forward)) == []
    # mlp: the hidden×hidden layers have a second shape, so a second power-iteration Loop
    assert len(loops_in(onnx.load(mlp[1].forward))) == 2


def stale_flags(path) -> list[bool]:
    """The If conditions of a loop-mode graph (one per weight shape: is a warm start stale?), as
    onnxruntime computes them from the graph's initializers."""
    proto = onnx.load(path)
    conditions = [node.input[0] for node in proto.graph.node if node.op_type == "If"]
    proto.graph.output.extend(onnx.helper.make_empty_tensor_value_info(name) for name in conditions)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    width = proto.graph.input[0].type.tensor_type.shape.dim[1].dim_value
    values = session.run(conditions, {proto.graph.input[0].name: np.zeros((1, width), np.float32)})
    return [bool(value) for value in values]


def test_the_power_iteration_runs_only_for_a_stale_warm_start(lowrank, mlp, tmp_path):
    """Converged warm starts (the trained model's) take the If's else branch: A′ of the warm
    start, which the runtime folds at load time, so no Loop runs per call. Stale ones run it."""
    assert stale_flags(lowrank[1].forward) == [False]
    assert stale_flags(mlp[1].inverse) == [False, False]
    stale = stale_power_vectors(make_model(16, 3, variant="lowrank", activation="ELU"), seed=1)
    export(stale, tmp_path, validate=False)
    assert stale_flags(tmp_path / "forward.onnx") == [True]


def test_inverse_has_one_fixed_point_loop_per_block(lowrank):
    _, loop, folded = lowrank
    for result, power_loops in ((loop, 1), (folded, 0)):
        loops = loops_in(onnx.load(result.inverse))
        fixed_point = [e["node"] for e in loops if e["body"] == "fixed_point"]
        assert [name.split("/")[:2] for name in fixed_point] == [
            [f"blocks.{i}", "BlockInverse"]
            for i in (2, 1, 0)  # run last block first
        ]
        assert sum(e["body"] == "power_iteration" for e in loops) == power_loops


def test_default_graphs_are_plain_standard_domain_nodes_with_scoped_names(lowrank):
    _, loop, _ = lowrank
    for path in (loop.forward, loop.inverse):
        proto = onnx.load(path)
        assert not proto.functions
        assert {entry.domain for entry in proto.opset_import} == {""}
        names = [node.name for node in proto.graph.node]
        assert all(names) and len(set(names)) == len(names)
        assert any(name.startswith("blocks.1/Block") for name in names)
        for node in proto.graph.node:
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.GRAPH:  # Loop bodies: declared shapes
                    for value in [*attribute.g.input[2:], *attribute.g.output]:
                        assert value.type.tensor_type.HasField("shape"), value.name


def test_functions_form_keeps_named_functions(exported):
    model = make_model(16, 3, variant="lowrank", activation="ELU")
    result = exported("structure-functions", model, functions=True)
    forward, inverse = onnx.load(result.forward), onnx.load(result.inverse)
    assert {f.name for f in forward.functions} == {
        "WarmSpectralNorm", "SpectralNorm", "Contraction", "Bottleneck", "BlockForward"
    }  # fmt: skip
    assert {f.name for f in inverse.functions} == {
        "WarmSpectralNorm", "SpectralNorm", "Contraction", "ShiftedBottleneck", "BlockInverse"
    }  # fmt: skip
    assert all(f.domain == "iresnet_onnx" for f in forward.functions)
    assert graph_summary(inverse)["op_counts"]["iresnet_onnx.BlockInverse"] == 3
    assert result.report.passed


def test_metadata_and_docs(lowrank):
    _model, loop, _ = lowrank
    forward, inverse = onnx.load(loop.forward), onnx.load(loop.inverse)
    metadata = {p.key: p.value for p in forward.metadata_props}
    assert metadata["iresnet_onnx.version"] == __version__
    assert json.loads(metadata["iresnet_onnx.hp"])["iResNetBlock"]["activation"] == "ELU"
    assert metadata["iresnet_onnx.spectral_norm"] == "loop"
    inverse_metadata = {p.key: p.value for p in inverse.metadata_props}
    assert inverse_metadata["iresnet_onnx.inverse"] == "loop"
    assert inverse_metadata["iresnet_onnx.maxiter_cap"] == "1000"
    for value in [
        *forward.graph.input,
        *forward.graph.output,
        *inverse.graph.input,
        *inverse.graph.output,
    ]:
        assert value.doc_string, value.name


def test_interface_types_and_shapes(lowrank):
    _, loop, _ = lowrank
    for path, inputs, outputs in (
        (loop.forward, {"x": [None, 16]}, {"y": [None, 16]}),
        (loop.inverse, {"y": [None, 16], "maxiter": [], "atol": [], "rtol": []},
         {"x": [None, 16], "iterations": [3], "residual": [3]}),
    ):  # fmt: skip
        proto = onnx.load(path)
        onnx.checker.check_model(proto, full_check=True)
        inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
        for values, expected in ((inferred.graph.input, inputs), (inferred.graph.output, outputs)):
            shapes = {
                v.name: [
                    d.dim_value if d.HasField("dim_value") else None
                    for d in v.type.tensor_type.shape.dim
                ]
                for v in values
            }
            assert shapes == expected
    inverse = onnx.load(loop.inverse)
    types = {v.name: v.type.tensor_type.elem_type for v in inverse.graph.output}
    assert types == {"x": onnx.TensorProto.FLOAT, "iterations": onnx.TensorProto.INT64,
                     "residual": onnx.TensorProto.FLOAT}  # fmt: skip
    # maxiter/atol/rtol are optional: initializers carry the model's defaults
    defaults = {i.name: numpy_helper.to_array(i) for i in inverse.graph.initializer}
    assert defaults["maxiter"] == 100 and defaults["maxiter"].dtype == np.int64
    assert defaults["atol"] == np.float32(1e-6) and defaults["rtol"] == np.float32(1e-5)


def test_loop_mode_initializers_are_the_raw_weights_and_folded_hold_the_effective_ones(lowrank):
    model, loop, folded = lowrank
    state = model.state_dict()
    raw = {i.name: numpy_helper.to_array(i) for i in onnx.load(loop.forward).graph.initializer}
    for name, tensor in state.items():
        if name.endswith(".weight"):
            np.testing.assert_array_equal(raw[name], tensor.numpy())
    baked = {i.name: numpy_helper.to_array(i) for i in onnx.load(folded.forward).graph.initializer}
    assert not any(name.endswith(".weight") for name in baked)
    layer = model.blocks[1].bottleneck[0]  # 16 → 4: a wide layer, stored transposed
    with torch.no_grad():
        expected = layer.effective_weight().numpy()
    np.testing.assert_array_equal(baked["blocks.1.bottleneck.0.effective_weight"], expected.T)
    assert np.linalg.norm(expected, 2) == pytest.approx(0.97, rel=1e-5)


@pytest.mark.parametrize("opset", [17, 21])
def test_opset_ends(opset, exported):
    model = make_model(6, 2, activation="Tanh")
    result = exported(f"opset{opset}", model, opset=opset)
    for path in (result.forward, result.inverse):
        proto = onnx.load(path)
        assert {o.domain: o.version for o in proto.opset_import}[""] == opset
        onnx.checker.check_model(proto, full_check=True)
    assert result.report.passed


@pytest.mark.parametrize("variant", ["lowrank", "mlp"])
def test_a_fixed_point_step_is_the_bottlenecks_nodes_and_nothing_else(exported, variant):
    """The inverse's Loop carries v = y − x, so a step is g's own nodes (its first Gemm reads the
    first layer at y, computed once per call): no Sub of its own, which at batch 1 costs about what
    a Gemm does."""
    model = make_model(16, 1, variant=variant, activation="Tanh")
    body_nodes = {}
    for k in (1, 3):
        result = exported(f"structure-step-{variant}-{k}", model, steps_per_check=k)
        (loop,) = [e for e in loops_in(onnx.load(result.inverse)) if e["body"] == "fixed_point"]
        body_nodes[k] = loop["body_nodes"]
    assert (body_nodes[3] - body_nodes[1]) / 2 == len(model.blocks[0].bottleneck)


def test_the_first_k_steps_and_their_test_run_outside_any_loop(exported):
    """Every row runs the first K steps: they and their test sit in the block's own graph (no
    compaction, no Loop iteration), the first of them from p without a Gemm of its own; a row that
    has converged by then leaves with K steps, no Loop having run."""
    model = make_model(16, 1, variant="lowrank", activation="Tanh")
    result = exported("structure-first-check", model, steps_per_check=3)
    graph = onnx.load(result.inverse).graph
    top = [node.op_type for node in graph.node]
    assert top.count("Tanh") == 3  # one per step; the steps in the Loop bodies are not here
    assert "NonZero" not in top and "ScatterND" not in top
    # the first step is the bottleneck after its first Gemm (p, computed once, holds it)
    assert top.count("Gemm") == 1 + (2 * 3 - 1)
    session = ort.InferenceSession(result.inverse, providers=["CPUExecutionProvider"])
    feeds = {"y": np.ones((2, 16), np.float32), "atol": np.array(1e3, np.float32)}
    assert session.run(["iterations"], feeds)[0].tolist() == [3]  # every row stops at the test
