"""LinearContraction: contraction property, buffers, eval determinism, TorchScript, bad input."""

import copy

import pytest
import torch

from iresnet_onnx import LinearContraction
from iresnet_onnx._contraction import _KnownSigma
from iresnet_onnx._spectral import power_iteration


def scaled_layer(m: int, n: int, factor: float = 100.0, **kwargs) -> LinearContraction:
    torch.manual_seed(0)
    layer = LinearContraction(m, n, **kwargs)
    with torch.no_grad():
        layer.weight.mul_(factor)
    return layer


def autograd_node_names(tensor: torch.Tensor) -> set[str]:
    seen, stack, names = set(), [tensor.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(type(node).__name__)
        stack.extend(next_fn for next_fn, _ in node.next_functions)
    return names


@pytest.mark.parametrize(("m", "n"), [(8, 8), (16, 3), (3, 16)])
@pytest.mark.parametrize("training", [True, False])
def test_contraction_after_weights_scaled_up(m, n, training):
    layer = scaled_layer(m, n).train(training)
    x, y = torch.randn(64, m), torch.randn(64, m)
    with torch.no_grad():
        fx, fy = layer(x), layer(y)
        effective = layer.effective_weight()
    assert (
        torch.linalg.vector_norm(fx - fy, dim=-1) <= torch.linalg.vector_norm(x - y, dim=-1)
    ).all()
    sigma_effective = torch.linalg.matrix_norm(effective.double(), 2)
    assert sigma_effective <= 0.97 * (1 + 1e-5)
    assert sigma_effective >= 0.97 * (1 - 1e-5)  # weights ×100: the contraction really bites


def test_small_weights_are_not_scaled():
    layer = scaled_layer(6, 6, factor=1e-3).eval()
    with torch.no_grad():
        torch.testing.assert_close(layer.effective_weight(), layer.weight, rtol=0, atol=0)


@pytest.mark.parametrize("training", [True, False])
def test_spectral_norm_buffer_holds_sigma_of_current_weights(training):
    layer = scaled_layer(9, 5, factor=3.0).train(training)
    layer(torch.randn(2, 9))
    expected = torch.linalg.matrix_norm(layer.weight.detach().double(), 2)
    torch.testing.assert_close(layer.spectral_norm.double(), expected, rtol=1e-6, atol=0)
    assert layer.spectral_norm.grad_fn is None


def test_eval_is_deterministic_and_changes_no_state():
    layer = scaled_layer(7, 7, factor=2.0)
    with torch.no_grad():
        layer.weight.add_(0.1 * torch.randn_like(layer.weight))  # stored vector now stale
    layer.eval()
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    x = torch.randn(5, 7)
    with torch.no_grad():
        first, second = layer(x), layer(x)
    third = layer(x)  # grad-enabled eval takes the autograd path: still no state change
    assert torch.equal(first, second) and torch.equal(first, third.detach())
    for key, value in layer.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_training_warm_start_converges_in_few_iterations():
    layer = scaled_layer(32, 32, factor=1.0).train()
    optimizer = torch.optim.SGD(layer.parameters(), lr=1e-3)
    iterations = []
    for _ in range(10):
        start = layer.power_vector.clone()
        loss = layer(torch.randn(16, 32)).square().mean()
        iterations.append(power_iteration(layer.weight.detach(), start, 0.0, 1e-4, 50).iterations)
        assert not torch.equal(start, layer.power_vector) or iterations[-1] == 0
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert max(iterations) <= 3, iterations


def test_autograd_graph_goes_through_spectral_norm():
    layer = scaled_layer(4, 6).train()
    out = layer(torch.randn(3, 4)).sum()
    assert any("SpectralNorm" in name for name in autograd_node_names(out))
    out.backward()
    assert torch.isfinite(layer.weight.grad).all()


def test_state_dict_round_trip_reproduces_outputs():
    layer = scaled_layer(6, 4, factor=5.0).train()
    layer(torch.randn(2, 6))  # moves the warm-start vector
    clone = LinearContraction(6, 4)
    clone.load_state_dict(layer.state_dict())
    layer.eval(), clone.eval()
    x = torch.randn(10, 6)
    with torch.no_grad():
        assert torch.equal(layer(x), clone(x))
    assert "power_vector" in layer.state_dict()


def reference_output(layer: LinearContraction, x: torch.Tensor) -> torch.Tensor:
    """f(x) from the layer's current tensors, with σ from an SVD (independent of the layer's code)."""
    weight = layer.weight.detach().double()
    sigma = torch.linalg.matrix_norm(weight, 2)
    effective = weight * torch.clamp(layer.c.double() / sigma, max=1.0)
    bias = None if layer.bias is None else layer.bias.detach().double()
    return torch.nn.functional.linear(x.double(), effective, bias).to(x.dtype)


def assert_matches_reference(layer: LinearContraction, x: torch.Tensor) -> None:
    with torch.no_grad():
        torch.testing.assert_close(layer(x), reference_output(layer, x), rtol=1e-5, atol=1e-6)


EDITS = {
    "in-place under no_grad": lambda layer: layer.weight.mul_(50.0),
    "through .data in place": lambda layer: layer.weight.data.mul_(0.5),
    "new tensor through .data": lambda layer: setattr(
        layer.weight, "data", layer.weight.data * -2.0
    ),
    "vector_to_parameters": lambda layer: torch.nn.utils.vector_to_parameters(
        torch.nn.utils.parameters_to_vector(layer.parameters()) * 3.0, layer.parameters()
    ),
    "load_state_dict": lambda layer: layer.load_state_dict(
        {k: v * 0.25 if k == "weight" else v for k, v in layer.state_dict().items()}
    ),
    "c buffer": lambda layer: layer.c.fill_(0.05),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_eval_cache_never_serves_weights_it_has_not_seen(edit):
    # small weights (σ < c), so that rescaling the weight changes A′ (A′ = A·min(c/σ, 1))
    layer = scaled_layer(6, 6, factor=0.1).eval()
    x = torch.randn(4, 6)
    with torch.no_grad():
        before = layer(x)  # fills the cache
        assert_matches_reference(layer, x)
        EDITS[edit](layer)
    assert_matches_reference(layer, x)
    with torch.no_grad():
        assert not torch.allclose(layer(x), before)


def test_cache_filled_in_inference_mode_serves_autograd_later():
    layer = scaled_layer(5, 5).eval().requires_grad_(False)  # a frozen flow
    with torch.inference_mode():
        layer(torch.randn(2, 5))
    x = torch.randn(3, 5, requires_grad=True)
    layer(x).sum().backward()  # used to be "Inference tensors cannot be saved for backward"
    # f is affine: ∂Σf/∂x is the column sums of A′, the same for every row
    columns = reference_output(layer, torch.eye(5)) - reference_output(layer, torch.zeros(1, 5))
    torch.testing.assert_close(x.grad, columns.sum(-1).expand(3, 5), rtol=1e-5, atol=1e-6)


def eval_gradients(layer: LinearContraction, composed: bool) -> tuple[torch.Tensor, ...]:
    """∂L/∂A, ∂L/∂c and a Hessian-vector product in A, for L = ⟨R, A′⟩², through the eval
    layer's A′ (composed: σ, c/σ, the minimum and the product as separate autograd ops)."""
    generator = torch.Generator().manual_seed(1)
    probe = torch.randn(layer.weight.shape, generator=generator, dtype=torch.float64)
    direction = torch.randn(layer.weight.shape, generator=generator, dtype=torch.float64)
    if composed:
        known = layer._eval_sigma
        folded = layer.weight * torch.minimum(
            layer.c / _KnownSigma.apply(layer.weight, known), layer.one
        )
    else:
        folded = layer.effective_weight()
    loss = (probe * folded).sum() ** 2
    grad_weight, grad_c = torch.autograd.grad(loss, (layer.weight, layer.c), create_graph=True)
    (curvature,) = torch.autograd.grad((grad_weight * direction).sum(), layer.weight)
    return grad_weight.detach(), grad_c.detach(), curvature


@pytest.mark.parametrize("sigma_vs_c", ["above", "below", "equal"])
def test_eval_gradients_of_the_kept_folded_weight(sigma_vs_c):
    """The eval path's one autograd node for A′ gives the gradients (and second derivatives) of
    the ops it stands for, on both sides of the minimum and at its tie; against an SVD's σ too."""
    layer = scaled_layer(5, 4, factor={"above": 100.0, "below": 0.01, "equal": 1.0}[sigma_vs_c])
    layer = layer.double().eval()
    # u and v as exact as float64 allows, for the SVD's: at the default rtol they are good to ~1e-4
    layer.power_atol, layer.power_rtol, layer.power_maxiter = 0.0, 1e-13, 100_000
    with torch.no_grad():
        layer(torch.randn(1, 5, dtype=torch.float64))  # keeps σ
        if sigma_vs_c == "equal":
            layer.c.copy_(layer._eval_sigma.sigma)  # c/σ is exactly 1: the minimum ties
            layer(torch.randn(1, 5, dtype=torch.float64))
    layer.c.requires_grad_(True)
    assert "_KeptFoldedBackward" in autograd_node_names(layer.effective_weight())
    one_node = eval_gradients(layer, composed=False)
    for got, expected in zip(one_node, eval_gradients(layer, composed=True)):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    if sigma_vs_c != "equal":  # an independent σ: the SVD's
        weight = layer.weight
        sigma = torch.linalg.matrix_norm(weight, 2)
        svd = weight * torch.minimum(layer.c / sigma, layer.one)
        probe = torch.randn(weight.shape, generator=torch.Generator().manual_seed(1),
                            dtype=torch.float64)  # fmt: skip
        expected = torch.autograd.grad((probe * svd).sum() ** 2, (weight, layer.c))
        for got, reference in zip(one_node[:2], expected):
            torch.testing.assert_close(got, reference, rtol=1e-6, atol=1e-9)


def test_deepcopy_of_a_cached_layer_is_independent():
    layer = scaled_layer(5, 5, factor=0.1).eval()
    x = torch.randn(3, 5)
    with torch.no_grad():
        layer(x)  # the cache is filled before the copy
    duplicate = copy.deepcopy(layer)
    with torch.no_grad():
        layer.weight.mul_(0.1)
    assert_matches_reference(duplicate, x)
    assert_matches_reference(layer, x)
    with torch.no_grad():
        assert not torch.allclose(layer(x), duplicate(x))


def test_cache_follows_dtype_changes():
    layer = scaled_layer(5, 5).eval()
    x = torch.randn(4, 5)
    with torch.no_grad():
        layer(x)
    layer.double()
    with torch.no_grad():
        assert layer(x.double()).dtype == torch.float64
    assert_matches_reference(layer, x.double())


def test_leading_dims_and_dtypes():
    layer = scaled_layer(3, 7).eval().double()
    x = torch.randn(2, 4, 5, 3, dtype=torch.float64)
    with torch.no_grad():
        y = layer(x)
    assert y.shape == (2, 4, 5, 7) and y.dtype == torch.float64
    torch.testing.assert_close(y[1, 2, 3], layer(x[1, 2, 3]).detach())


def test_no_bias():
    layer = LinearContraction(4, 4, bias=False)
    assert layer.bias is None
    with torch.no_grad():
        assert torch.equal(layer(torch.zeros(1, 4)), torch.zeros(1, 4))


def test_torchscript_parity():
    layer = scaled_layer(6, 3, factor=10.0)
    scripted = torch.jit.script(copy.deepcopy(layer))
    x = torch.randn(8, 6)
    for mode in (True, False):
        layer.train(mode), scripted.train(mode)
        torch.testing.assert_close(scripted(x), layer(x), rtol=1e-6, atol=1e-6)
    # the scripted σ = uᵀAv carries the gradient u vᵀ too
    scripted.train()
    scripted(x).sum().backward()
    layer(x).sum().backward()
    torch.testing.assert_close(scripted.weight.grad, layer.weight.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("c", [0.0, 1.0, 1.5, -0.2, "0.5", True, float("nan")])
def test_bad_c(c):
    with pytest.raises(ValueError, match=r"c must lie in \(0, 1\)"):
        LinearContraction(3, 3, c=c)


def test_wrong_width_names_both_sizes():
    layer = LinearContraction(4, 2)
    with pytest.raises(ValueError, match=r"\[\.\.\., 4\].*last dimension is 5"):
        layer(torch.randn(3, 5))


@pytest.mark.parametrize(("m", "n"), [(0, 3), (3, 0), (2.5, 3)])
def test_bad_sizes(m, n):
    with pytest.raises(ValueError, match="must be a positive int"):
        LinearContraction(m, n)


def test_a_scripted_layer_keeps_sigma_only_in_eval_without_autograd():
    """TorchScript keeps σ for eval under no_grad; a call that needs σ's gradient, a dtype change
    and training each measure it again, and the gradient is the eager layer's."""
    layer = scaled_layer(6, 5).eval()  # σ > c: A′ depends on σ, and so does the gradient
    scripted = torch.jit.script(copy.deepcopy(layer))
    x = torch.randn(4, 6)
    with torch.no_grad():
        scripted(x)  # keeps σ
        assert scripted._scripted_sigma is not None
    (layer(x).square().sum()).backward()
    (scripted(x).square().sum()).backward()
    torch.testing.assert_close(scripted.weight.grad, layer.weight.grad, rtol=1e-5, atol=1e-6)
    scripted.double()
    with torch.no_grad():
        torch.testing.assert_close(
            scripted(x.double()), reference_output(scripted, x.double()), rtol=1e-6, atol=1e-9
        )
    scripted.train()
    before = scripted.power_vector.clone()
    with torch.no_grad():
        scripted.weight.add_(torch.randn_like(scripted.weight))
    scripted(x.double())
    assert not torch.equal(scripted.power_vector, before)  # training moves the warm start


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_a_scripted_layer_never_serves_weights_it_has_not_seen(edit):
    layer = scaled_layer(6, 6, factor=0.1).eval()
    scripted = torch.jit.script(copy.deepcopy(layer))
    x = torch.randn(4, 6)
    with torch.no_grad():
        before = scripted(x)  # a first call, so an edit after it must show
        EDITS[edit](scripted)
        torch.testing.assert_close(scripted(x), reference_output(scripted, x), rtol=1e-5, atol=1e-6)
        assert not torch.allclose(scripted(x), before)
