"""Shared builders: small models with their weights scaled up so the contraction really bites."""

import os

# One pytest-xdist worker per core, each with torch's and OpenBLAS's pool of one thread per core,
# oversubscribes the machine: pool threads that wait spin, on cores the other worker needs. Each
# worker keeps to one thread (set before torch or numpy is imported), and so does every runtime
# session not given a count (onnxruntime's and OpenVINO's pools spin alike); a test that needs more
# threads asks for them, as the benchmarks do.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("IRESNET_ONNX_THREADS", "1")

import pytest
import torch

from iresnet_onnx import LinearContraction, export, iResNet, runtimes
from iresnet_onnx.bench import suite_model

CHILD_PROCESS_RUNTIMES = ("node", "web")
"""Runtimes in a Node.js child or a browser page: each session starts a process (seconds for a
page), so the matrices run on the in-process ones and tests/runtimes/test_js.py covers these."""


def onnx_runtimes(loop: bool = True) -> list[str]:
    """The in-process ONNX runtimes here; without ``loop``, tract too (it runs no Loop)."""
    return [
        name
        for name in runtimes.available()
        if name.partition(":")[0] not in ("torch", *CHILD_PROCESS_RUNTIMES)
        and (not loop or not name.startswith("tract:"))
    ]


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
