"""training: the data sets, the exact log-likelihood and the training loop."""

import math

import numpy as np
import pytest
import torch

from iresnet_onnx import LinearContraction, iResNet
from iresnet_onnx._data import load_data, two_moons
from iresnet_onnx._spectral import power_iteration
from iresnet_onnx._training import log_likelihood, train_flow
from iresnet_onnx.errors import UsageError


def test_two_moons_is_standardised_and_reproducible():
    data = two_moons(2000, seed=3)
    assert data.shape == (2000, 2) and data.dtype == np.float32
    np.testing.assert_allclose(data.mean(0), 0.0, atol=1e-6)
    np.testing.assert_allclose(data.std(0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(data, two_moons(2000, seed=3))
    assert not np.array_equal(data, two_moons(2000, seed=4))


def test_log_likelihood_matches_the_change_of_variables_by_hand():
    torch.manual_seed(0)
    model = iResNet(3, nblocks=2, iResNetBlock={"activation": "Tanh", "variant": "mlp"}).eval()
    x = torch.randn(5, 3)
    jacobian = torch.stack([torch.autograd.functional.jacobian(model, row) for row in x])
    z = model(x).detach()
    expected = (
        -0.5 * (z.square().sum(-1) + 3 * math.log(2 * math.pi)) + torch.linalg.slogdet(jacobian)[1]
    )
    torch.testing.assert_close(log_likelihood(model, x).detach(), expected, rtol=1e-5, atol=1e-5)
    assert (torch.linalg.det(jacobian) > 0).all()  # I + contraction: orientation preserving


def test_train_flow_lowers_the_nll_and_leaves_converged_vectors():
    data = two_moons(512, seed=1)
    result = train_flow(
        data, hp={"nblocks": 2, "iResNetBlock": {"variant": "mlp", "hidden_size": 16}},
        epochs=5, batch_size=128, lr=1e-2, progress=False,
    )  # fmt: skip
    assert len(result.losses) == 5 and result.losses[-1] < result.losses[0]
    assert not result.model.training
    for layer in result.model.modules():
        if isinstance(layer, LinearContraction):
            rerun = power_iteration(layer.weight.detach(), layer.power_vector, 0.0, 1e-4, 50)
            assert rerun.iterations == 0  # an export's power-iteration Loop starts converged


def test_train_flow_rejects_bad_settings():
    with pytest.raises(UsageError, match="need epochs ≥ 1"):
        train_flow(two_moons(16), epochs=0, progress=False)


def test_load_data(tmp_path):
    data = np.random.default_rng(0).standard_normal((10, 4))
    np.save(tmp_path / "a.npy", data)
    np.savetxt(tmp_path / "b.csv", data, delimiter=",")
    np.savetxt(tmp_path / "c.csv", data, delimiter=",", header="p,q,r,s", comments="")
    for name in ("a.npy", "b.csv", "c.csv"):
        loaded = load_data(tmp_path / name)
        assert loaded.dtype == np.float32
        np.testing.assert_allclose(loaded, data, rtol=1e-6)
    (tmp_path / "d.txt").write_text("1,2")
    for name, message in (("missing.npy", "no such file"), ("d.txt", "expected .npy or .csv")):
        with pytest.raises(ValueError, match=message):
            load_data(tmp_path / name)
