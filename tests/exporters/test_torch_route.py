"""An iResNet inside any PyTorch model: torch.export with a dynamic batch, torch.onnx.export with
the custom ops' translations (real Loops, not unrolled), torch.compile training, and the export
folder written through torch.onnx.export (``exporter="torch"``)."""

import copy

import numpy as np
import onnx
import pytest
import torch

import iresnet_onnx
from iresnet_onnx import export, freeze, runtimes
from iresnet_onnx.errors import UsageError
from iresnet_onnx.parity import check
from tests.conftest import make_model

BATCH = torch.export.Dim("batch")
SIZES = (1, 7, 64)


class Sandwich(torch.nn.Sequential):
    """nn.Sequential(Linear, iResNet, Linear): an iResNet inside another model."""

    def __init__(self, flow: torch.nn.Module):
        super().__init__(
            torch.nn.Linear(3, flow.input_size), flow, torch.nn.Linear(flow.input_size, 2)
        )


class EncoderDecoder(torch.nn.Module):
    """LinODEnet's pattern: encode with the iResNet, take a latent step, decode with its inverse."""

    def __init__(self, flow: torch.nn.Module):
        super().__init__()
        self.encoder, self.step = flow, torch.nn.Linear(flow.input_size, flow.input_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.inverse(self.step(self.encoder(x)))


class LogProb(torch.nn.Module):
    def __init__(self, flow: torch.nn.Module):
        super().__init__()
        self.flow = flow

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.flow.log_prob(x)


def loops(graph: onnx.GraphProto) -> list[str]:
    """Names of the Loop bodies in ``graph`` and its subgraphs."""
    found = []
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                if node.op_type == "Loop":
                    found.append(attribute.g.name)
                found += loops(attribute.g)
    return found


def to_onnx(module: torch.nn.Module, tmp_path, name: str) -> "runtimes.Session":
    x = torch.randn(3, module_input_size(module))
    program = torch.onnx.export(
        module.eval(), (x,), dynamo=True, dynamic_shapes=({0: BATCH},), input_names=["x"],
        custom_translation_table=iresnet_onnx.onnx_translation_table(), verbose=False,
    )  # fmt: skip
    path = tmp_path / f"{name}.onnx"
    program.save(str(path))
    return path


def module_input_size(module: torch.nn.Module) -> int:
    first = next(iter(module.modules()))
    if isinstance(first, Sandwich):
        return 3
    return next(m for m in module.modules() if hasattr(m, "input_size")).input_size


def run_onnx(path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def inputs(width: int, seed: int = 0) -> list[np.ndarray]:
    """Batches of the sizes the export never saw, one of them far from the origin (more steps)."""
    rng = np.random.default_rng(seed)
    batches = [rng.standard_normal((size, width)).astype(np.float32) for size in SIZES]
    return [*batches, (30.0 * batches[1]).astype(np.float32)]


def test_torch_export_with_a_dynamic_batch_keeps_the_iterative_parts_whole():
    flow = make_model(6, 2, activation="ELU", seed=1)
    for module in (flow, Sandwich(flow), EncoderDecoder(flow)):
        size = module_input_size(module)
        program = torch.export.export(
            module.eval(), (torch.randn(3, size),), dynamic_shapes=({0: BATCH},)
        )
        targets = {str(node.target) for node in program.graph.nodes}
        assert "iresnet_onnx.spectral_norm.default" in targets
        assert ("iresnet_onnx.block_inverse.default" in targets) == isinstance(
            module, EncoderDecoder
        )
        for batch in (1, 5):
            x = torch.randn(batch, size)
            with torch.no_grad():
                torch.testing.assert_close(program.module()(x), module(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("variant", "activation"),
    [("lowrank", "ReLU"), pytest.param("mlp", "ELU", marks=pytest.mark.slow),
     pytest.param("lowrank", "Tanh", marks=pytest.mark.slow)],
)  # fmt: skip
def test_a_model_that_decodes_with_the_inverse_exports_with_its_loops(
    tmp_path, variant, activation
):
    flow = make_model(6, 2, variant=variant, activation=activation, seed=2)
    model = EncoderDecoder(flow).eval()
    path = to_onnx(model, tmp_path, "decoder")
    bodies = loops(onnx.load(path).graph)
    # one fixed-point Loop per block (K steps per check, then the rest of maxiter one by one)
    assert bodies.count("fixed_point") == 2 and bodies.count("fixed_point_rest") == 2
    assert "power_iteration" in bodies
    for x in inputs(6):
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(run_onnx(path, x), expected, rtol=0,
                                   atol=1e-4 * max(1.0, float(np.abs(expected).max())))  # fmt: skip


@pytest.mark.slow
def test_sequential_and_log_prob_export_and_agree(tmp_path):
    flow = make_model(5, 2, variant="mlp", activation="Tanh", seed=3)
    for module, name in ((Sandwich(flow), "sandwich"), (LogProb(flow), "log_prob"),
                         (LogProb(freeze(flow)), "frozen_log_prob")):  # fmt: skip
        path = to_onnx(module, tmp_path, name)
        for x in inputs(module_input_size(module)):
            with torch.no_grad():
                expected = module(torch.from_numpy(x)).numpy()
            np.testing.assert_allclose(run_onnx(path, x), expected, rtol=0,
                                       atol=1e-4 * max(1.0, float(np.abs(expected).max())))  # fmt: skip


@pytest.mark.slow
def test_torch_compile_fullgraph_trains_like_eager():
    model = make_model(5, 2, variant="mlp", activation="Tanh", seed=4).train()
    twin = copy.deepcopy(model)
    x, y = torch.randn(16, 5), torch.randn(16, 5)

    def loss(flow: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return -flow.log_prob(x).mean() + (flow.inverse(y) - x).square().mean()

    compiled = torch.compile(lambda x, y: loss(model, x, y), fullgraph=True)
    for _ in range(2):  # the second step starts from warm starts the first step moved
        value, expected = compiled(x, y), loss(twin, x, y)
        value.backward()
        expected.backward()
        torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-5)
    for (name, p), (_, q) in zip(model.named_parameters(), twin.named_parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=name)
    # the warm starts moved alike (a traced inverse records no step counts: those buffers are not
    # state, and the state_dict holds none of them)
    for (name, b), (_, c) in zip(model.state_dict().items(), twin.state_dict().items()):
        torch.testing.assert_close(b, c, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("frozen", [False, True], ids=["model", "frozen"])
def test_the_legacy_exporter_refuses_the_inverse(tmp_path, frozen):
    flow = make_model(4, 1)
    model = EncoderDecoder(freeze(flow) if frozen else flow).eval()
    with pytest.raises(Exception, match="dynamo=True, custom_translation_table"):
        torch.onnx.export(model, (torch.randn(2, 4),), str(tmp_path / "m.onnx"), dynamo=False)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["loop", "folded"])
def test_export_through_torch_passes_parity_and_agrees_with_the_default_route(
    exported, tmp_path, mode
):
    model = make_model(6, 2, variant="mlp", activation="ELU", seed=5)
    default = exported(f"route-default-{mode}", model, spectral_norm=mode)
    torch_route = export(
        model, tmp_path / "torch", exporter="torch", spectral_norm=mode,
        runtimes=["onnxruntime:cpu", "openvino:cpu", "reference:cpu"],
    )  # fmt: skip
    assert torch_route.report.passed and torch_route.manifest["exporter"] == "torch"
    for graph in ("forward", "inverse", "density"):
        ours, theirs = onnx.load(default.paths[graph]), onnx.load(torch_route.paths[graph])
        assert [i.name for i in ours.graph.input] == [i.name for i in theirs.graph.input]
        assert [o.name for o in ours.graph.output] == [o.name for o in theirs.graph.output]
    y = inputs(6, seed=9)[-1]
    a = runtimes.load(default.inverse).run_all(y)
    b = runtimes.load(torch_route.inverse).run_all(y)
    assert a["iterations"].tolist() == b["iterations"].tolist()
    np.testing.assert_allclose(b["x"], a["x"], rtol=0, atol=1e-4 * max(1, np.abs(a["x"]).max()))
    assert runtimes.load(torch_route.inverse).run_all(y, maxiter=3)["iterations"].tolist() == [3, 3]
    report = check(model, torch_route.out_dir, runtimes=["onnxruntime:cpu"], batch_sizes=(1, 33))
    assert report.passed, str(report)


def test_export_through_torch_refuses_what_only_the_own_exporter_writes(tmp_path):
    with pytest.raises(UsageError, match="inverse='fixed' and functions=True"):
        export(make_model(4, 1), tmp_path / "x", exporter="torch", inverse="fixed")
    with pytest.raises(UsageError, match="unknown exporter mode 'onnx'"):
        export(make_model(4, 1), tmp_path / "y", exporter="onnx")


@pytest.mark.slow  # a torch-route export: ~15 s
def test_openvino_runs_the_torch_routes_power_iteration_like_the_default_route(tmp_path):
    """A one-block lowrank iResNet(64) through the torch route was 4.2e-4 off on OpenVINO alone:
    its CPU plugin computed MatMul(Transpose(T), Tx) wrong for a stack of one constant matrix
    (the power iteration now multiplies (Txᵀ T)ᵀ)."""
    model = make_model(64, 1, seed=3)
    export(model, tmp_path / "torch", exporter="torch", validate=False)
    report = check(model, tmp_path / "torch", runtimes=["openvino:cpu"], batch_sizes=(1, 7))
    assert report.passed, str(report)
