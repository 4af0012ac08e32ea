"""The main job: train a 2-D iResNet flow, export it, verify parity everywhere, benchmark, report.

``iresnet-onnx demo [--out DIR]`` writes to DIR:

``model.pt``                    the trained flow (checkpoint)
``onnx/``, ``onnx-folded/``,     export folders: loop-mode and folded spectral norm, and the
``onnx-portable/``              portable one (no Loop at all, plus .ort files), each with its
                                forward/inverse/density.onnx, golden vectors, model.pt, manifest
``report.md``, ``report.json``  training, parity tables per runtime, latency table
``demo.png``                    the data, the learned density, its latent space f(x), samples drawn
                                by running inverse.onnx on onnxruntime, and the training curve

The folder is written whole or not at all: a failed or interrupted demo leaves the previous one.
Progress goes to the ``iresnet_onnx.demo`` logger, one line per step.
"""

import json
import logging
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, parity
from . import runtimes as rt
from ._atomic import atomic_directory, check_replaceable
from ._checkpoint import save_checkpoint
from ._data import two_moons
from ._demo_plot import GAUSSIAN_2D_INSIDE, inside_circles, plot
from ._export import ExportResult, export
from ._layout import CHECKPOINT
from ._site import demo_site
from ._training import train_flow
from .bench import bench_export, format_table, machine, rows_to_dicts

__all__ = ["OUTPUTS", "run_demo"]

log = logging.getLogger("iresnet_onnx.demo")

DEMO_HP = {
    "nblocks": 10,
    "iResNetBlock": {"variant": "mlp", "hidden_size": 32, "activation": "Tanh"},
}
DEMO_LR = 1e-2
SAMPLES_TO_DRAW = 3000
REPORT_NAME = "report.json"
STEPS = 6
OUTPUTS = (
    (CHECKPOINT, "trained checkpoint"),
    ("onnx/", "loop-mode export (forward/inverse/density.onnx, model.pt, manifest.json)"),
    ("onnx-folded/", "folded-mode export"),
    ("onnx-portable/", "portable export: no Loop (runs on tract too), .ort files"),
    ("report.md", "parity and latency tables"),
    ("report.json", "the same, as data"),
    ("demo.png", "data, learned density, latent space, samples, training curve"),
    ("web/", "a page that verifies onnx/ in the browser (serve it: python -m http.server -d web)"),
)
"""What the demo writes, with a line each (the command line lists them when it is done)."""


class _Steps:
    """Numbered progress lines with the time since the start."""

    def __init__(self) -> None:
        self.started, self.index = time.perf_counter(), 0

    def __call__(self, text: str) -> None:
        self.index += 1
        elapsed = time.perf_counter() - self.started
        log.info("[%d/%d %4.0f s] %s", self.index, STEPS, elapsed, text)


def run_demo(out: Path, *, epochs: int = 40, samples: int = 4096, seed: int = 0) -> dict[str, Any]:
    """Run the main job into ``out`` (replaced whole at the end, if it is a previous demo output)."""
    check_replaceable(out, REPORT_NAME)
    with atomic_directory(out, REPORT_NAME) as folder:
        return _run(folder, epochs=epochs, samples=samples, seed=seed)


def _run(out: Path, *, epochs: int, samples: int, seed: int) -> dict[str, Any]:
    step = _Steps()
    step(f"data: {samples} two-moons samples")
    data = two_moons(samples, seed=seed)
    np.save(out / "data.npy", data)
    step(f"training a {DEMO_HP['nblocks']}-block iResNet flow for {epochs} epochs")
    trained = train_flow(data, hp=DEMO_HP, epochs=epochs, lr=DEMO_LR, seed=seed)
    save_checkpoint(trained.model, out / CHECKPOINT)
    exports = _exports(trained.model, out, step)
    demo_site(exports["loop"].out_dir, out / "web")  # iresnet-onnx web onnx/ --out web/
    reports = {mode: result.report for mode, result in exports.items()}
    step("parity: " + ", ".join(
        f"{mode} {len(report.rows)} rows passed" for mode, report in reports.items()
    ))  # fmt: skip
    step("latency: eager PyTorch vs each runtime (median of blocks in rounds, 2 threads)")
    # the loop-mode export on the runtimes that run Loops, the portable one on all (tract too)
    bench = {
        mode: bench_export(exports[mode].out_dir, batches=(1, 1024), repeats=5, progress=True)
        for mode in ("loop", "portable")
    }
    step("sampling (inverse.onnx), the learned density (density.onnx), the picture")
    pictures = _sample_and_plot(out, data, exports["loop"], trained.losses, seed)
    summary = {
        "version": __version__,
        "machine": {**machine(), "platform": platform.platform()},
        "seconds": round(time.perf_counter() - step.started, 1),
        "training": {
            "hp": trained.model.HP, "epochs": epochs, "lr": DEMO_LR,
            "seconds": round(trained.seconds, 1),
            "nll_first": trained.losses[0], "nll_last": trained.losses[-1],
        },
        "exports": {
            mode: {"dir": r.out_dir.name, "export_seconds": round(r.seconds, 3)}
            for mode, r in exports.items()
        },
        "parity": {mode: report.to_dict() for mode, report in reports.items()},
        "bench": {mode: rows_to_dicts(rows) for mode, rows in bench.items()},
        **pictures,
    }  # fmt: skip
    (out / REPORT_NAME).write_text(json.dumps(summary, indent=2, default=str) + "\n")
    (out / "report.md").write_text(_markdown(summary, reports, bench))
    return summary


