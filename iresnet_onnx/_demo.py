"""The main job: train a 2-D iResNet flow, export it, verify parity everywhere, benchmark, report.

``iresnet-onnx demo [--out DIR]`` writes to DIR:

``model.pt``                    the trained flow (checkpoint)
``onnx/``, ``onnx-folded/``,     export folders: loop-mode and folded spectral norm, and the
``onnx-portable/``              portable one (no Loop at all, plus .ort files), each with its
                                forward/inverse/density.onnx, golden vectors, model.pt, manifest
``report.md``, ``report.json``  training, parity tables per runtime, latency table
``demo.png``                    the data, its latent space f(x), samples drawn by running
                                inverse.onnx on onnxruntime, and the training curve

The folder is written whole or not at all: a failed or interrupted demo leaves the previous one.
"""

import json
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
from ._export import export
from ._training import train_flow
from .bench import bench_export, format_table, machine, rows_to_dicts

DEMO_HP = {
    "nblocks": 10,
    "iResNetBlock": {"variant": "mlp", "hidden_size": 32, "activation": "Tanh"},
}
DEMO_LR = 1e-2
SAMPLES_TO_DRAW = 3000


def _step(index: int, total: int, started: float, text: str) -> None:
    print(f"[{index}/{total} {time.perf_counter() - started:4.0f} s] {text}", flush=True)


REPORT_NAME = "report.json"


def run_demo(out: Path, *, epochs: int = 40, samples: int = 4096, seed: int = 0) -> dict[str, Any]:
    """Run the main job into ``out`` (replaced whole at the end, if it is a previous demo output)."""
    check_replaceable(out, REPORT_NAME)
    with atomic_directory(out, REPORT_NAME) as folder:
        summary = _run(folder, epochs=epochs, samples=samples, seed=seed)
    print(f"\ndone in {summary['seconds']:.0f} s. Everything is in {out}/:")
    for name, what in (
        ("model.pt", "trained checkpoint"),
        ("onnx/", "loop-mode export (forward/inverse/density.onnx, model.pt, manifest.json)"),
        ("onnx-folded/", "folded-mode export"),
        ("onnx-portable/", "portable export: no Loop (runs on tract too), .ort files"),
        ("report.md", "parity and latency tables"),
        ("report.json", "the same, as data"),
        ("demo.png", "data, learned density, latent space, samples, training curve"),
    ):
        print(f"  {out / name}  {what}")
    return summary


