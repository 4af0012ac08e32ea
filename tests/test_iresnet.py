"""iResNetBlock and iResNet: round trips, HP handling, TorchScript, training, bad input."""

import copy
import re
import threading
import warnings

import numpy as np
import pytest
import torch

from iresnet_onnx import LinearContraction, iResNet, iResNetBlock
from iresnet_onnx.bench import scale_weights
from iresnet_onnx.errors import ConvergenceWarning

VARIANTS = ["lowrank", "mlp"]
ACTIVATIONS = ["ReLU", "ELU", "Tanh"]


def tight_model(variant: str, activation: str, n: int = 6) -> iResNet:
    torch.manual_seed(0)
    block_hp = {
        "variant": variant,
        "activation": activation,
        "hidden_size": 4,
        "atol": 1e-13,
        "rtol": 1e-13,
        "maxiter": 2000,
    }
    model = iResNet(n, nblocks=3, iResNetBlock=block_hp).double().eval()
    return scale_weights(model, 10.0)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_float64_round_trips_both_ways(variant, activation):
    model = tight_model(variant, activation)
    x = torch.randn(32, 6, dtype=torch.float64)
    with torch.no_grad():
        assert (model.inverse(model(x)) - x).abs().max() <= 1e-9
        assert (model(model.inverse(x)) - x).abs().max() <= 1e-9
    for block in model.blocks:
        assert block.residual <= 1e-13 and 1 <= int(block.iterations) < 2000


@pytest.mark.parametrize("variant", VARIANTS)
def test_float32_quantile_criterion_of_the_seed(variant):
    torch.manual_seed(1)
    model = iResNet(10, nblocks=4, iResNetBlock={"variant": variant, "maxiter": 20}).eval()
    x = torch.randn(1000, 10)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        rms = (model.inverse(model(x)) - x).square().mean(dim=-1).sqrt()
    quantiles = torch.quantile(rms, torch.tensor([0.5, 0.68, 0.95, 0.997]))
    assert (quantiles <= torch.tensor([0.005, 0.005, 0.01, 0.01])).all(), quantiles


def test_block_order_of_the_inverse_matters():
    model = tight_model("lowrank", "ELU")
    x = torch.randn(16, 6, dtype=torch.float64)
    with torch.no_grad():
        y = model(x)
        wrong = y
        for block in model.blocks:  # forward order: not the inverse
            wrong = block.inverse(wrong)
    assert (model.inverse(y) - x).abs().max() <= 1e-9
    assert (wrong - x).abs().max() > 1e-3
    assert list(model.reversed_blocks) == list(model.blocks)[::-1]


def test_residual_buffer_is_the_real_residual():
    torch.manual_seed(2)
    block = scale_weights(iResNetBlock(5, rtol=1e-4, atol=1e-6), 10.0).eval()
    y = torch.randn(20, 5)
    with torch.no_grad():
        x = block.inverse(y)
        k = int(block.iterations)
        # replay the iteration to get x_{k-1}, then recompute the residual of the last step
        previous = y
        for _ in range(k - 1):
            previous = y - block.bottleneck(previous)
        expected = ((x - previous).abs() - 1e-4 * previous.abs()).max()
    torch.testing.assert_close(block.residual, expected)
    assert block.residual <= 1e-6


def test_non_convergence_warns_with_the_real_residual():
    torch.manual_seed(3)
    block = scale_weights(iResNetBlock(6), 10.0).eval()
    with (
        torch.no_grad(),
        pytest.warns(ConvergenceWarning, match=r"no convergence in 1 iterations") as record,
    ):
        block.inverse(torch.randn(4, 6), maxiter=1)
    residual = float(block.residual)
    assert residual > block.atol
    assert str(residual) in str(record[0].message)


