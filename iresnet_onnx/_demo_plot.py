"""The demo's picture: the data, the learned density, the latent space, samples, the training
curve — one function per panel."""

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["GAUSSIAN_2D_INSIDE", "inside_circles", "plot"]

GAUSSIAN_2D_INSIDE = {1: 1 - np.exp(-0.5), 2: 1 - np.exp(-2.0), 3: 1 - np.exp(-4.5)}
"""Share of a 2-D standard normal inside radius r: 1 − exp(−r²/2) (39 %, 86 %, 99 %)."""


def inside_circles(latent: np.ndarray) -> dict[str, float]:
    radius = np.linalg.norm(latent, axis=1)
    return {f"r<{r}": float((radius < r).mean()) for r in GAUSSIAN_2D_INSIDE}


_STYLE = {"s": 2, "alpha": 0.5}
Grid = tuple[np.ndarray, np.ndarray, np.ndarray, float]


def _caption(ax: Any, text: str) -> None:
    ax.text(0.5, -0.13, text, transform=ax.transAxes, fontsize=9, ha="center", va="top")


def _data_panel(ax: Any, data: np.ndarray) -> None:
    ax.scatter(data[:, 0], data[:, 1], color="tab:blue", **_STYLE)
    ax.set_title("1. training data x (two moons)")
    _caption(ax, "what the flow learns from")


def _density_panel(figure: Any, ax: Any, grid: Grid) -> None:
    x1, x2, p, spacing = grid
    image = ax.pcolormesh(x1, x2, p, cmap="viridis", shading="auto")
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="p(x)")
    ax.set_title("2. learned density p(x)  (density.onnx)")
    _caption(ax, f"good: bright where panel 1 has points, dark elsewhere\n"
             f"(the grid holds {p.sum() * spacing**2:.0%} of the probability mass)")  # fmt: skip


def _latent_panel(ax: Any, latent: np.ndarray) -> None:
    ax.scatter(latent[:, 0], latent[:, 1], color="tab:orange", **_STYLE)
    circle = np.linspace(0, 2 * np.pi, 200)
    inside = inside_circles(latent)
    angle = np.deg2rad(-40.0)  # labels at the lower right, on a white box above the points
    for radius in GAUSSIAN_2D_INSIDE:
        ax.plot(radius * np.cos(circle), radius * np.sin(circle), color="gray", lw=0.7)
        ax.text(radius * np.cos(angle), radius * np.sin(angle), f"r={radius}", ha="center",
                va="center", fontsize=8, color="dimgray", zorder=5,
                bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "none", "pad": 1})  # fmt: skip
    shares = "\n".join(
        f"inside r={radius}: {inside[f'r<{radius}']:.0%} (ideal {share:.0%})"
        for radius, share in GAUSSIAN_2D_INSIDE.items()
    )
    ax.text(
        0.02, 0.98, shares, transform=ax.transAxes, va="top", ha="left", fontsize=8, zorder=6,
        bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "lightgray"},
    )  # fmt: skip
    ax.set_title("3. the data mapped to z = f(x)  (forward.onnx)")
    _caption(ax, "good: a round, even cloud like N(0, I), the shares inside the circles\n"
             "near the ideal (streaks and gaps: mass the flow has not spread out)")  # fmt: skip


def _samples_panel(ax: Any, samples: np.ndarray) -> None:
    ax.scatter(samples[:, 0], samples[:, 1], color="tab:green", **_STYLE)
    ax.set_title("4. new samples x = f⁻¹(z), z ~ N(0, I)  (inverse.onnx)")
    _caption(ax, "good: looks like panel 1 (points between the\nmoons are the flow's error)")


def _loss_panel(ax: Any, losses: list[float]) -> None:
    ax.plot(np.arange(1, len(losses) + 1), losses, color="tab:red")
    ax.set_xlabel("epoch")
    ax.set_ylabel("negative log-likelihood (nats)")
    ax.set_title("5. training: lower is better")
    _caption(ax, "good: falls, then flattens")


def _text_panel(ax: Any) -> None:
    ax.axis("off")
    ax.text(
        0.0, 1.0,
        "How to read this\n\n"
        "An invertible residual network f learns to map the\n"
        "data (1) to a standard normal cloud (3). Because f is\n"
        "invertible, running it backwards turns random normal\n"
        "points into new data (4), and the change-of-variables\n"
        "formula gives the density of any point (2).\n\n"
        "Panels 2–4 come from the exported ONNX graphs run by\n"
        "onnxruntime, not from PyTorch: the deployed model.",
        va="top", ha="left", fontsize=11, transform=ax.transAxes,
    )  # fmt: skip


def plot(
    path: Path, data: np.ndarray, latent: np.ndarray, samples: np.ndarray, losses: list[float],
    grid: Grid,
) -> Path:  # fmt: skip
    """The picture, written to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 3, figsize=(16, 10.5))
    (data_ax, density_ax, latent_ax), (samples_ax, loss_ax, text_ax) = axes
    _data_panel(data_ax, data)
    _density_panel(figure, density_ax, grid)
    _latent_panel(latent_ax, latent)
    _samples_panel(samples_ax, samples)
    for ax, (xlabel, ylabel) in zip(
        (data_ax, density_ax, latent_ax, samples_ax),
        (("x₁", "x₂"), ("x₁", "x₂"), ("z₁", "z₂"), ("x₁", "x₂")),
    ):
        ax.set_aspect("equal")
        ax.set_xlim(-3.5, 3.5)
        ax.set_ylim(-3.5, 3.5)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    _loss_panel(loss_ax, losses)
    _text_panel(text_ax)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