def _run(out: Path, *, epochs: int, samples: int, seed: int) -> dict[str, Any]:
    started = time.perf_counter()
    total = 6

    _step(1, total, started, f"data: {samples} two-moons samples")
    data = two_moons(samples, seed=seed)
    np.save(out / "data.npy", data)

    _step(
        2, total, started, f"training a {DEMO_HP['nblocks']}-block iResNet flow for {epochs} epochs"
    )
    trained = train_flow(data, hp=DEMO_HP, epochs=epochs, lr=DEMO_LR, seed=seed)
    model = trained.model
    save_checkpoint(model, out / "model.pt")

    names = [name for name in rt.available() if not name.startswith("torch:")]
    with_loop = [name for name in names if not name.startswith("tract:")]  # tract has no Loop
    _step(3, total, started, "exporting forward/inverse/density.onnx three ways, each validated against "
                    f"eager PyTorch: loop and folded spectral norm on {', '.join(with_loop)}; "
                    f"portable (no Loop, also .ort) on {', '.join(names)}")  # fmt: skip
    # export() raises ParityError on a miss, so reaching step 4 means every row passed
    exports = {
        mode: export(model, out / folder, runtimes=runtimes, **options)
        for mode, folder, runtimes, options in (
            ("loop", "onnx", with_loop, {}),
            ("folded", "onnx-folded", with_loop, {"spectral_norm": "folded"}),
            ("portable", "onnx-portable", names,
             {"spectral_norm": "folded", "inverse": "fixed", "ort_format": True}),
        )
    }  # fmt: skip
    reports = {mode: result.report for mode, result in exports.items()}
    _step(4, total, started, "parity: " + ", ".join(
        f"{mode} {len(report.rows)} rows passed" for mode, report in reports.items()
    ))  # fmt: skip

    _step(
        5,
        total,
        started,
        "latency: eager PyTorch vs each runtime (median of blocks in rounds, 2 threads)",
    )
    # the loop-mode export on the runtimes that run Loops, the portable one on all (tract too)
    bench = {
        mode: bench_export(exports[mode].out_dir, batches=(1, 1024), repeats=10, progress=True)
        for mode in ("loop", "portable")
    }

    _step(
        6,
        total,
        started,
        "sampling (inverse.onnx), the learned density (density.onnx), the picture",
    )
    forward = rt.load(exports["loop"].forward)
    inverse = rt.load(exports["loop"].inverse)
    latent = forward.run(data)
    prior = np.random.default_rng(seed + 1).standard_normal((SAMPLES_TO_DRAW, 2)).astype(np.float32)
    generated = inverse.run_all(prior)
    grid = _density_grid(rt.load(exports["loop"].density))
    picture = _plot(out / "demo.png", data, latent, generated["x"], trained.losses, grid)

    seconds = time.perf_counter() - started
    summary = {
        "version": __version__,
        "machine": {**machine(), "platform": platform.platform()},
        "seconds": round(seconds, 1),
        "training": {
            "hp": model.HP, "epochs": epochs, "lr": DEMO_LR, "seconds": round(trained.seconds, 1),
            "nll_first": trained.losses[0], "nll_last": trained.losses[-1],
        },
        "exports": {
            mode: {"dir": r.out_dir.name, "export_seconds": round(r.seconds, 3)}
            for mode, r in exports.items()
        },
        "parity": {mode: report.to_dict() for mode, report in reports.items()},
        "bench": {mode: rows_to_dicts(rows) for mode, rows in bench.items()},
        "sampling": {
            "samples": SAMPLES_TO_DRAW,
            "inverse_steps_per_block": generated["iterations"].tolist(),
            "inverse_residual_max": float(generated["residual"].max()),
        },
        "picture": picture.name,
        "density_grid": {"mass_inside": float(grid[2].sum() * grid[3] ** 2)},
        "latent_inside_circles": _inside_circles(latent),
    }  # fmt: skip
    (out / REPORT_NAME).write_text(json.dumps(summary, indent=2, default=str) + "\n")
    (out / "report.md").write_text(_markdown(summary, reports, bench))
    return summary


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


GAUSSIAN_2D_INSIDE = {1: 1 - np.exp(-0.5), 2: 1 - np.exp(-2.0), 3: 1 - np.exp(-4.5)}
"""Share of a 2-D standard normal inside radius r: 1 − exp(−r²/2) (39 %, 86 %, 99 %)."""


def _inside_circles(latent: np.ndarray) -> dict[str, float]:
    radius = np.linalg.norm(latent, axis=1)
    return {f"r<{r}": float((radius < r).mean()) for r in GAUSSIAN_2D_INSIDE}


GRID = 241
"""Points per axis of the density grid over [−3.5, 3.5]² (58k rows through density.onnx)."""


