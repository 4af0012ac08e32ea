"""The ONNX reference evaluator: pure-numpy, slow, and independent of onnxruntime: a second opinion."""

from pathlib import Path
from typing import Any

import numpy as np
from onnx.reference import ReferenceEvaluator

from ..errors import InvalidModelError
from ._session import ModelInfo, Session, read_model


class ReferenceSession(Session):
    runtime = "reference"
    device = "cpu"

    def __init__(self, path: str | Path, device: str = "cpu", *, like: ModelInfo | None = None):
        proto, info = read_model(path, like)
        super().__init__(info)
        try:
            self.evaluator = ReferenceEvaluator(proto)
        except Exception as error:
            raise InvalidModelError(
                f"the ONNX reference evaluator cannot load {info.path}: {error}"
            ) from error
        self.output_names = list(self.evaluator.output_names)

    def _run(self, batch: Any, solver: dict[str, Any]) -> dict[str, np.ndarray]:
        feeds = self.solver_feeds(solver)
        feeds[self.graph.input] = self._numpy(batch)
        return dict(zip(self.output_names, self.evaluator.run(None, feeds)))
