"""iResNetBlock and iResNet: round trips, HP handling, TorchScript, training, bad input."""

import copy
import warnings

import pytest
import torch

from iresnet_onnx import iResNet, iResNetBlock
from iresnet_onnx.bench import scale_weights
from iresnet_onnx.iresnet import ConvergenceWarning

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
        ({"iResNetBlock": {"maxiter": 0}}, "maxiter must be an int ≥ 1"),
        ({"iResNetBlock": {"atol": -1.0}}, "atol must be finite and ≥ 0"),
        ({"iResNetBlock": {"hidden_size": 0}}, "hidden_size must be a positive int"),
        ({"iResNetBlock": {"colour": "red"}}, "unknown hyperparameter 'colour'"),
        ({"nblocks": 0}, "nblocks must be a positive int"),
        ({"depth": 3}, "unknown hyperparameter 'depth'"),
    ],
)
def test_bad_hyperparameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        iResNet(4, **kwargs)


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
        ({"maxiter": 0}, "maxiter must be an int ≥ 1"),
        ({"maxiter": 2.5}, "maxiter must be an int ≥ 1"),
        ({"atol": float("nan")}, "atol must be finite and ≥ 0"),
        ({"rtol": -1e-3}, "rtol must be finite and ≥ 0"),
    ):
        with pytest.raises(ValueError, match=message):
            model.inverse(torch.randn(2, 4), **solver)
    with pytest.raises(ValueError, match="input_size must be a positive int"):
        iResNet(0)