def _exports(model: Any, out: Path, step: _Steps) -> dict[str, ExportResult]:
    """The three export folders, each validated on every runtime that runs it (export() raises
    ParityError on a miss, so returning means every row passed)."""
    names = [name for name in rt.available() if not name.startswith("torch:")]
    with_loop = [name for name in names if not name.startswith("tract:")]  # tract has no Loop
    step("exporting forward/inverse/density.onnx three ways, each validated against eager "
         f"PyTorch: loop and folded spectral norm on {', '.join(with_loop)}; portable (no Loop, "
         f"also .ort) on {', '.join(names)}")  # fmt: skip
    return {
        mode: export(model, out / folder, runtimes=runtimes, **options)
        for mode, folder, runtimes, options in (
            ("loop", "onnx", with_loop, {}),
            ("folded", "onnx-folded", with_loop, {"spectral_norm": "folded"}),
            ("portable", "onnx-portable", names,
             {"spectral_norm": "folded", "inverse": "fixed", "ort_format": True}),
        )
    }  # fmt: skip


def _sample_and_plot(
    out: Path, data: np.ndarray, exported: ExportResult, losses: list[float], seed: int
) -> dict[str, Any]:
    """Samples from inverse.onnx, the density from density.onnx on a grid, the latent from
    forward.onnx — the deployed graphs, not PyTorch — and the picture of them."""
    latent = rt.load(exported.forward).run(data)
    prior = np.random.default_rng(seed + 1).standard_normal((SAMPLES_TO_DRAW, 2)).astype(np.float32)
    generated = rt.load(exported.inverse).run_all(prior)
    grid = density_grid(rt.load(exported.density))
    picture = plot(out / "demo.png", data, latent, generated["x"], losses, grid)
    return {
        "sampling": {
            "samples": SAMPLES_TO_DRAW,
            "inverse_steps_per_block": generated["iterations"].tolist(),
            "inverse_residual_max": float(generated["residual"].max()),
        },
        "picture": picture.name,
        "density_grid": {"mass_inside": float(grid[2].sum() * grid[3] ** 2)},
        "latent_inside_circles": inside_circles(latent),
        "gaussian_inside_circles": {f"r<{r}": share for r, share in GAUSSIAN_2D_INSIDE.items()},
    }


def _markdown(summary: dict[str, Any], reports: dict[str, parity.ParityReport], bench: dict) -> str:
    training = summary["training"]
    parts = [
        "# iresnet-onnx demo report",
        "",
        f"iresnet-onnx {summary['version']}, {summary['machine']['platform']}, "
        f"torch {summary['machine']['torch']}, onnxruntime {summary['machine']['onnxruntime']}; "
        f"total {summary['seconds']} s.",
        "",
        "## Training",
        "",
        f"Two moons, {training['epochs']} epochs in {training['seconds']} s: "
        f"NLL {training['nll_first']:.3f} → {training['nll_last']:.3f} nats.",
        "",
        f"HP: `{json.dumps(training['hp']['iResNetBlock'])}`, nblocks {training['hp']['nblocks']}.",
        "",
    ]
    for mode, report in reports.items():
        parts += [f"## Parity, spectral norm {mode}", "", "```", report.table(), "```", ""]
    for mode, rows in bench.items():
        parts += [
            f"## Latency, spectral norm {mode} (ratio = torch eager / runtime)",
            "",
            format_table(rows, reference="eager"),
            "",
        ]
    sampling = summary["sampling"]
    parts += [
        "## Sampling",
        "",
        f"{sampling['samples']} prior samples through inverse.onnx on onnxruntime: "
        f"fixed-point steps per block {sampling['inverse_steps_per_block']}, "
        f"largest final residual {sampling['inverse_residual_max']:.2e}.",
        "",
        "![data, latent space, samples, training curve](demo.png)",
        "",
    ]
    return "\n".join(parts)


GRID = 241
"""Points per axis of the density grid over [−3.5, 3.5]² (58k rows through density.onnx)."""


def density_grid(density: rt.Session) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(x₁, x₂, p(x), spacing) on a grid, p from density.onnx: what the flow learned."""
    axis = np.linspace(-3.5, 3.5, GRID, dtype=np.float32)
    x1, x2 = np.meshgrid(axis, axis)
    points = np.stack([x1.ravel(), x2.ravel()], axis=1)
    log_prob = density.run(points)
    return x1, x2, np.exp(log_prob).reshape(x1.shape), float(axis[1] - axis[0])
