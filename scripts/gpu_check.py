#!/usr/bin/env python
"""Every CUDA check in one call, for a machine with a GPU and onnxruntime-gpu.

1. ``available()`` must list onnxruntime:cuda and torch:cuda.
2. The CUDA parity matrix: widths 2/17/64 × lowrank/mlp × loop/folded, batches 1, 7, 1000 and
   leading dims, onnxruntime:cuda against eager PyTorch on the CPU.
3. IO binding gives the numbers of the host path: ``run_torch`` on a CUDA tensor (contiguous and
   strided, with solver inputs) against ``run`` on the same data as numpy.
4. Latency, medians: ORT CUDA with IO binding against torch CUDA eager, forward and inverse,
   batch 1 and 4096, K = 1 and 8.

Usage: python scripts/gpu_check.py [--out gpu_check.json]
Exit: 0 all passed, 1 a parity or IO-binding miss, 2 no CUDA here.
"""

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from iresnet_onnx import export, parity, runtimes
from iresnet_onnx.bench import suite_model, time_in_blocks
from iresnet_onnx.errors import RuntimeUnavailableError

log = logging.getLogger("gpu_check")
SOLVER = {"maxiter": 100, "atol": 1e-6, "rtol": 1e-6}


def parity_matrix(tmp: Path) -> list[dict[str, Any]]:
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
                results.append({"n": n, "variant": variant, "mode": mode, "passed": report.passed,
                                "summary": report.summary()})  # fmt: skip
                log.info(
                    "parity n=%-3d %-8s %-7s %s",
                    n,
                    variant,
                    mode,
                    "passed" if report.passed else "FAILED",
                )
    return results


def io_binding(tmp: Path) -> list[dict[str, Any]]:
    model = suite_model(16, seed=1)
    export(model, tmp / "binding", validate=False)
    results = []
    for direction, solver in (
        ("forward", {}),
        ("inverse", {}),
        ("inverse", {"maxiter": 3, "atol": 0.0}),
    ):
        session = runtimes.load(tmp / "binding" / f"{direction}.onnx", "onnxruntime", "cuda")
        wide = torch.randn(64, 32, device="cuda")
        for layout, x in (("contiguous", wide[:, :16].contiguous()), ("strided", wide[:, ::2])):
            on_device = session.run_torch(x, **solver)
            on_host = session.run_all(x.cpu().numpy(), **solver)
            error = float(
                np.abs(
                    on_device[session.main_output].cpu().numpy() - on_host[session.main_output]
                ).max()
            )
            same_steps = (
                direction == "forward"
                or on_device["iterations"].tolist() == on_host["iterations"].tolist()
            )
            passed = error <= 1e-6 and same_steps and on_device[session.main_output].is_cuda
            results.append({"direction": direction, "layout": layout, "solver": solver, "max_abs": error,
                            "passed": passed})  # fmt: skip
            log.info(
                "io binding %-7s %-10s %s max|Δ| %.1e %s",
                direction,
                layout,
                solver,
                error,
                "ok" if passed else "FAILED",
            )
    return results


def time_case(model, forward, inverse, x) -> dict[str, float]:
    """Medians of torch CUDA eager and ORT CUDA (IO binding), forward and inverse, on ``x``."""

    def eager_forward():
        with torch.no_grad():
            model(x)
        torch.cuda.synchronize()

    def eager_inverse():
        with torch.no_grad():
            model.inverse(x, **SOLVER)
        torch.cuda.synchronize()

    timings = time_in_blocks(
        {
            "torch cuda forward": eager_forward,
            "ort cuda forward": lambda: forward.run_torch(x),
            "torch cuda inverse": eager_inverse,
            "ort cuda inverse": lambda: inverse.run_torch(x, **SOLVER),
        },
        50 if x.shape[0] == 1 else 20,
    )
    return {name: timing.median for name, timing in timings.items()}


def latency(tmp: Path) -> list[dict[str, Any]]:
    rows = []
    model = suite_model(64)
    for k in (1, 8):
        out = tmp / f"bench-{k}"
        export(model.cpu(), out, spectral_norm="folded", steps_per_check=k, validate=False)
        forward = runtimes.load(out / "forward.onnx", "onnxruntime", "cuda")
        inverse = runtimes.load(out / "inverse.onnx", "onnxruntime", "cuda")
        model.to("cuda")
        for batch in (1, 4096):
            x = torch.randn(batch, 64, device="cuda")
            steps = inverse.run_torch(x, **SOLVER)["iterations"].float().mean().item()
            for name, seconds in time_case(model, forward, inverse, x).items():
                rows.append({"K": k, "batch": batch, "implementation": name,
                             "median_us": seconds * 1e6, "steps": steps})  # fmt: skip
                log.info("K=%d B=%-5d %-20s %10.1f µs", k, batch, name, seconds * 1e6)
    return rows


def run_cuda_checks() -> dict[str, Any]:
    """All of the above; ``passed`` is False on any parity or IO-binding miss."""
    names = runtimes.available()
    if "onnxruntime:cuda" not in names or "torch:cuda" not in names:
        raise RuntimeUnavailableError(
            f"no CUDA for onnxruntime and torch here; available: {', '.join(names)}"
        )
    with tempfile.TemporaryDirectory() as tmp:
        matrix = parity_matrix(Path(tmp))
        binding = io_binding(Path(tmp))
        timings = latency(Path(tmp))
    passed = all(entry["passed"] for entry in [*matrix, *binding])
    return {
        "available": names,
        "passed": passed,
        "parity": matrix,
        "io_binding": binding,
        "latency": timings,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        result = run_cuda_checks()
    except RuntimeUnavailableError as error:
        print(error, file=sys.stderr)
        return 2
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'all passed' if result['passed'] else 'FAILURES'}; wrote {args.out}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