def test_hp_defaults_and_isolation():
    defaults = copy.deepcopy(iResNet.HP), copy.deepcopy(iResNetBlock.HP)
    custom = iResNet(
        9, nblocks=2, iResNetBlock={"activation": "ELU", "maxiter": 50, "hidden_size": 5}
    )
    plain = iResNet(9)
    assert (iResNet.HP, iResNetBlock.HP) == defaults
    assert custom.HP["nblocks"] == 2 and len(custom.blocks) == 2
    assert custom.HP["iResNetBlock"]["activation"] == "ELU"
    assert all(b.maxiter == 50 and b.hidden_size == 5 for b in custom.blocks)
    assert plain.HP["nblocks"] == 5 and plain.HP["iResNetBlock"]["activation"] == "ReLU"
    assert plain.blocks[0].hidden_size == 3 and plain.blocks[0].maxiter == 100  # ⌊√9⌋
    custom.HP["iResNetBlock"]["activation"] = "Tanh"  # an instance's HP is its own copy
    assert iResNet.HP["iResNetBlock"]["activation"] == "ReLU"
    block = iResNetBlock(16, variant="mlp")
    assert block.HP["hidden_size"] == 4 and isinstance(block.bottleneck, torch.nn.Sequential)
    assert (block.input_size, block.output_size) == (16, 16)
    assert isinstance(block.residual, torch.Tensor)
    # a block rebuilt from its own HP has the same structure
    assert str(iResNetBlock(**block.HP)) == str(block)


def test_state_dict_round_trip_and_deepcopy():
    torch.manual_seed(4)
    model = scale_weights(iResNet(7, nblocks=2, iResNetBlock={"variant": "mlp"}), 5.0)
    model.train()
    model(torch.randn(8, 7)).sum().backward()
    clone = iResNet(**model.HP)
    clone.load_state_dict(model.state_dict())
    duplicate = copy.deepcopy(model)
    for m in (model, clone, duplicate):
        m.eval()
    y = torch.randn(6, 7)
    with torch.no_grad():
        assert torch.equal(model(y), clone(y)) and torch.equal(model(y), duplicate(y))
        assert torch.equal(model.inverse(y), clone.inverse(y))


@pytest.mark.parametrize("variant", VARIANTS)
def test_torchscript_parity_forward_and_inverse(variant):
    torch.manual_seed(5)
    model = scale_weights(iResNet(8, nblocks=3, iResNetBlock={"variant": variant}), 10.0).eval()
    scripted = torch.jit.script(copy.deepcopy(model))
    x = torch.randn(12, 8)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model(x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(scripted.inverse(x), model.inverse(x), rtol=1e-4, atol=1e-4)
        with warnings.catch_warnings():  # three steps with atol = 0 do not converge
            warnings.simplefilter("ignore")
            early_scripted, early_eager = (
                scripted.inverse(x, 3, 0.0, 0.0),
                model.inverse(x, 3, 0.0, 0.0),
            )
        torch.testing.assert_close(early_scripted, early_eager, rtol=1e-5, atol=1e-5)
        # (indexing a scripted Sequential from Python returns the eager modules; getattr does not)
        assert [int(getattr(scripted.blocks, str(i)).iterations) for i in range(3)] == [3, 3, 3]


def test_torchscript_solves_with_plain_linear_calls_at_every_width():
    # each layer size is its own TorchScript type; the scripted g must still take every linear
    # layer's A′ from g_parameters() (a layer it missed would run its whole forward, σ check and
    # all, at every fixed-point step: right numbers, many times the time)
    for width, variant in ((4, "lowrank"), (9, "mlp"), (16, "lowrank")):
        model = iResNet(width, nblocks=2, iResNetBlock={"variant": variant}).eval()
        scripted = torch.jit.script(copy.deepcopy(model))
        for index, block in enumerate(model.blocks):
            layers = sum(isinstance(module, LinearContraction) for module in block.bottleneck)
            scripted_block = getattr(scripted.blocks, str(index))
            assert len(scripted_block.g_parameters()) == len(block.g_parameters()) == 2 * layers
            assert scripted_block.g.code.count("torch.linear(") == layers


def test_leading_dims():
    torch.manual_seed(6)
    model = iResNet(4, nblocks=2).eval()
    x = torch.randn(3, 5, 4)
    with torch.no_grad():
        y = model(x)
        assert y.shape == x.shape
        torch.testing.assert_close(y[2, 1], model(x[2, 1]))
        torch.testing.assert_close(model.inverse(y), x, rtol=1e-4, atol=1e-4)


def test_short_training_run_lowers_the_loss():
    torch.manual_seed(7)
    model = iResNet(
        2, nblocks=2, iResNetBlock={"variant": "mlp", "hidden_size": 16, "activation": "ELU"}
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.randn(256, 2)
    target = torch.stack([x[:, 0] + 0.5 * x[:, 1] ** 2, x[:, 1]], dim=-1) * 0.5
    losses = []
    for _ in range(60):
        loss = (model(x) - target).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_float64_and_dtype_follow_the_input():
    model = iResNet(3, nblocks=1).double().eval()
    with torch.no_grad():
        assert model.inverse(torch.randn(2, 3, dtype=torch.float64)).dtype == torch.float64


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"iResNetBlock": {"activation": "Swish"}}, "unknown activation 'Swish'"),
        ({"iResNetBlock": {"activation": "GELU"}}, "Lipschitz constant above 1"),
        ({"iResNetBlock": {"activation": "SiLU"}}, "Lipschitz constant above 1"),
        ({"iResNetBlock": {"variant": "dense"}}, "unknown variant 'dense'"),
        ({"iResNetBlock": {"maxiter": 0}}, "maxiter must be an int in 1…1,000,000"),
        ({"iResNetBlock": {"atol": -1.0}}, "atol must be finite and ≥ 0"),
        ({"iResNetBlock": {"hidden_size": 0}}, "hidden_size must be a positive int"),
        ({"iResNetBlock": {"hidden_size": 10**12}}, "hidden_size must be a positive int up to"),
        ({"iResNetBlock": {"colour": "red"}}, "unknown hyperparameter 'colour'"),
        ({"nblocks": 0}, "nblocks must be an int in 1…10,000"),
        ({"depth": 3}, "unknown hyperparameter 'depth'"),
    ],
)
def test_bad_hyperparameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        iResNet(4, **kwargs)


