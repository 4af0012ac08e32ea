"""The command line's parser: one function per command, each naming its handler in
:mod:`._commands`."""

import argparse
from collections.abc import Callable

from .. import __version__
from ..graphs import GRAPHS
from . import _commands as run
from ._arguments import (
    int_list,
    non_negative_float,
    positive_float,
    positive_int,
    runtime_list,
    steps_per_check,
)

__all__ = ["build_parser"]

Command = Callable[[str, str], argparse.ArgumentParser]

NONFINITE = ("warn", "reject", "flag")
"""The jobs' policies for non-finite rows (``iresnet_onnx.jobs``' NONFINITE_POLICIES, named here so
that building the parser imports nothing heavy; a test holds the two equal)."""


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS,
        help="show tracebacks and debug logs (the exit code stays the same)",
    )  # fmt: skip
    parser = argparse.ArgumentParser(
        prog="iresnet-onnx",
        description="Invertible ResNets: train, export to ONNX (Loop graphs), verify parity, benchmark.",
        epilog="exit codes: 0 ok, 1 the export is wrong (parity, hashes), 2 bad input or a missing "
        "runtime/extra, 3 internal error, 130 interrupted, 141 output pipe closed",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"iresnet-onnx {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help_text, parents=[common])

    for add in (_demo, _train, _export, _verify, _bench, _score, _batch, _inspect, _web):
        add(command)
    return parser


def _demo(command: Command) -> None:
    demo = command("demo", "the main job: train a 2-D flow, export, verify, bench, report")
    demo.add_argument("--out", default="demo-output", help="output folder (default: demo-output)")
    demo.add_argument(
        "--epochs", type=positive_int, default=40, help="training epochs (default: 40)"
    )
    demo.add_argument(
        "--samples", type=positive_int, default=4096, help="two-moons samples (default: 4096)"
    )
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(handler=run.demo)


def _train(command: Command) -> None:
    train = command("train", "train an iResNet flow on your data (.npy or .csv, [N, n])")
    train.add_argument("data", help=".npy, .csv, or a Parquet file or folder ([N, n])")
    train.add_argument("--out", required=True, help="output folder for model.pt and losses.json")
    train.add_argument("--hp", help="JSON or TOML file of iResNet HP (nblocks, iResNetBlock={...})")
    train.add_argument("--nblocks", type=positive_int)
    train.add_argument("--hidden-size", type=positive_int, dest="hidden_size")
    train.add_argument("--activation", help="a torch.nn activation with Lipschitz constant ≤ 1")
    train.add_argument("--variant", help="lowrank (the default) or mlp")
    train.add_argument("--epochs", type=positive_int, default=40)
    train.add_argument("--batch-size", type=positive_int, default=256, dest="batch_size")
    train.add_argument("--lr", type=positive_float, default=5e-3)
    train.add_argument("--seed", type=int, default=0)
    train.set_defaults(handler=run.train)


def _export(command: Command) -> None:
    export = command("export", "export a checkpoint to forward.onnx, inverse.onnx, density.onnx")
    export.add_argument("checkpoint", help="a model.pt written by iresnet-onnx")
    export.add_argument("--out", required=True, help="the export folder to write (replaced whole)")
    export.add_argument("--opset", type=int, help="ONNX opset, 17–21 (default 18)")
    export.add_argument(
        "--spectral-norm", dest="spectral_norm",
        help="loop (σ computed in the graph, the default) or folded (A′ baked into the weights)",
    )  # fmt: skip
    export.add_argument(
        "--inverse",
        help="loop (a data-dependent fixed-point Loop, the default) or fixed (a Scan of a step count "
        "fixed at export, for runtimes without Loop such as tract)",
    )
    export.add_argument(
        "--input-radius", type=positive_float, dest="input_radius",
        help="--inverse fixed: the largest ‖y‖₂ the step counts are sized for (default √n + 5)",
    )  # fmt: skip
    export.add_argument(
        "--functions", action="store_true",
        help="keep the graph's parts as custom-domain ONNX functions (for Netron); the default "
        "writes plain nodes that every runtime loads",
    )  # fmt: skip
    export.add_argument(
        "--ort-format", action="store_true", dest="ort_format",
        help="also write forward.ort, inverse.ort, density.ort (onnxruntime's mobile/minimal-build "
        "format)",
    )  # fmt: skip
    export.add_argument(
        "--runtime", type=runtime_list,
        help="validate on these runtimes (default onnxruntime:cpu), e.g. onnxruntime:cpu,openvino:cpu",
    )  # fmt: skip
    export.add_argument(
        "--steps-per-check", type=steps_per_check, dest="steps_per_check",
        help="fixed-point steps per convergence test in inverse.onnx (default auto: chosen from "
        "the model's own step counts; 1 stops every row exactly where eager PyTorch does, up to "
        "K-1 steps earlier)",
    )  # fmt: skip
    export.add_argument(
        "--openvino-ir", action="store_true", dest="openvino_ir",
        help="also write OpenVINO IR (forward.xml/.bin, …) with uncompressed weights, checked "
        "against the golden vectors on openvino:cpu",
    )  # fmt: skip
    export.add_argument(
        "--exporter",
        help="who writes the graphs: iresnet_onnx (the default) or torch (torch.onnx.export with "
        "the custom ops' translations: the same Loops; a cross-check)",
    )  # fmt: skip
    export.add_argument("--no-validate", action="store_true", help="skip the parity check")
    for name, kind in (("maxiter", positive_int), ("atol", non_negative_float),
                       ("rtol", non_negative_float)):  # fmt: skip
        export.add_argument(
            f"--{name}", type=kind, help=f"default {name} of inverse.onnx (default: the model's)"
        )
    export.set_defaults(handler=run.export)


def _verify(command: Command) -> None:
    verify = command(
        "verify",
        "hashes and parity of an export folder against its checkpoint (or, with --golden, against "
        "the golden vectors stored at export)",
    )
    verify.add_argument("dir", help="an export folder")
    verify.add_argument(
        "--checkpoint", help="compare against this checkpoint instead of the folder's"
    )
    verify.add_argument("--runtime", type=runtime_list, help="e.g. onnxruntime:cpu,reference:cpu")
    verify.add_argument("--batch-sizes", type=int_list, dest="batch_sizes", help="default 1,7,257")
    verify.add_argument(
        "--golden", action="store_true",
        help="run the golden vectors stored at export instead of parity against the checkpoint: "
        "no torch needed (for the device itself)",
    )  # fmt: skip
    verify.add_argument(
        "--graph", metavar="FILE",
        help="with --golden: check this file instead — a simplified, converted, quantized or fp16 "
        "copy of one of the export's graphs, or OpenVINO IR (.xml) — against that graph's golden "
        "vectors (the step after any conversion in a build pipeline)",
    )  # fmt: skip
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.set_defaults(handler=run.verify)


def _bench(command: Command) -> None:
    bench = command(
        "bench",
        "latency of an export folder (eager vs each runtime), or without DIR the performance "
        "suite (baseline vs eager, TorchScript, onnxruntime loop/folded)",
    )
    bench.add_argument("dir", nargs="?", help="an export folder (omit for the performance suite)")
    bench.add_argument("--widths", type=int_list, default=(64,), help="suite only (default 64)")
    bench.add_argument("--batch", type=int_list, default=(1, 64, 1024), help="default 1,64,1024")
    bench.add_argument(
        "--runtime", type=runtime_list, help="default: every onnxruntime device here"
    )
    bench.add_argument("--repeats", type=positive_int, default=50)
    bench.add_argument("--threads", type=positive_int, default=2)
    bench.add_argument("--json", action="store_true")
    bench.set_defaults(handler=run.bench)


def _score(command: Command) -> None:
    score = command(
        "score", "log p(x) of every row of a data file through the export's density.onnx (no torch)"
    )
    score.add_argument("dir", help="an export folder")
    score.add_argument("data", help=".npy, .csv, or a Parquet file or folder ([N, n])")
    score.add_argument(
        "--out", required=True, help="where to write the scores (.npy, .csv or .parquet)"
    )
    _job_options(
        score, "warn",
        "rows with NaN/Inf, or scores that overflow: warn names them (default), reject stops the "
        "job, flag skips bad input rows (their score is NaN)",
    )  # fmt: skip
    score.set_defaults(handler=run.score)


def _job_options(job: argparse.ArgumentParser, nonfinite: str, nonfinite_help: str) -> None:
    """The options score and batch share (one engine: the same readers and rules)."""
    job.add_argument("--runtime", default="onnxruntime:cpu", help="default onnxruntime:cpu")
    job.add_argument(
        "--batch-size", type=positive_int, default=4096, dest="batch_size",
        help="rows per call (default 4096)",
    )  # fmt: skip
    job.add_argument("--nonfinite", choices=NONFINITE, default=nonfinite, help=nonfinite_help)
    job.add_argument("--column", help="Parquet: the list column of features")
    job.add_argument("--quiet", action="store_true", help="no progress bar")


def _batch(command: Command) -> None:
    batch = command(
        "batch",
        "run forward, inverse or density over a large data set on Ray Data (local, or a cluster "
        "with --address); needs the [ray] extra",
    )
    batch.add_argument("dir", help="an export folder")
    batch.add_argument("input", help=".npy, .csv, or a Parquet file or folder")
    batch.add_argument(
        "output", help=".npy (the output only), .csv or .parquet (id, output, flags)"
    )
    batch.add_argument("--graph", choices=tuple(GRAPHS), default="forward")
    batch.add_argument(
        "--workers", type=positive_int, default=1, help="actors, one session each (default 1)"
    )
    batch.add_argument(
        "--threads", type=positive_int,
        help="runtime threads per actor (default: Ray's CPUs / workers)",
    )  # fmt: skip
    batch.add_argument("--address", help="join this Ray cluster (default: a local Ray)")
    batch.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")
    _job_options(
        batch, "reject",
        "rows with NaN/Inf, or outputs that overflow: reject stops the job (default); warn names "
        "them; flag writes NaN for bad input rows",
    )  # fmt: skip
    batch.set_defaults(handler=run.batch)


def _inspect(command: Command) -> None:
    inspect = command("inspect", "what an export folder or ONNX file contains")
    inspect.add_argument("path", help="an export folder or a .onnx file")
    inspect.add_argument("--json", action="store_true")
    inspect.set_defaults(handler=run.inspect)


def _web(command: Command) -> None:
    web = command(
        "web",
        "a static site that verifies an export's golden vectors in the browser (onnxruntime-web, "
        'WASM): serve SITE over HTTP and open it; the verdict is in <output id="verdict">',
    )
    web.add_argument("dir", help="an export folder")
    web.add_argument("--out", required=True, help="the site folder to write (replaced whole)")
    web.add_argument(
        "--check", action="store_true",
        help="then serve it on 127.0.0.1 and open it in headless Chromium: exit 1 unless the page "
        "says PASSED",
    )  # fmt: skip
    web.add_argument("--screenshot", help="with --check: save a PNG of the whole page here")
    web.set_defaults(handler=run.web)
