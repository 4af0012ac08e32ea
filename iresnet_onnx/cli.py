"""``iresnet-onnx``: the main job (``demo``) and the commands build pipelines call.

Exit codes, for pipelines to branch on:

==== ==========================================================================================
0    success
1    the export is wrong: a parity miss, a file changed since export, a golden vector missed
2    the input is wrong: bad arguments, files, data, or a runtime / extra that is not installed
3    the tool is broken: an internal error (a bug; ``--debug`` shows the traceback)
130  interrupted (Ctrl-C)
141  the reader of our output went away (``| head``), as for any tool killed by SIGPIPE
==== ==========================================================================================

Errors and warnings are one line on stderr; ``--debug`` (before or after the command) adds the
traceback and debug logs and never changes the exit code. Each command checks the optional
packages it needs before it starts any work. Nothing heavy is imported before a command runs.
"""

import argparse
import importlib.util
import json
import logging
import math
import os
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any

from . import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 130, 141

NEEDS = {
    # command: the optional modules it needs, and the extra that brings each
    "demo": {"torch": "torch", "matplotlib": "demo"},
    "train": {"torch": "torch"},
    "export": {"torch": "torch"},
    "bench": {"torch": "torch"},
    "verify": {"torch": "torch"},  # without --golden: parity against the checkpoint
    "verify --golden": {"onnx": "onnxruntime"},
    "inspect": {"onnx": "onnxruntime"},
    "score": {"onnx": "onnxruntime"},
    "batch": {"onnx": "onnxruntime", "ray": "ray", "pyarrow": "ray"},
}


class VerificationError(Exception):
    """``verify``'s verdict (not an error in the input): exit 1 with this message."""


class MissingExtraError(Exception):
    """A command needs an optional package that is not installed (exit 2)."""


def require_extras(command: str) -> None:
    """Before any work: every module ``command`` needs is importable, or one clear error."""
    missing = {
        module: extra
        for module, extra in NEEDS.get(command, {}).items()
        if importlib.util.find_spec(module) is None
    }
    if missing:
        extras = ",".join(sorted(set(missing.values())))
        hint = (
            " (on a CPU-only machine: pip install torch==2.13.0 first)"
            if "torch" in missing
            else ""
        )
        raise MissingExtraError(
            f"{command} needs {', '.join(sorted(missing))}, which is not installed: "
            f"pip install 'iresnet-onnx[{extras}]'{hint}"
        )


