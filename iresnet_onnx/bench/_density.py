"""Density benchmarks: ``density.onnx`` on onnxruntime against eager ``log_prob`` (the lemma) and
against the autograd-Jacobian route a user would write; and training speed, lemma against
Jacobian, per epoch."""

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import runtimes as rt
from .._data import two_moons
from .._layout import graph_file
from ._models import jacobian_log_prob, suite_model, torch_threads
from ._timing import BenchRow, repeats_for, time_in_blocks

__all__ = ["JACOBIAN", "density_suite", "training_speed"]

JACOBIAN = "autograd Jacobian (torch)"


def density_suite(
    widths: tuple[int, ...] = (16, 64, 256),
    batches: tuple[int, ...] = (1, 1024),
    threads: int = 2,
    repeats: int = 50,
    progress: bool = True,
) -> list[BenchRow]:
    """log p of a batch: the Jacobian route (the reference of the ratios), eager ``log_prob``, and
    ``density.onnx`` on onnxruntime (loop and folded spectral norm)."""
    from .._export import export

    rows: list[BenchRow] = []
    with torch_threads(threads), tempfile.TemporaryDirectory() as tmp:
        bar = tqdm(total=len(widths) * len(batches), desc="density", disable=not progress)
        for width in widths:
            model = suite_model(width)
            sessions = {}
            for mode in ("loop", "folded"):
                out = Path(tmp) / f"{width}-{mode}"
                export(model, out, spectral_norm=mode, validate=False)
                sessions[f"density.onnx {mode} (onnxruntime)"] = rt.load(
                    graph_file(out, "density"), "onnxruntime", "cpu", threads=threads
                )
            for batch in batches:
                data = np.random.default_rng(0).standard_normal((batch, width)).astype(np.float32)
                tensor = torch.from_numpy(data)

                def eager(t=tensor, m=model):
                    with torch.no_grad():
                        return m.log_prob(t)

                candidates: dict[str, Any] = {
                    JACOBIAN: lambda t=tensor, m=model: jacobian_log_prob(m, t),
                    "iresnet_onnx log_prob (eager)": eager,
                    **{name: (lambda s=s, d=data: s.run_all(d)) for name, s in sessions.items()},
                }
                # the Jacobian route is slow at n = 256: fewer calls, never fewer than 5
                count = max(5, repeats_for(batch, width, repeats) // (1 + width // 64))
                timings = time_in_blocks(candidates, count)
                rows += [
                    BenchRow.of(name, "density", width, batch, timing, timings[JACOBIAN])
                    for name, timing in timings.items()
                ]
                bar.update()
        bar.close()
    return rows


def training_speed(
    widths: tuple[int, ...] = (2, 16, 64), rows: int = 2048, batch_size: int = 256, threads: int = 2
) -> list[dict[str, Any]]:
    """Seconds per training epoch (Adam, maximum likelihood) with the lemma's ``log_prob`` and with
    the Jacobian route, on the same model and data; each timed over one warm epoch."""
    results = []
    with torch_threads(threads):
        for width in widths:
            data = torch.from_numpy(_data(width, rows))
            seconds = {}
            for name, log_prob in (("lemma", None), ("jacobian", jacobian_log_prob)):
                torch.manual_seed(0)
                model = suite_model(width, scale=1.0).train()
                optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
                times = []
                for _ in range(2):  # the first epoch warms up; the second is timed
                    started = time.perf_counter()
                    for index in torch.randperm(len(data)).split(batch_size):
                        batch = data[index]
                        value = (
                            model.log_prob(batch) if log_prob is None else log_prob(model, batch)
                        )
                        loss = -value.mean()
                        optimizer.zero_grad()
                        loss.backward()
                        optimizer.step()
                    times.append(time.perf_counter() - started)
                seconds[name] = times[-1]
            results.append({
                "width": width, "rows": rows, "batch_size": batch_size,
                "lemma_s": seconds["lemma"], "jacobian_s": seconds["jacobian"],
                "speedup": seconds["jacobian"] / seconds["lemma"],
            })  # fmt: skip
    return results


def _data(width: int, rows: int) -> np.ndarray:
    if width == 2:
        return two_moons(rows)
    return np.random.default_rng(0).standard_normal((rows, width)).astype(np.float32)
