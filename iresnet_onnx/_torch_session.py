"""Eager PyTorch behind the session interface, so that parity is runtime against runtime.

From a model object, or from an exported graph: then the checkpoint ``model.pt`` beside it is loaded
and the graph's metadata says which direction to run. The only adapter that needs torch, imported
when a torch session is asked for.
"""

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._checkpoint import load_checkpoint
from ._density import forward_and_log_det, gaussian_log_density
from ._iresnet import iResNet, iResNetBlock
from .runtimes._session import GRAPHS, ModelInfo, Session, read_model

CHECKPOINT_NAME = "model.pt"


class EagerSession(Session):
    """The eager model as a session. Each call's step counts and residuals come from that call
    (``inverse_with_stats``), so one session can serve several threads."""

    runtime = "torch"

    def __init__(
        self,
        source: str | Path | iResNet | iResNetBlock,
        device: str = "cpu",
        *,
        direction: str | None = None,
        checkpoint: str | Path | None = None,
    ):
        if isinstance(source, (iResNet, iResNetBlock)):
            model = copy.deepcopy(source)  # the session sets eval mode and a device: not on yours
            if direction not in GRAPHS:
                raise ValueError(
                    f"a torch session of a model object needs a direction: {', '.join(GRAPHS)}"
                )
            dtype = np.dtype(str(next(model.parameters()).dtype).removeprefix("torch."))
            info = ModelInfo(
                path=Path(f"<{type(model).__name__}>"),
                direction=direction,
                dtype=dtype,
                input_size=model.input_size,
                nblocks=len(model.blocks) if isinstance(model, iResNet) else 1,
                spectral_norm="eager",
                hp=model.HP,
            )
        else:
            _, info = read_model(source)
            model = load_checkpoint(checkpoint or Path(source).with_name(CHECKPOINT_NAME))
        super().__init__(info)
        self.device = device
        self.model = model.to(device).eval()

    def _forward_and_log_det(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(self.model, iResNet):
            return self.model.forward_and_log_det(x)
        return forward_and_log_det(self.model, x)

    def _run(self, batch: Any, solver: dict[str, Any]) -> dict[str, np.ndarray]:
        tensor = torch.as_tensor(batch).to(self.device)
        with torch.no_grad():
            if self.direction == "forward":
                return {"y": self.model(tensor).cpu().numpy()}
            if self.direction == "density":
                z, log_det = self._forward_and_log_det(tensor)
                log_prob = gaussian_log_density(z) + log_det
                return {
                    "log_prob": log_prob.cpu().numpy(),
                    "log_det": log_det.cpu().numpy(),
                    "z": z.cpu().numpy(),
                }
            x, iterations, residual = self.model.inverse_with_stats(
                tensor, solver.get("maxiter"), solver.get("atol"), solver.get("rtol")
            )
        return {
            "x": x.cpu().numpy(),
            "iterations": iterations.reshape(-1).cpu().numpy().astype(np.int64),
            "residual": residual.reshape(-1).cpu().numpy(),
        }