# --- argument types ---------------------------------------------------------------------------


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _float(text: str, minimum: float, strict: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < minimum or (strict and value == minimum):
        bound = f"> {minimum:g}" if strict else f"≥ {minimum:g}"
        raise argparse.ArgumentTypeError(f"expected a finite number {bound}, got {text!r}")
    return value


def positive_float(text: str) -> float:
    return _float(text, 0.0, strict=True)


def non_negative_float(text: str) -> float:
    return _float(text, 0.0, strict=False)


def int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def runtime_list(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected runtime:device names, got {text!r}")
    return names


def load_hp_file(path: str) -> dict[str, Any]:
    import tomllib

    file = Path(path)
    if not file.is_file():
        raise ValueError(f"HP file {file}: no such file")
    try:
        text = file.read_text()
        hp = tomllib.loads(text) if file.suffix == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"HP file {file}: {error}") from error
    if not isinstance(hp, dict) or not isinstance(hp.get("iResNetBlock", {}), dict):
        raise ValueError(
            f"HP file {file}: expected an object such as "
            '{"nblocks": 5, "iResNetBlock": {"activation": "ELU"}}'
        )
    return hp


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


# --- commands ---------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo
    from .bench import fix_malloc_thresholds

    fix_malloc_thresholds()  # its latency table: see iresnet-onnx bench
    run_demo(Path(args.out), epochs=args.epochs, samples=args.samples, seed=args.seed)
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    from ._atomic import write_text_atomic
    from ._checkpoint import save_checkpoint
    from ._data import load_data
    from ._training import train_flow

    data = load_data(args.data)
    hp: dict[str, Any] = load_hp_file(args.hp) if args.hp else {}
    block = hp.setdefault("iResNetBlock", {})
    for key in ("hidden_size", "activation", "variant"):
        if getattr(args, key) is not None:
            block[key] = getattr(args, key)
    if args.nblocks is not None:
        hp["nblocks"] = args.nblocks
    result = train_flow(
        data, hp=hp, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed
    )
    out = Path(args.out)
    path = save_checkpoint(result.model, out / "model.pt")
    write_text_atomic(out / "losses.json", json.dumps(result.losses))
    print(f"trained on {data.shape[0]}×{data.shape[1]} in {result.seconds:.1f} s, "
          f"final NLL {result.losses[-1]:.4f}; checkpoint: {path}")  # fmt: skip
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from ._checkpoint import load_checkpoint
    from ._export import export

    model = load_checkpoint(args.checkpoint)
    options = {
        key: getattr(args, key)
        for key in (
            "opset",
            "spectral_norm",
            "inverse",
            "steps_per_check",
            "input_radius",
            "maxiter",
            "atol",
            "rtol",
        )
        if getattr(args, key) is not None
    }  # unset flags keep export()'s defaults
    result = export(
        model, args.out, validate=not args.no_validate, functions=args.functions,
        ort_format=args.ort_format, runtimes=args.runtime, **options,
    )  # fmt: skip
    print(f"exported {args.checkpoint} in {result.seconds:.2f} s:")
    for name, path in result.paths.items():
        print(f"  {name:<10} {path}")
    if result.report is not None:
        print(result.report)
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from ._manifest import read_manifest, verify_hashes
    from .errors import CheckpointError, InvalidModelError

    folder = Path(args.dir)
    manifest = read_manifest(folder)
    recorded = manifest.get("checkpoint", "model.pt")
    hashes = verify_hashes(folder, manifest)
    if args.checkpoint or args.golden:
        hashes.pop(recorded, None)  # not what is being verified
    bad_hashes = {name: state for name, state in hashes.items() if state != "ok"}
    problems = [f"{name} {state} since export" for name, state in bad_hashes.items()]
    report = None
    try:
        report = (
            _golden_report(args, folder, manifest)
            if args.golden
            else _parity_report(args, folder, manifest)
        )
        problems += [row.describe() for row in report.failures]
        if report.unsupported and not problems:
            first = report.unsupported[0]
            raise ValueError(f"{first['runtime']} cannot run {first['graph']}: {first['reason']}")
    except (InvalidModelError, CheckpointError) as error:
        if not bad_hashes:
            raise  # a file that never matched the manifest's hashes is bad input (exit 2)
        problems.append(f"cannot run parity: {error}")  # a file broken since export (exit 1)
    passed = not problems
    if args.json:
        print_json({
            "passed": passed, "hashes": hashes, "problems": problems,
            "parity": report.to_dict() if report is not None else None,
        })  # fmt: skip
    else:
        for name, state in hashes.items():
            print(f"sha256 {name}: {state}")
        if report is not None:
            print(report)
    if not passed:
        raise VerificationError(f"verification of {folder} failed: {'; '.join(problems)}")
    return EXIT_OK


def _golden_report(args: argparse.Namespace, folder: Path, manifest: dict[str, Any]) -> Any:
    """The golden vectors on the device: numpy and a runtime, no torch, no checkpoint."""
    from ._golden import verify_golden

    if args.checkpoint:
        raise ValueError("--golden checks the stored vectors; it takes no --checkpoint")
    return verify_golden(folder, manifest, runtimes=args.runtime)


def _parity_report(args: argparse.Namespace, folder: Path, manifest: dict[str, Any]) -> Any:
    """Parity against the folder's checkpoint (or --checkpoint) on fresh inputs: needs torch."""
    from . import parity
    from ._checkpoint import load_checkpoint

    checkpoint = (
        Path(args.checkpoint)
        if args.checkpoint
        else folder / manifest.get("checkpoint", "model.pt")
    )
    model = load_checkpoint(checkpoint)
    _check_same_model(model, manifest, checkpoint, folder)
    sizes = {"batch_sizes": args.batch_sizes} if args.batch_sizes else {}
    return parity.check(model, folder, runtimes=args.runtime, **sizes)


def _check_same_model(model: Any, manifest: dict[str, Any], checkpoint: Path, folder: Path) -> None:
    """A checkpoint of another width or depth than the export is the checkpoint's fault: say so."""
    expected = (manifest.get("input_size"), manifest.get("nblocks"))
    actual = (model.input_size, getattr(model, "nblocks", 1))
    if None not in expected and expected != actual:
        raise ValueError(
            f"checkpoint {checkpoint} holds a model of width {actual[0]} with {actual[1]} blocks; "
            f"the export {folder} has width {expected[0]} and {expected[1]} blocks"
        )


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import (
        bench_export,
        bench_suite,
        fix_malloc_thresholds,
        format_table,
        machine,
        rows_to_dicts,
        suite_report,
    )

    fix_malloc_thresholds()  # the CLI owns its process: timings without malloc's warm-up drift
    if args.dir is None:  # the performance suite: baseline vs eager, TorchScript, onnxruntime
        rows = bench_suite(
            widths=args.widths, batches=args.batch, threads=args.threads, repeats=args.repeats,
            progress=not args.json,
        )  # fmt: skip
        report, data = suite_report(rows, args.widths, args.repeats, args.threads)
        if args.json:
            print_json(data)
        else:
            print(report)
        return EXIT_OK
    rows = bench_export(
        args.dir, batches=args.batch, runtimes=args.runtime, repeats=args.repeats,
        threads=args.threads, progress=not args.json,
    )  # fmt: skip
    if args.json:
        print_json({"machine": machine(), "threads": args.threads, "rows": rows_to_dicts(rows)})
    else:
        print(f"latency, {args.threads} threads; ratio = torch eager / runtime")
        print(format_table(rows, reference="eager"))
    return EXIT_OK


def cmd_score(args: argparse.Namespace) -> int:
    from ._score import score_file

    summary = score_file(
        args.dir, args.data, args.out, runtime=args.runtime, batch_size=args.batch_size,
        progress=not args.quiet,
    )  # fmt: skip
    print(
        f"scored {summary.rows:,} rows on {summary.runtime} in {summary.seconds:.2f} s "
        f"({summary.rows_per_second:,.0f} rows/s): {summary.out}"
    )
    return EXIT_OK


def cmd_batch(args: argparse.Namespace) -> int:
    from ._batch import run_batch

    summary = run_batch(
        args.dir, args.input, args.output, graph=args.graph, runtime=args.runtime,
        workers=args.workers, threads=args.threads, batch_size=args.batch_size,
        address=args.address, overwrite=args.overwrite, nonfinite=args.nonfinite,
        column=args.column, progress=not args.quiet,
    )  # fmt: skip
    print(
        f"{summary.graph}: {summary.rows:,} rows on {summary.runtime} in {summary.seconds:.2f} s "
        f"({summary.rows_per_second:,.0f} rows/s; Ray start-up {summary.ray_start_seconds:.1f} s "
        f"apart): {summary.out}"
    )
    for pid, stats in sorted(summary.workers.items()):
        print(
            f"  worker pid {pid}: {stats.rows:,} rows, {stats.rows_per_second:,.0f} rows/s "
            "in the runtime"
        )
    if summary.graph == "inverse":
        print(f"  rows that did not converge: {summary.not_converged:,}")
    if args.nonfinite == "flag":
        print(f"  non-finite rows skipped (output NaN): {summary.nonfinite:,}")
    return EXIT_OK


def cmd_inspect(args: argparse.Namespace) -> int:
    from ._inspect import inspect_path, render

    info = inspect_path(Path(args.path))
    if args.json:
        print_json(info)
    else:
        print(render(info))
    return EXIT_OK


# --- parser -----------------------------------------------------------------------------------


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

    demo = command("demo", "the main job: train a 2-D flow, export, verify, bench, report")
    demo.add_argument("--out", default="demo-output", help="output folder (default: demo-output)")
    demo.add_argument(
        "--epochs", type=positive_int, default=40, help="training epochs (default: 40)"
    )
    demo.add_argument(
        "--samples", type=positive_int, default=4096, help="two-moons samples (default: 4096)"
    )
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(handler=cmd_demo)

    train = command("train", "train an iResNet flow on your data (.npy or .csv, [N, n])")
    train.add_argument("data", help="a .npy or .csv file of shape [N, n]")
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
    train.set_defaults(handler=cmd_train)

    export = command("export", "export a checkpoint to forward.onnx / inverse.onnx")
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
        help="also write forward.ort / inverse.ort (onnxruntime's mobile/minimal-build format)",
    )  # fmt: skip
    export.add_argument(
        "--runtime", type=runtime_list,
        help="validate on these runtimes (default onnxruntime:cpu), e.g. onnxruntime:cpu,openvino:cpu",
    )  # fmt: skip
    export.add_argument(
        "--steps-per-check", type=positive_int, dest="steps_per_check",
        help="fixed-point steps per convergence test in inverse.onnx (default 8: fast; 1 stops "
        "every row exactly where eager PyTorch does, up to K-1 steps earlier)",
    )  # fmt: skip
    export.add_argument("--no-validate", action="store_true", help="skip the parity check")
    export.add_argument(
        "--maxiter",
        type=positive_int,
        help="default maxiter of inverse.onnx (default: the model's)",
    )
    export.add_argument(
        "--atol",
        type=non_negative_float,
        help="default atol of inverse.onnx (default: the model's)",
    )
    export.add_argument(
        "--rtol",
        type=non_negative_float,
        help="default rtol of inverse.onnx (default: the model's)",
    )
    export.set_defaults(handler=cmd_export)

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
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.set_defaults(handler=cmd_verify)

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
    bench.set_defaults(handler=cmd_bench)

    score = command(
        "score", "log p(x) of every row of a data file through the export's density.onnx (no torch)"
    )
    score.add_argument("dir", help="an export folder")
    score.add_argument("data", help="a .npy or .csv file of shape [N, n]")
    score.add_argument("--out", required=True, help="where to write the scores (.npy or .csv)")
    score.add_argument("--runtime", default="onnxruntime:cpu", help="default onnxruntime:cpu")
    score.add_argument(
        "--batch-size", type=positive_int, default=4096, dest="batch_size",
        help="rows per call (default 4096)",
    )  # fmt: skip
    score.add_argument("--quiet", action="store_true", help="no progress bar")
    score.set_defaults(handler=cmd_score)

    batch = command(
        "batch",
        "run forward, inverse or density over a large data set on Ray Data (local, or a cluster "
        "with --address); needs the [ray] extra",
    )
    batch.add_argument("dir", help="an export folder")
    batch.add_argument("input", help=".npy, .csv, or a Parquet file or folder")
    batch.add_argument("output", help=".npy (the output only) or .parquet (id, output, flags)")
    batch.add_argument("--graph", choices=("forward", "inverse", "density"), default="forward")
    batch.add_argument("--runtime", default="onnxruntime:cpu", help="default onnxruntime:cpu")
    batch.add_argument(
        "--workers", type=positive_int, default=1, help="actors, one session each (default 1)"
    )
    batch.add_argument(
        "--threads", type=positive_int,
        help="runtime threads per actor (default: Ray's CPUs / workers)",
    )  # fmt: skip
    batch.add_argument(
        "--batch-size", type=positive_int, default=4096, dest="batch_size",
        help="rows per call (default 4096)",
    )  # fmt: skip
    batch.add_argument("--address", help="join this Ray cluster (default: a local Ray)")
    batch.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")
    batch.add_argument(
        "--nonfinite", choices=("reject", "flag"), default="reject",
        help="rows with NaN/Inf: reject stops the job (default); flag writes NaN for them",
    )  # fmt: skip
    batch.add_argument("--column", help="Parquet: the list column of features")
    batch.add_argument("--quiet", action="store_true", help="no progress bar")
    batch.set_defaults(handler=cmd_batch)

    inspect = command("inspect", "what an export folder or ONNX file contains")
    inspect.add_argument("path", help="an export folder or a .onnx file")
    inspect.add_argument("--json", action="store_true")
    inspect.set_defaults(handler=cmd_inspect)
    return parser


