"""``iresnet-onnx``: the main job (``demo``) and the commands build pipelines call.

Exit codes: 0 success, 1 parity or hash failure, 2 bad input or usage. Errors are one line on
stderr; ``--debug`` shows the traceback.
"""

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import tomllib

from . import __version__
from .exporters import DEFAULT_OPSET, SPECTRAL_NORM_MODES
from .iresnet import VARIANTS
from .parity import DEFAULT_BATCH_SIZES

EXIT_OK, EXIT_PARITY, EXIT_USAGE = 0, 1, 2


class VerificationError(Exception):
    """``verify``'s verdict (not an error in the input): exit 1 with this message."""


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _runtime_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _load_hp_file(path: str) -> dict[str, Any]:
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"HP file {file}: no such file")
    try:
        if file.suffix == ".toml":
            return tomllib.loads(file.read_text())
        return json.loads(file.read_text())
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
        raise ValueError(f"HP file {file}: {error}") from error


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


# --- commands ---------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(Path(args.out), epochs=args.epochs, samples=args.samples, seed=args.seed)
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    from .checkpoint import save_checkpoint
    from .training import load_data, train_flow

    data = load_data(args.data)
    hp: dict[str, Any] = _load_hp_file(args.hp) if args.hp else {}
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
    (out / "losses.json").write_text(json.dumps(result.losses))
    print(f"trained on {data.shape[0]}×{data.shape[1]} in {result.seconds:.1f} s, "
          f"final NLL {result.losses[-1]:.4f}; checkpoint: {path}")  # fmt: skip
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from .checkpoint import load_checkpoint
    from .exporters import export

    model = load_checkpoint(args.checkpoint)
    result = export(
        model, args.out, opset=args.opset, spectral_norm=args.spectral_norm,
        steps_per_check=args.steps_per_check, validate=not args.no_validate,
        maxiter=args.maxiter, atol=args.atol, rtol=args.rtol,
    )  # fmt: skip
    print(f"exported {args.checkpoint} in {result.seconds:.2f} s:")
    for name, path in result.paths.items():
        print(f"  {name:<10} {path}")
    if result.report is not None:
        print(result.report)
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from . import parity
    from .checkpoint import load_checkpoint
    from .errors import CheckpointError, InvalidModelError
    from .exporters import read_manifest, verify_hashes

    folder = Path(args.dir)
    manifest = read_manifest(folder)
    recorded = manifest.get("checkpoint", "model.pt")
    hashes = verify_hashes(folder, manifest)
    if args.checkpoint:
        hashes.pop(recorded, None)
    bad_hashes = {name: state for name, state in hashes.items() if state != "ok"}
    problems = [f"{name} {state} since export" for name, state in bad_hashes.items()]
    report = None
    try:
        model = load_checkpoint(Path(args.checkpoint) if args.checkpoint else folder / recorded)
        report = parity.check(model, folder, runtimes=args.runtime, batch_sizes=args.batch_sizes)
        problems += [row.describe() for row in report.failures]
    except (InvalidModelError, CheckpointError) as error:
        if not bad_hashes:
            raise  # a file that never matched the manifest's hashes is bad input (exit 2)
        problems.append(f"cannot run parity: {error}")  # a file broken since export (exit 1)
    passed = not problems
    if args.json:
        _print_json({
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


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import bench_export, bench_suite, format_table, machine, rows_to_dicts, suite_report

    if args.dir is None:  # the performance suite: baseline vs eager, TorchScript, onnxruntime
        rows = bench_suite(
            widths=args.widths, batches=args.batch, threads=args.threads, repeats=args.repeats,
            progress=not args.json,
        )  # fmt: skip
        report, data = suite_report(rows, args.widths, args.repeats, args.threads, fast_k=8)
        if args.json:
            _print_json(data)
        else:
            print(report)
        return EXIT_OK
    rows = bench_export(
        args.dir, batches=args.batch, runtimes=args.runtime, repeats=args.repeats,
        threads=args.threads, progress=not args.json,
    )  # fmt: skip
    if args.json:
        _print_json({"machine": machine(), "threads": args.threads, "rows": rows_to_dicts(rows)})
    else:
        print(f"median latency over repeats, {args.threads} threads; ratio = torch eager / runtime")
        print(format_table(rows, reference="eager"))
    return EXIT_OK


def cmd_inspect(args: argparse.Namespace) -> int:
    from .inspection import inspect_path, render

    info = inspect_path(Path(args.path))
    if args.json:
        _print_json(info)
    else:
        print(render(info))
    return EXIT_OK


# --- parser -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iresnet-onnx",
        description="Invertible ResNets: train, export to ONNX (Loop graphs), verify parity, benchmark.",
    )
    parser.add_argument("--version", action="version", version=f"iresnet-onnx {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="the main job: train a 2-D flow, export, verify, bench, report"
    )
    demo.add_argument("--out", default="demo-output", help="output folder (default: demo-output)")
    demo.add_argument("--epochs", type=int, default=40, help="training epochs (default: 40)")
    demo.add_argument("--samples", type=int, default=4096, help="two-moons samples (default: 4096)")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(handler=cmd_demo)

    train = commands.add_parser(
        "train", help="train an iResNet flow on your data (.npy or .csv, [N, n])"
    )
    train.add_argument("data", help="a .npy or .csv file of shape [N, n]")
    train.add_argument("--out", required=True, help="output folder for model.pt and losses.json")
    train.add_argument("--hp", help="JSON or TOML file of iResNet HP (nblocks, iResNetBlock={...})")
    train.add_argument("--nblocks", type=int)
    train.add_argument("--hidden-size", type=int, dest="hidden_size")
    train.add_argument("--activation", help="a torch.nn activation with Lipschitz constant ≤ 1")
    train.add_argument("--variant", choices=VARIANTS)
    train.add_argument("--epochs", type=int, default=40)
    train.add_argument("--batch-size", type=int, default=256, dest="batch_size")
    train.add_argument("--lr", type=float, default=5e-3)
    train.add_argument("--seed", type=int, default=0)
    train.set_defaults(handler=cmd_train)

    export = commands.add_parser(
        "export", help="export a checkpoint to forward.onnx / inverse.onnx"
    )
    export.add_argument("checkpoint", help="a model.pt written by iresnet-onnx")
    export.add_argument("--out", required=True, help="the export folder to write")
    export.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    export.add_argument(
        "--spectral-norm", choices=SPECTRAL_NORM_MODES, default="loop", dest="spectral_norm"
    )
    export.add_argument(
        "--steps-per-check", type=int, default=1, dest="steps_per_check",
        help="fixed-point steps per convergence test in inverse.onnx (default 1: eager's exact "
        "stopping step; 8 is faster, may take up to K-1 extra steps)",
    )  # fmt: skip
    export.add_argument("--no-validate", action="store_true", help="skip the parity check")
    export.add_argument(
        "--maxiter", type=int, help="default maxiter of inverse.onnx (default: the model's)"
    )
    export.add_argument(
        "--atol", type=float, help="default atol of inverse.onnx (default: the model's)"
    )
    export.add_argument(
        "--rtol", type=float, help="default rtol of inverse.onnx (default: the model's)"
    )
    export.set_defaults(handler=cmd_export)

    verify = commands.add_parser("verify", help="parity of an export folder against its checkpoint")
    verify.add_argument("dir", help="an export folder")
    verify.add_argument(
        "--checkpoint", help="compare against this checkpoint instead of the folder's"
    )
    verify.add_argument("--runtime", type=_runtime_list, help="e.g. onnxruntime:cpu,reference:cpu")
    verify.add_argument(
        "--batch-sizes", type=_int_list, default=DEFAULT_BATCH_SIZES, dest="batch_sizes"
    )
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.set_defaults(handler=cmd_verify)

    bench = commands.add_parser(
        "bench",
        help="latency of an export folder (eager vs each runtime), or without DIR the performance "
        "suite (baseline vs eager, TorchScript, onnxruntime loop/folded)",
    )
    bench.add_argument("dir", nargs="?", help="an export folder (omit for the performance suite)")
    bench.add_argument("--widths", type=_int_list, default=(64,), help="suite only (default 64)")
    bench.add_argument("--batch", type=_int_list, default=(1, 64, 1024), help="default 1,64,1024")
    bench.add_argument(
        "--runtime", type=_runtime_list, help="default: every onnxruntime device here"
    )
    bench.add_argument("--repeats", type=int, default=50)
    bench.add_argument("--threads", type=int, default=2)
    bench.add_argument("--json", action="store_true")
    bench.set_defaults(handler=cmd_bench)

    inspect = commands.add_parser("inspect", help="what an export folder or ONNX file contains")
    inspect.add_argument("path", help="an export folder or a .onnx file")
    inspect.add_argument("--json", action="store_true")
    inspect.set_defaults(handler=cmd_inspect)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO, format="%(message)s", stream=sys.stderr
    )
    from .errors import IresnetOnnxError, ParityError

    try:
        return args.handler(args)
    except (ParityError, VerificationError) as error:
        if args.debug:
            raise
        print(f"iresnet-onnx {args.command}: {str(error).splitlines()[0]}", file=sys.stderr)
        return EXIT_PARITY
    except (IresnetOnnxError, ValueError, TypeError, OSError) as error:
        if args.debug:
            raise
        print(f"iresnet-onnx {args.command}: error: {str(error).splitlines()[0]}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"iresnet-onnx {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # a bug, not bad input: still one line, and --debug shows where
        if args.debug:
            raise
        print(
            f"iresnet-onnx {args.command}: unexpected error {type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''} (rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
