"""Training an iResNet as a normalizing flow: maximum likelihood with the exact log-determinant.

f maps data x to latents z = f(x) with a standard normal prior, so
``log p(x) = log N(f(x); 0, I) + log |det ∂f/∂x|`` — :meth:`iResNet.log_prob`, whose log-determinant
is exact and costs a hidden×hidden determinant per block (the matrix determinant lemma, see
:mod:`iresnet_onnx._density`), not n vector-Jacobian products. The contraction keeps every block
invertible, so det ∂f/∂x > 0 and ``inverse`` turns prior samples into data samples.
"""

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ._contraction import LinearContraction
from ._iresnet import iResNet
from .errors import TrainingError, UsageError

__all__ = ["TrainResult", "log_likelihood", "train_flow"]

log = logging.getLogger(__name__)


def log_likelihood(model: iResNet, x: torch.Tensor) -> torch.Tensor:
    """log p(x) per sample under the flow; differentiable in the model's parameters."""
    return model.log_prob(x)


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
        raise UsageError(
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
