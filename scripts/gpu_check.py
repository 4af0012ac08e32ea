#!/usr/bin/env python
"""Every CUDA check in one call, for a machine with a GPU and onnxruntime-gpu.

1. ``available()`` must list onnxruntime:cuda (and torch:cuda), else exit 2 with what it found.
2. The CUDA parity matrix: widths 2/17/64 × lowrank/mlp × loop/folded, batches 1, 7, 1000 and
   leading dims, on onnxruntime:cuda against eager PyTorch (CPU, the reference).
3. Latency, median of repeats: ORT CUDA with IO binding (torch CUDA tensors in and out, no host
   copy) against torch CUDA eager, forward and inverse, batch 1 and 4096, K = 1 and 8.

Usage: python scripts/gpu_check.py [--out gpu_check.json]
Exit: 0 all parity rows passed, 1 a parity miss, 2 no CUDA here.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

from iresnet_onnx import export, parity, runtimes
from iresnet_onnx.bench import interleaved_medians, suite_model


def parity_matrix(tmp: Path) -> list[dict]:
    results = []
    for n in (2, 17, 64):
        for variant in ("lowrank", "mlp"):
            for mode in ("loop", "folded"):
                model = suite_model(n, seed=n, variant=variant)
                out = tmp / f"{n}-{variant}-{mode}"
                export(model, out, spectral_norm=mode, validate=False)
                report = parity.check(
                    model, out, runtimes=["onnxruntime:cuda"], batch_sizes=(1, 7, 1000)
                )
                summary = report.summary()
                results.append(
                    {
                        "n": n,
                        "variant": variant,
                        "mode": mode,
                        "passed": report.passed,
                        "summary": summary,
                    }
                )
                print(f"parity n={n:<3} {variant:<8} {mode:<7} {'passed' if report.passed else 'FAILED'}  "
                      + "  ".join(f"{k.split()[-1]} {v['max_abs']:.1e}" for k, v in summary.items()))  # fmt: skip
    return results


def time_case(model, forward, inverse, x, solver, repeats) -> dict[str, float]:
    """Medians of torch CUDA eager and ORT CUDA (IO binding), forward and inverse, on ``x``."""

    def eager_forward():
        with torch.no_grad():
            model(x)
        torch.cuda.synchronize()

    def eager_inverse():
        with torch.no_grad():
            model.inverse(x, **solver)
        torch.cuda.synchronize()

    return interleaved_medians(
        {
            "torch cuda forward": eager_forward,
            "ort cuda forward": lambda: forward.run_torch(x),
            "torch cuda inverse": eager_inverse,
            "ort cuda inverse": lambda: inverse.run_torch(x, **solver),
        },
        repeats,
    )


def latency(tmp: Path) -> list[dict]:
    rows = []
    model = suite_model(64)
    solver = {"maxiter": 100, "atol": 1e-6, "rtol": 1e-6}
    for k in (1, 8):
        out = tmp / f"bench-{k}"
        export(model, out, spectral_norm="folded", steps_per_check=k, validate=False)
        forward = runtimes.load(out / "forward.onnx", "onnxruntime", "cuda")
        inverse = runtimes.load(out / "inverse.onnx", "onnxruntime", "cuda")
        on_gpu = model.to("cuda")
        for batch in (1, 4096):
            x = torch.randn(batch, 64, device="cuda")
            medians = time_case(
                on_gpu, forward, inverse, x, solver, repeats=50 if batch == 1 else 20
            )
            steps = inverse.run_torch(x, **solver)["iterations"].float().mean().item()
            for name, seconds in medians.items():
                rows.append(
                    {
                        "K": k,
                        "batch": batch,
                        "implementation": name,
                        "median_us": seconds * 1e6,
                        "steps": steps,
                    }
                )
                print(f"K={k} B={batch:<5} {name:<20} {seconds * 1e6:10.1f} µs")
        model.to("cpu")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    args = parser.parse_args()
    names = runtimes.available()
    print("available:", ", ".join(names))
    if "onnxruntime:cuda" not in names or "torch:cuda" not in names:
        print("no CUDA for onnxruntime and torch here; nothing to check", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        matrix = parity_matrix(Path(tmp))
        timings = latency(Path(tmp))
    args.out.write_text(
        json.dumps({"available": names, "parity": matrix, "latency": timings}, indent=2)
    )
    print(f"wrote {args.out}")
    return 0 if all(entry["passed"] for entry in matrix) else 1


if __name__ == "__main__":
    sys.exit(main())