def test_sizes_are_bounded_before_anything_is_allocated():
    """`train --hidden-size 100000000` would allocate and cold-start gigabytes (issue 22, 13)."""
    with pytest.raises(ValueError, match="weights per layer; at most"):
        iResNet(2**12, iResNetBlock={"hidden_size": 2**17})
    with pytest.raises(ValueError, match="input_size must be a positive int up to"):
        iResNetBlock(10**12)


def test_bad_input():
    model = iResNet(4, nblocks=2).eval()
    with pytest.raises(ValueError, match=r"\[\.\.\., 4\].*last dimension is 3"):
        model(torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"\[\.\.\., 4\].*last dimension is 5"):
        model.inverse(torch.randn(2, 5))
    for bad in (float("nan"), float("inf")):
        y = torch.randn(3, 4)
        y[1, 2] = bad
        with pytest.raises(ValueError, match="NaN or Inf"):
            model.inverse(y)
    for solver, message in (
        ({"maxiter": 0}, "maxiter must be an int in 1…1,000,000"),
        ({"maxiter": 2.5}, "maxiter must be an int in 1…1,000,000"),
        ({"atol": float("nan")}, "atol must be finite and ≥ 0"),
        ({"rtol": -1e-3}, "rtol must be finite and ≥ 0"),
    ):
        with pytest.raises(ValueError, match=message):
            model.inverse(torch.randn(2, 4), **solver)
    with pytest.raises(ValueError, match="input_size must be a positive int"):
        iResNet(0)


# --- "Correct under every use" -----------------------------------------------------------------


