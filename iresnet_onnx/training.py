"""Training an iResNet as a normalizing flow: maximum likelihood with the exact log-determinant.

f maps data x to latents z = f(x) with a standard normal prior, so
``log p(x) = log N(f(x); 0, I) + log |det ∂f/∂x|``. For the small widths this package targets the
Jacobian is exact (one vector-Jacobian product per dimension). The contraction keeps every block
invertible, so det ∂f/∂x > 0 and ``inverse`` turns prior samples into data samples.
"""

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .errors import TrainingError
from .iresnet import iResNet
from .layers import LinearContraction

__all__ = ["TrainResult", "load_data", "log_likelihood", "train_flow", "two_moons"]

log = logging.getLogger(__name__)


def two_moons(n: int, noise: float = 0.08, seed: int = 0) -> np.ndarray:
    """The two-moons data set, standardised: ``[n, 2]`` float32."""
    rng = np.random.default_rng(seed)
    upper = rng.random(n) < 0.5
    angle = rng.uniform(0.0, math.pi, n)
    x = np.where(upper, np.cos(angle), 1.0 - np.cos(angle))
    y = np.where(upper, np.sin(angle), 0.5 - np.sin(angle))
    data = np.stack([x, y], axis=1) + noise * rng.standard_normal((n, 2))
    return ((data - data.mean(0)) / data.std(0)).astype(np.float32)


def load_data(path: str | Path) -> np.ndarray:
    """A ``[N, n]`` float array from ``.npy`` or ``.csv`` (comma-separated, optional header row)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"data file {path}: no such file")
    try:
        if path.suffix == ".npy":
            data = np.load(path, allow_pickle=False)
        elif path.suffix == ".csv":
            data = np.genfromtxt(
                path, delimiter=",", dtype=np.float64, skip_header=_header_rows(path), ndmin=2
            )
        else:
            raise ValueError(f"data file {path}: expected .npy or .csv")
    except (OSError, ValueError) as error:
        if str(path) in str(error):
            raise
        raise ValueError(f"data file {path}: cannot read it ({error})") from error
    data = np.asarray(data)
    if data.ndim != 2 or data.shape[0] < 2 or data.shape[1] < 1:
        raise ValueError(
            f"data file {path}: expected shape [N, n] with N ≥ 2, got {list(data.shape)}"
        )
    if data.dtype.kind not in "fiu" or not np.isfinite(data).all():
        raise ValueError(f"data file {path}: values must be finite numbers")
    return data.astype(np.float32)


def _header_rows(path: Path) -> int:
    with open(path) as handle:
        first = handle.readline().split(",")
    try:
        [float(cell) for cell in first]
    except ValueError:
        return 1
    return 0


def log_likelihood(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """log p(x) per sample under the flow; differentiable in the model's parameters."""
    x = x.detach().requires_grad_(True)
    z = model(x)
    rows = [torch.autograd.grad(z[:, i].sum(), x, create_graph=True)[0] for i in range(x.shape[-1])]
    jacobian = torch.stack(rows, dim=1)  # [batch, n, n]: row i is ∂z_i/∂x
    _, logdet = torch.linalg.slogdet(jacobian)
    log_prior = -0.5 * (z.square().sum(-1) + x.shape[-1] * math.log(2 * math.pi))
    return log_prior + logdet


@dataclass
class TrainResult:
    model: iResNet
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def train_flow(
    data: np.ndarray,
    *,
    hp: dict[str, Any] | None = None,
    epochs: int = 40,
    batch_size: int = 256,
    lr: float = 5e-3,
    seed: int = 0,
    progress: bool = True,
    on_epoch: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Fit an iResNet flow to ``data`` ([N, n]) by maximum likelihood with Adam.

    Returns the model in eval mode with its power-iteration vectors converged for the final
    weights, so an export's power-iteration Loops start converged.
    """
    if epochs < 1 or batch_size < 1 or not 0 < lr < math.inf:
        raise ValueError(
            f"need epochs ≥ 1, batch_size ≥ 1 and a finite lr > 0; got {epochs}, {batch_size}, {lr}"
        )
    torch.manual_seed(seed)
    tensor = torch.from_numpy(np.asarray(data, np.float32))
    model = iResNet(tensor.shape[1], **(hp or {}))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    generator = torch.Generator().manual_seed(seed)
    result = TrainResult(model)
    started = time.perf_counter()
    bar = tqdm(range(epochs), desc="training", unit="epoch", disable=not progress)
    for epoch in bar:
        model.train()
        total, count = 0.0, 0
        for step, index in enumerate(
            torch.randperm(len(tensor), generator=generator).split(batch_size)
        ):
            loss = -log_likelihood(model, tensor[index]).mean()
            if not bool(torch.isfinite(loss)):
                bar.close()
                raise TrainingError(
                    f"training stopped: the loss is {loss.item()} at epoch {epoch + 1}, batch "
                    f"{step + 1}; check the data (largest |value| {float(tensor.abs().max()):.3g}) "
                    f"and the learning rate ({lr:g}). Nothing was saved."
                )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, count = total + loss.item() * len(index), count + len(index)
        scheduler.step()
        result.losses.append(total / count)
        bar.set_postfix(nll=f"{result.losses[-1]:.3f}")
        if on_epoch is not None:
            on_epoch(epoch, result.losses[-1])
    for module in model.modules():
        if isinstance(module, LinearContraction):
            module.refresh_power_vector()
    result.seconds = time.perf_counter() - started
    log.info(
        "trained for %d epochs in %.1f s, final NLL %.3f", epochs, result.seconds, result.losses[-1]
    )
    model.eval()
    return result
