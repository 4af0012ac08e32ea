"""Data jobs: a graph of an export over the rows of a data set, without torch.

One engine, two drivers. ``score_file`` runs ``density.onnx`` in this process (``iresnet-onnx
score``); ``run_batch`` runs any graph on Ray Data, locally or on a cluster (``iresnet-onnx
batch``). Both read their input through the same readers (``_inputs``: ``.npy``, ``_csv_reader``,
``_parquet_reader``), run each chunk of rows and judge it by the same rules (``_chunks``), write
through the same sinks (``_sinks``: ``.npy``, ``.csv``, ``.parquet``, atomically) and run only an
export whose files match its manifest (``_integrity``). ``_batch`` is the Ray driver, ``_cluster``
its Ray, ``_worker`` its actor.
"""

from ._batch import BatchProgress, BatchSummary, run_batch
from ._integrity import check_runnable
from ._score import ScoreSummary, score_file

__all__ = [
    "BatchProgress",
    "BatchSummary",
    "ScoreSummary",
    "check_runnable",
    "run_batch",
    "score_file",
]
