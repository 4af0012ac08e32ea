"""Data jobs: a graph of an export over the rows of a data set, without torch.

``score_file`` runs ``density.onnx`` in this process (``iresnet-onnx score``); ``run_batch`` runs any
graph on Ray Data, locally or on a cluster (``iresnet-onnx batch``).
"""

from ._batch import BatchProgress, BatchSummary, run_batch
from ._score import ScoreSummary, score_file

__all__ = ["BatchProgress", "BatchSummary", "ScoreSummary", "run_batch", "score_file"]
