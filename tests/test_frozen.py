"""freeze(): the plain inference form agrees with the model, is a snapshot, and changes nothing."""

import copy

import pytest
import torch

from iresnet_onnx import freeze, iResNet, iResNetBlock
from iresnet_onnx._frozen import FrozenBlock, FrozenIResNet
from iresnet_onnx.errors import ConvergenceWarning, UsageError, UsageTypeError
from tests.conftest import make_model

TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-12}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("variant", ["lowrank", "mlp"])
def test_frozen_model_agrees_with_the_model(dtype, variant):
    model = make_model(6, 3, variant=variant, activation="ELU", dtype=dtype, seed=1)
    frozen = freeze(model)
    assert isinstance(frozen, FrozenIResNet) and frozen.HP == model.HP
    tol = TOLERANCE[dtype]
    x = torch.randn(9, 6, dtype=dtype)
    with torch.no_grad():
        torch.testing.assert_close(frozen(x), model(x), rtol=tol, atol=tol)
        torch.testing.assert_close(frozen.log_prob(x), model.log_prob(x), rtol=tol, atol=tol)
        torch.testing.assert_close(
            frozen.log_abs_det_jacobian(x), model.log_abs_det_jacobian(x), rtol=tol, atol=tol
        )
        x_model, steps_model, _ = model.inverse_with_stats(x)
        x_frozen, steps_frozen, _ = frozen.inverse_with_stats(x)
    assert steps_frozen.tolist() == steps_model.tolist()
    torch.testing.assert_close(x_frozen, x_model, rtol=10 * tol, atol=10 * tol)
    with torch.no_grad():
        torch.testing.assert_close(frozen.inverse(frozen(x)), x, rtol=1e-4, atol=1e-4)


def test_a_frozen_block_is_a_block():
    torch.manual_seed(2)
    block = make_model(5, 1, variant="mlp", activation="Tanh").blocks[0]
    frozen = freeze(block)
    assert isinstance(frozen, FrozenBlock)
    y = torch.randn(4, 2, 5)  # leading dims
    with torch.no_grad():
        torch.testing.assert_close(frozen(y), block(y))
        torch.testing.assert_close(frozen.inverse(y), block.inverse(y), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(frozen.log_abs_det_jacobian(y), block.log_abs_det_jacobian(y))


def test_freeze_is_a_snapshot_and_changes_nothing_in_the_model():
    model = make_model(4, 2, seed=3).train()  # training mode: σ must not move the warm start
    before = copy.deepcopy(model.state_dict())
    frozen = freeze(model)
    assert model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    x = torch.randn(3, 4)
    with torch.no_grad():
        snapshot = frozen(x)
        for parameter in model.parameters():
            parameter.mul_(0.5)
        assert torch.equal(frozen(x), snapshot)  # later edits do not reach the frozen form…
        assert not torch.allclose(model.eval()(x), snapshot)  # …while the model follows them
        torch.testing.assert_close(freeze(model)(x), model(x))  # freeze again: the new weights


def test_frozen_forms_move_between_dtypes_and_copy():
    model = make_model(4, 2, seed=4)
    frozen = freeze(model).double()
    x = torch.randn(5, 4, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(frozen(x), model.double()(x), rtol=1e-6, atol=1e-6)
        duplicate = copy.deepcopy(frozen)
        torch.testing.assert_close(duplicate(x), frozen(x))
    assert set(frozen.state_dict()) == set(duplicate.state_dict())


def test_the_frozen_inverse_has_the_implicit_gradient():
    model = make_model(3, 2, variant="mlp", activation="Tanh", dtype=torch.float64, seed=5,
                       atol=1e-13, rtol=1e-13, maxiter=2000)  # fmt: skip
    frozen = freeze(model)
    y = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    x = frozen.inverse(y)
    upstream = torch.randn(2, 3, dtype=torch.float64)
    (x * upstream).sum().backward()
    for row in range(2):
        jacobian = torch.autograd.functional.jacobian(frozen, x[row].detach())
        expected = torch.linalg.solve(jacobian.T, upstream[row])
        torch.testing.assert_close(y.grad[row], expected, rtol=1e-9, atol=1e-10)


def test_bad_input_to_freeze_and_to_frozen_forms():
    with pytest.raises(UsageTypeError, match="freeze takes an iResNet or iResNetBlock"):
        freeze(torch.nn.Linear(2, 2))
    frozen = freeze(iResNet(4, nblocks=1))
    with pytest.raises(UsageError, match=r"\[\.\.\., 4\].*last dimension is 3"):
        frozen(torch.randn(2, 3))
    with pytest.raises(UsageError, match="NaN or Inf"):
        frozen.inverse(torch.tensor([[float("nan"), 0.0, 0.0, 0.0]]))
    with pytest.raises(UsageError, match="maxiter must be an int"):
        frozen.inverse(torch.randn(2, 4), maxiter=0)
    with pytest.warns(ConvergenceWarning, match="no convergence in 1 iterations"):
        freeze(make_model(4, 1)).inverse(torch.randn(2, 4), maxiter=1, atol=0.0)
    assert isinstance(freeze(iResNetBlock(3)), FrozenBlock)
