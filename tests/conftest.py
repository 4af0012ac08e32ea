"""Shared builders: small models with their weights scaled up so the contraction really bites."""

import pytest
import torch

from iresnet_onnx import LinearContraction, export, iResNet
from iresnet_onnx.bench import suite_model


def make_model(
    n: int = 8,
    nblocks: int = 2,
    *,
    variant: str = "lowrank",
    activation: str = "ReLU",
    scale: float = 10.0,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    **block_hp,
) -> iResNet:
    """An eval-mode iResNet whose weights are ×``scale`` (so every σ is renormalised)."""
    model = suite_model(n, nblocks, scale, seed, variant=variant, activation=activation, **block_hp)
    return model.to(dtype)


def stale_power_vectors(model: iResNet, seed: int = 0, cold: tuple[int, ...] = ()) -> iResNet:
    """Replace the layers' warm-start vectors by random unit vectors (stale: the power iteration
    must iterate from them), or by zeros for the layers numbered in ``cold`` (cold start)."""
    generator = torch.Generator().manual_seed(seed)
    layers = [m for m in model.modules() if isinstance(m, LinearContraction)]
    with torch.no_grad():
        for index, layer in enumerate(layers):
            vector = layer.power_vector
            if index in cold:
                vector.zero_()
            else:
                fresh = torch.randn(vector.shape, generator=generator, dtype=vector.dtype)
                vector.copy_(fresh / fresh.norm())
    return model


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """export(model, dir, **kwargs) once per distinct call in the whole session (exports are cached)."""
    cache = {}

    def get(key: str, model: iResNet, **kwargs):
        if key not in cache:
            cache[key] = export(model, tmp_path_factory.mktemp(key), **kwargs)
        return cache[key]

    return get
