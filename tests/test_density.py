"""The exact log-determinant (matrix determinant lemma) against autograd's full Jacobian."""

import pytest
import torch

from iresnet_onnx import iResNet, iResNetBlock
from iresnet_onnx._density import activation_derivative
from iresnet_onnx._structure import ACTIVATIONS
from iresnet_onnx.bench import scale_weights


def flow(variant: str, activation: str, n: int = 5, nblocks: int = 3) -> iResNet:
    torch.manual_seed(0)
    hp = {"variant": variant, "activation": activation, "hidden_size": 3}
    return scale_weights(iResNet(n, nblocks=nblocks, iResNetBlock=hp), 10.0).double().eval()


def jacobian_log_det(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The independent reference: slogdet of the full n×n Jacobian from autograd, per sample."""
    rows = [
        torch.autograd.functional.jacobian(model, sample) for sample in x.reshape(-1, x.shape[-1])
    ]
    return torch.linalg.slogdet(torch.stack(rows))[1].reshape(x.shape[:-1])


@pytest.mark.parametrize("variant", ["lowrank", "mlp"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_lemma_equals_the_full_jacobian_in_float64(variant, activation):
    model = flow(variant, activation)
    x = torch.randn(6, 5, dtype=torch.float64) * 2
    expected = jacobian_log_det(model, x)
    torch.testing.assert_close(model.log_abs_det_jacobian(x), expected, rtol=0, atol=1e-12)
    block = model.blocks[1]
    torch.testing.assert_close(
        block.log_abs_det_jacobian(x), jacobian_log_det(block, x), rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_derivatives_follow_torch_at_the_kinks(activation):
    module = getattr(torch.nn, activation)()
    points = torch.tensor(
        [-6.0, -1.0, -0.5, 0.0, 0.5, 1.0, 6.0, 19.0, 20.0, 21.0, 3.0], dtype=torch.float64
    ).requires_grad_()
    (autograd,) = torch.autograd.grad(module(points).sum(), points)
    torch.testing.assert_close(activation_derivative(module, points.detach()), autograd)


def test_log_prob_is_the_change_of_variables_and_has_leading_dims():
    model = flow("mlp", "Tanh", n=4)
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    z = model(x)
    expected = -0.5 * (
        z.square().sum(-1) + 4 * torch.log(torch.tensor(2 * torch.pi, dtype=torch.float64))
    ) + jacobian_log_det(model, x)
    log_p = model.log_prob(x)
    assert log_p.shape == (2, 3)
    torch.testing.assert_close(log_p, expected, rtol=0, atol=1e-12)


def test_gradients_of_the_log_det_match_autograd_through_the_jacobian():
    model = flow("lowrank", "ELU", n=4, nblocks=2).train(False)
    x = torch.randn(3, 4, dtype=torch.float64)
    weight = model.blocks[0].bottleneck[1].weight

    model.log_abs_det_jacobian(x).sum().backward()
    lemma = weight.grad.clone()
    weight.grad = None
    rows = [torch.autograd.functional.jacobian(model, s, create_graph=True) for s in x]
    torch.linalg.slogdet(torch.stack(rows))[1].sum().backward()
    torch.testing.assert_close(lemma, weight.grad, rtol=1e-9, atol=1e-12)


def test_block_and_model_agree_and_sum():
    model = flow("lowrank", "ReLU")
    x = torch.randn(5, 5, dtype=torch.float64)
    total, h = torch.zeros(5, dtype=torch.float64), x
    for block in model.blocks:
        total = total + block.log_abs_det_jacobian(h)
        h = block(h)
    torch.testing.assert_close(model.log_abs_det_jacobian(x), total)
    with pytest.raises(ValueError, match=r"\[\.\.\., 5\]"):
        model.log_prob(torch.randn(2, 4, dtype=torch.float64))
    assert isinstance(model.blocks[0], iResNetBlock)


def test_log_abs_det_of_large_batches_is_right_with_two_threads():
    """torch 2.13's batched CPU slogdet is wrong above ~128×128 with 2 threads; ours is not."""
    from iresnet_onnx._ops import log_abs_det

    matrices = torch.randn(6, 160, 160, dtype=torch.float64) * 0.05 + torch.eye(160)
    expected = torch.stack([torch.linalg.slogdet(m)[1] for m in matrices])
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        actual = log_abs_det(matrices.reshape(2, 3, 160, 160))
    finally:
        torch.set_num_threads(previous)
    torch.testing.assert_close(actual.reshape(6), expected, rtol=0, atol=1e-10)
