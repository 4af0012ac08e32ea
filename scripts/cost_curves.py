#!/usr/bin/env python
"""The cost curves: time and peak memory of forward, inverse and density against the width n and
the batch B — the deployed graphs (onnxruntime, default export), the eager and frozen model, the
baseline a user would write, and the GEMM roofline — as a picture and tables.

Usage: python scripts/cost_curves.py [--widths 16,64,256,1024] [--batches 1,16,256,4096]
                                     [--threads 2] [--out results/curves]
Writes results/curves.png (time), results/curves.md and results/curves.json.
"""

import argparse
import json
import sys
from pathlib import Path

from iresnet_onnx.bench import cost_curves, fix_malloc_thresholds, machine, points_to_dicts

STYLE = {
    "baseline": ("black", "-"),
    "eager log_prob": ("black", "-"),
    "eager": ("tab:gray", "--"),
    "frozen": ("tab:blue", "--"),
    "onnxruntime": ("tab:red", "-"),
}


def ints(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(","))


def plot(points: list[dict], widths: tuple[int, ...], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    graphs = ("forward", "inverse", "density")
    figure, axes = plt.subplots(len(graphs), len(widths), figsize=(4 * len(widths), 3.6 * len(graphs)),
                                squeeze=False)  # fmt: skip
    for row, graph in enumerate(graphs):
        for column, width in enumerate(widths):
            ax = axes[row][column]
            cell = [p for p in points if p["graph"] == graph and p["width"] == width]
            for name in dict.fromkeys(p["implementation"] for p in cell):
                line = sorted(
                    (p for p in cell if p["implementation"] == name), key=lambda p: p["batch"]
                )
                color, style = STYLE.get(name, ("tab:green", ":"))
                ax.plot([p["batch"] for p in line], [p["median_us"] for p in line], style,
                        color=color, marker="o", ms=3, label=name)  # fmt: skip
            roof = sorted((p for p in cell if p["roofline_us"]), key=lambda p: p["batch"])
            if roof:
                ax.plot([p["batch"] for p in roof], [p["roofline_us"] for p in roof], ":",
                        color="tab:orange", label="GEMM roofline")  # fmt: skip
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(f"{graph}, n = {width}", fontsize=10)
            ax.set_xlabel("batch B")
            if column == 0:
                ax.set_ylabel("µs per call")
            ax.grid(True, which="major", alpha=0.3)
            if (row == 0 and column == 0) or (graph == "density" and column == 0):
                ax.legend(fontsize=7)
    figure.suptitle("Cost curves: time per call against the batch, one panel per graph and width "
                    "(log–log; 2 threads)")  # fmt: skip
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def table(points: list[dict], graph: str) -> str:
    rows = [p for p in points if p["graph"] == graph]
    names = list(dict.fromkeys(p["implementation"] for p in rows))
    cells = sorted({(p["width"], p["batch"]) for p in rows})
    lines = [f"| {graph}: n, B | " + " | ".join(names) + " | roofline |",
             "|---|" + "---:|" * (len(names) + 1)]  # fmt: skip
    for width, batch in cells:
        entry = {p["implementation"]: p for p in rows if (p["width"], p["batch"]) == (width, batch)}
        text = []
        for name in names:
            p = entry[name]
            memory = "" if p["peak_mib"] is None else f", {p['peak_mib']:.0f} MiB"
            text.append(f"{p['median_us']:,.0f} µs ({p['ratio']:.2f}×{memory})")
        roof = next(iter(entry.values()))["roofline_us"]
        lines.append(
            f"| {width}, {batch} | "
            + " | ".join(text)
            + f" | {'' if not roof else f'{roof:,.0f} µs'} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--widths", type=ints, default=(16, 64, 256, 1024))
    parser.add_argument("--batches", type=ints, default=(1, 16, 256, 4096))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--budget", type=float, default=0.4, help="seconds per candidate and round")
    parser.add_argument("--out", type=Path, default=Path("results/curves"))
    args = parser.parse_args()
    fix_malloc_thresholds()
    points = points_to_dicts(cost_curves(args.widths, args.batches, args.threads, args.budget))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot(points, args.widths, args.out.with_suffix(".png"))
    about = machine()
    report = "\n\n".join([
        f"Cost curves on {about['cpu']} ({about['cores']} CPUs), torch {about.get('torch')}, "
        f"onnxruntime {about.get('onnxruntime')}, {args.threads} threads. Each cell: median µs "
        "per call (ratio = the first column's time / this one's, median over 5 rounds; peak "
        "memory = growth of the resident set while the candidate runs the cell). Model: "
        "suite_model(n) (5 blocks, lowrank ReLU, hidden ⌊√n⌋, weights ×10); inverse at "
        "atol = rtol = 1e-6. ![cost curves](curves.png)",
        *(table(points, graph) for graph in ("forward", "inverse", "density")),
    ])  # fmt: skip
    args.out.with_suffix(".md").write_text(report + "\n")
    args.out.with_suffix(".json").write_text(
        json.dumps({"machine": about, "points": points}, indent=2) + "\n"
    )
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