def test_inverse_calls_do_not_share_results_across_threads():
    torch.manual_seed(8)
    model = scale_weights(iResNet(6, nblocks=3), 10.0).eval()
    y = torch.randn(16, 6)
    with torch.no_grad():
        expected = {m: model.inverse_with_stats(y, maxiter=m)[1].tolist() for m in (1, 40)}
    assert expected[1] == [1, 1, 1] and expected[1] != expected[40]
    mismatches = []

    def worker(maxiter: int) -> None:
        for _ in range(60):
            with torch.no_grad():
                _, steps, _ = model.inverse_with_stats(y, maxiter=maxiter)
            if steps.tolist() != expected[maxiter]:
                mismatches.append((maxiter, steps.tolist()))

    threads = [threading.Thread(target=worker, args=(m,)) for m in (1, 40, 1, 40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert mismatches == []


def test_numpy_hyperparameters_are_plain_and_round_trip(tmp_path):
    from iresnet_onnx import load_checkpoint, save_checkpoint

    model = iResNet(
        np.int64(5),
        nblocks=np.int32(2),
        iResNetBlock={"atol": np.float32(1e-6), "maxiter": np.int64(50), "bias": np.bool_(True)},
    )
    block_hp = model.HP["iResNetBlock"]
    assert type(block_hp["maxiter"]) is int and type(block_hp["atol"]) is float
    assert type(model.HP["nblocks"]) is int and type(block_hp["bias"]) is bool
    loaded = load_checkpoint(save_checkpoint(model, tmp_path / "m.pt"))
    assert loaded.HP == model.HP and loaded.blocks[0].maxiter == 50


@pytest.mark.parametrize("value", [object(), float("nan"), {1, 2}])
def test_hyperparameters_that_json_cannot_hold_are_refused(value):
    with pytest.raises(ValueError, match="iResNetBlock"):
        iResNet(4, iResNetBlock={"atol": value})


def expanding_model() -> iResNet:
    """c = 5 in every layer (a checkpoint can carry that): g is no contraction, x = y − g(x)
    diverges."""
    torch.manual_seed(9)
    model = scale_weights(iResNet(2, nblocks=2, iResNetBlock={"activation": "ELU"}), 10.0).eval()
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name.endswith(".c"):
                buffer.fill_(5.0)
    return model


@pytest.mark.parametrize(
    ("make", "y", "overflows"),
    [
        pytest.param(expanding_model, torch.full((4, 2), 30.0), False, id="c=5"),
        pytest.param(lambda: tight_model("lowrank", "ReLU", n=2).float(),
                     torch.tensor([[3e38, -3e38]]), True, id="huge-finite-input"),
    ],
)  # fmt: skip
def test_a_fixed_point_that_blows_up_is_not_converged(make, y, overflows):
    model = make()
    with torch.no_grad():
        _, steps, residual = model.inverse_with_stats(y)
        with pytest.warns(ConvergenceWarning, match="no convergence") as record:
            model.inverse(y)
    atol = model.blocks[0].atol
    assert not bool((residual <= atol).all()), residual
    if overflows:  # NaN/Inf residual: reported, never "converged", and the iteration stops
        assert not bool(torch.isfinite(residual).all()), residual
        assert any(re.search(r"residual (nan|inf)", str(w.message)) for w in record)
        assert int(steps.max()) < model.blocks[0].maxiter


def test_implicit_gradient_of_the_inverse_matches_the_jacobian():
    """dx*/dy = (∂f/∂x)⁻¹ at x*; backward solves with Jᵀ instead of unrolling the iteration."""
    model = tight_model("mlp", "Tanh")
    y = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    x = model.inverse(y)
    upstream = torch.randn(3, 6, dtype=torch.float64)
    (x * upstream).sum().backward()
    for row in range(3):
        jacobian = torch.autograd.functional.jacobian(model, x[row].detach())
        expected = torch.linalg.solve(jacobian.T, upstream[row])
        torch.testing.assert_close(y.grad[row], expected, rtol=1e-9, atol=1e-10)


def test_implicit_gradient_reaches_the_weights():
    model = tight_model("lowrank", "ELU").train(False)
    y = torch.randn(4, 6, dtype=torch.float64)
    weight = model.blocks[1].bottleneck[0].weight

    def loss() -> torch.Tensor:
        return model.inverse(y).square().sum()

    loss().backward()
    analytic = weight.grad[0, 0].item()
    step = 1e-6
    with torch.no_grad():
        weight[0, 0] += step
    upper = loss().item()
    with torch.no_grad():
        weight[0, 0] -= 2 * step
    lower = loss().item()
    assert analytic == pytest.approx((upper - lower) / (2 * step), rel=1e-5, abs=1e-8)


def test_eval_inverse_with_autograd_records_no_loop():
    """The solve runs without autograd; the graph holds one differentiable evaluation per block."""
    model = make_model_with_steps()
    y = torch.randn(8, 6, requires_grad=True)
    x, steps, _ = model.inverse_with_stats(y)
    assert int(steps.min()) >= 5  # many fixed-point steps…
    nodes = autograd_node_count(x)
    y_once = torch.randn(8, 6, requires_grad=True)
    nodes_forward = autograd_node_count(model(y_once))
    assert nodes <= 3 * nodes_forward  # …but the graph is a few forward passes, not one per step


def make_model_with_steps() -> iResNet:
    torch.manual_seed(10)
    return scale_weights(iResNet(6, nblocks=2), 10.0).eval()


def autograd_node_count(tensor: torch.Tensor) -> int:
    seen, stack = set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        stack.extend(next_fn for next_fn, _ in node.next_functions)
    return len(seen)


LINODENET_CONFIG = {
    "maxiter": 10,
    "dropout": None,
    "bias": True,
    "rezero": False,
    "nblocks": 2,
    "iResNetBlock": {
        "input_size": None,
        "activation": "ReLU",
        "activation_config": {"inplace": False},
        "bias": True,
        "hidden_size": None,
        "maxiter": 100,
        "output_size": None,
        "rezero": False,
    },
}


def test_linodenet_configs_are_accepted():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # defaults of keys that do nothing: silent
        model = iResNet(4, **copy.deepcopy(LINODENET_CONFIG))
    assert len(model.blocks) == 2 and model.blocks[0].maxiter == 100
    assert "activation_config" not in model.HP["iResNetBlock"] and "dropout" not in model.HP
    iResNetBlock(4, activation_config={"inplace": False}, output_size=4, rezero=False)


@pytest.mark.parametrize(
    ("hp", "warning"),
    [
        ({"dropout": 0.1}, "'dropout'=0.1 has no effect"),
        ({"maxiter": 50}, "set iResNetBlock="),
        ({"iResNetBlock": {"activation_config": {"inplace": True}}}, "inplace=True has no effect"),
    ],
)
def test_linodenet_keys_that_do_nothing_warn(hp, warning):
    with pytest.warns(UserWarning, match=re.escape(warning)):
        iResNet(4, **hp)


@pytest.mark.parametrize(
    ("hp", "message"),
    [
        ({"rezero": True}, "rezero=True"),
        (
            {"iResNetBlock": {"output_size": 3}},
            "output_size must be None or the model's input_size",
        ),
        (
            {"iResNetBlock": {"activation_config": {"alpha": 2.0}}},
            "activation_config may only hold",
        ),
        ({"iResNetBlock": {"activaton": "ReLU"}}, "unknown hyperparameter 'activaton'"),
        ({"dropuot": None}, "unknown hyperparameter 'dropuot'"),
    ],
)
def test_linodenet_keys_that_would_change_the_model_are_refused(hp, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        iResNet(4, **hp)


def test_eval_fast_path_is_the_module_path_and_honours_hooks():
    torch.manual_seed(11)
    model = scale_weights(iResNet(6, nblocks=3, iResNetBlock={"variant": "mlp"}), 10.0).eval()
    x = torch.randn(5, 6)
    with torch.no_grad():
        fast = model(x)  # eval, no autograd: iResNetBlock.frozen_forward
        assert torch.equal(fast, model.blocks(x))  # the module path, bit for bit
    seen = []
    handle = model.blocks[1].bottleneck[1].register_forward_hook(lambda *args: seen.append(1))
    with torch.no_grad():
        assert torch.equal(model(x), fast)
    handle.remove()
    assert seen == [1]  # the hooked block took the module path


def test_each_row_stops_on_its_own():
    """A row's inverse does not depend on its batch: the same steps and x alone as in a batch."""
    torch.manual_seed(12)
    model = scale_weights(iResNet(5, nblocks=2), 10.0).double().eval()
    y = torch.randn(9, 5, dtype=torch.float64)
    y[4] *= 40.0  # a row far out needs more steps than the others
    with torch.no_grad():
        x, steps, _ = model.inverse_with_stats(y)
        alone = [model.inverse_with_stats(y[i : i + 1]) for i in range(9)]
    for i, (x_i, _, _) in enumerate(alone):
        torch.testing.assert_close(x[i : i + 1], x_i, rtol=0, atol=1e-12)
    row_steps = torch.stack([s for _, s, _ in alone])  # [rows, blocks]
    assert torch.equal(steps, row_steps.amax(0))  # the block's count is its slowest row's
    assert (row_steps[4] > row_steps[torch.arange(9) != 4].amax(0)).any()
