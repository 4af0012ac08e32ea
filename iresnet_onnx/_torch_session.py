"""Eager PyTorch behind the session interface, so that parity is runtime against runtime.

From a model object, or from an exported graph: then the export folder's checkpoint beside it is
loaded and the graph's metadata says which graph to run. This module is the ``torch`` runtime: the
package registers :data:`RUNTIME` in the ``iresnet_onnx.runtimes`` entry point group, so the
torch-free runtime side finds it without importing the model side.
"""

import copy
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._checkpoint import load_checkpoint
from ._density import gaussian_log_density
from ._iresnet import iResNet, iResNetBlock
from ._layout import CHECKPOINT
from .errors import UsageError, UsageTypeError
from .graphs import GRAPHS
from .runtimes import Runtime
from .runtimes._session import ModelInfo, Session, read_model

__all__ = ["RUNTIME", "EagerSession"]


class EagerSession(Session):
    """The eager model as a session. Each call's step counts and residuals come from that call
    (``inverse_with_stats``), so one session can serve several threads."""

    runtime = "torch"

    def __init__(
        self,
        source: str | Path | iResNet | iResNetBlock,
        device: str = "cpu",
        *,
        graph: str | None = None,
        checkpoint: str | Path | None = None,
    ):
        if isinstance(source, (iResNet, iResNetBlock)):
            model = copy.deepcopy(source)  # the session sets eval mode and a device: not on yours
            if graph not in GRAPHS:
                raise UsageError(
                    f"a torch session of a model object needs a graph: {', '.join(GRAPHS)}"
                )
            info = ModelInfo(
                path=Path(f"<{type(model).__name__}>"),
                graph=GRAPHS[graph],
                dtype=np.dtype(str(next(model.parameters()).dtype).removeprefix("torch.")),
                input_size=model.input_size,
                nblocks=len(model.blocks) if isinstance(model, iResNet) else 1,
                spectral_norm="eager",
                hp=model.HP,
                inputs=(GRAPHS[graph].input, *GRAPHS[graph].optional_inputs),
            )
        elif isinstance(source, (str, Path)):
            _, graph_info = read_model(source)
            # the graph's options but eager's solver: it tests for convergence at every step
            info = dataclasses.replace(graph_info, steps_per_check=1, inverse="loop")
            model = load_checkpoint(checkpoint or Path(source).with_name(CHECKPOINT))
        else:
            raise UsageTypeError(
                f"a torch session runs an iResNet, an iResNetBlock or an exported graph's path, "
                f"got {type(source).__name__}"
            )
        super().__init__(info)
        self.device = device
        self.model = model.to(device).eval()

    def _run(self, batch: Any, solver: dict[str, Any]) -> dict[str, np.ndarray]:
        # torch cannot share a read-only array (golden vectors are read from bytes): copy those
        if isinstance(batch, np.ndarray) and not batch.flags.writeable:
            batch = batch.copy()
        tensor = torch.as_tensor(batch).to(self.device)
        with torch.no_grad():
            if self.graph.name == "forward":
                return {"y": self.model(tensor).cpu().numpy()}
            if self.graph.name == "density":
                z, log_det = self.model.forward_and_log_det(tensor)
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


def _devices() -> tuple[str, ...]:
    return ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)


RUNTIME = Runtime("torch", _devices, EagerSession)
"""The ``torch`` runtime (entry point ``iresnet_onnx.runtimes: torch``)."""