def _density_grid(density: rt.Session) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(x₁, x₂, p(x), spacing) on a grid, p from density.onnx: what the flow learned."""
    axis = np.linspace(-3.5, 3.5, GRID, dtype=np.float32)
    x1, x2 = np.meshgrid(axis, axis)
    points = np.stack([x1.ravel(), x2.ravel()], axis=1)
    log_prob = density.run(points)
    return x1, x2, np.exp(log_prob).reshape(x1.shape), float(axis[1] - axis[0])


def _plot(
    path: Path,
    data: np.ndarray,
    latent: np.ndarray,
    samples: np.ndarray,
    losses: list[float],
    grid: tuple[np.ndarray, np.ndarray, np.ndarray, float],
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 3, figsize=(16, 10.5))
    (data_ax, density_ax, latent_ax), (samples_ax, loss_ax, text_ax) = axes
    style = {"s": 2, "alpha": 0.5}
    note = {"fontsize": 9, "ha": "center", "va": "top"}

    def caption(ax, text: str) -> None:
        ax.text(0.5, -0.13, text, transform=ax.transAxes, **note)

    data_ax.scatter(data[:, 0], data[:, 1], color="tab:blue", **style)
    data_ax.set_title("1. training data x (two moons)")
    caption(data_ax, "what the flow learns from")

    x1, x2, p, spacing = grid
    image = density_ax.pcolormesh(x1, x2, p, cmap="viridis", shading="auto")
    figure.colorbar(image, ax=density_ax, fraction=0.046, pad=0.04, label="p(x)")
    density_ax.set_title("2. learned density p(x)  (density.onnx)")
    caption(density_ax, f"good: bright where panel 1 has points, dark elsewhere\n"
            f"(the grid holds {p.sum() * spacing**2:.0%} of the probability mass)")  # fmt: skip

    latent_ax.scatter(latent[:, 0], latent[:, 1], color="tab:orange", **style)
    circle = np.linspace(0, 2 * np.pi, 200)
    inside = _inside_circles(latent)
    for radius in GAUSSIAN_2D_INSIDE:
        latent_ax.plot(radius * np.cos(circle), radius * np.sin(circle), color="gray", lw=0.7)
        latent_ax.text(0, radius + 0.05, f"r={radius}", ha="center", va="bottom", fontsize=8,
                       color="dimgray")  # fmt: skip
    shares = "\n".join(
        f"inside r={radius}: {inside[f'r<{radius}']:.0%} (ideal {share:.0%})"
        for radius, share in GAUSSIAN_2D_INSIDE.items()
    )
    latent_ax.text(
        0.02, 0.98, shares, transform=latent_ax.transAxes, va="top", ha="left", fontsize=8,
        bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "lightgray"},
    )  # fmt: skip
    latent_ax.set_title("3. the data mapped to z = f(x)  (forward.onnx)")
    caption(latent_ax, "good: a round, even cloud like N(0, I), the shares inside the circles\n"
            "near the ideal (streaks and gaps: mass the flow has not spread out)")  # fmt: skip

    samples_ax.scatter(samples[:, 0], samples[:, 1], color="tab:green", **style)
    samples_ax.set_title("4. new samples x = f⁻¹(z), z ~ N(0, I)  (inverse.onnx)")
    caption(samples_ax, "good: looks like panel 1 (points between the\nmoons are the flow's error)")

    for ax, (xlabel, ylabel) in zip(
        (data_ax, density_ax, latent_ax, samples_ax),
        (("x₁", "x₂"), ("x₁", "x₂"), ("z₁", "z₂"), ("x₁", "x₂")),
    ):
        ax.set_aspect("equal")
        ax.set_xlim(-3.5, 3.5)
        ax.set_ylim(-3.5, 3.5)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)

    loss_ax.plot(np.arange(1, len(losses) + 1), losses, color="tab:red")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("negative log-likelihood (nats)")
    loss_ax.set_title("5. training: lower is better")
    caption(loss_ax, "good: falls, then flattens")

    text_ax.axis("off")
    text_ax.text(
        0.0, 1.0,
        "How to read this\n\n"
        "An invertible residual network f learns to map the\n"
        "data (1) to a standard normal cloud (3). Because f is\n"
        "invertible, running it backwards turns random normal\n"
        "points into new data (4), and the change-of-variables\n"
        "formula gives the density of any point (2).\n\n"
        "Panels 2–4 come from the exported ONNX graphs run by\n"
        "onnxruntime, not from PyTorch: the deployed model.",
        va="top", ha="left", fontsize=11, transform=text_ax.transAxes,
    )  # fmt: skip
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