def _one_line_warnings(command: str) -> None:
    """Warnings (ours and libraries') as one line each on stderr, like errors. The CLI owns its
    process, so it may set this hook; library code never does."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = str(message).splitlines()[0] if str(message) else ""
        print(f"iresnet-onnx {command}: warning: {category.__name__}: {text}", file=sys.stderr)

    warnings.showwarning = show


def _needs(args: argparse.Namespace) -> str:
    return "verify --golden" if getattr(args, "golden", False) else args.command


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False)
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO, format="%(message)s", stream=sys.stderr
    )
    if not debug:
        _one_line_warnings(args.command)
    from .errors import IresnetOnnxError, ParityError

    def fail(code: int, text: str) -> int:
        if debug:
            traceback.print_exc()
        print(f"iresnet-onnx {args.command}: {text}", file=sys.stderr)
        return code

    try:
        require_extras(_needs(args))
        return args.handler(args)
    except (ParityError, VerificationError) as error:
        return fail(EXIT_FAILED, str(error).splitlines()[0])
    except BrokenPipeError:
        return _broken_pipe()
    except (IresnetOnnxError, MissingExtraError, ValueError, TypeError, OSError) as error:
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        return fail(EXIT_USAGE, f"error: {text}")
    except KeyboardInterrupt:
        return fail(EXIT_INTERRUPTED, "interrupted")
    except Exception as error:  # a bug, not bad input: its own code, and --debug shows where
        text = str(error).splitlines()[0] if str(error) else ""
        return fail(
            EXIT_INTERNAL,
            f"internal error {type(error).__name__}: {text} (a bug: rerun with --debug for the "
            "traceback and report it)",
        )


def _broken_pipe() -> int:
    """The reader closed our stdout (``| head``): stop quietly, as tools killed by SIGPIPE do."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush must not fail again
    return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
