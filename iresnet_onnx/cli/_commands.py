"""The command line's commands: each takes the parsed arguments, does its work through the
library, prints its result and returns the exit code (failures raise; :func:`iresnet_onnx.cli.main`
turns them into codes)."""

import argparse
import json
from pathlib import Path
from typing import Any

from .._layout import CHECKPOINT
from ..errors import UsageError, VerificationError
from ._arguments import load_hp_file
from ._output import say, say_json

__all__ = ["batch", "bench", "demo", "export", "inspect", "score", "train", "verify", "web"]


def demo(args: argparse.Namespace) -> int:
    from .._demo import OUTPUTS, run_demo
    from ..bench import fix_malloc_thresholds

    fix_malloc_thresholds()  # its latency table: see iresnet-onnx bench
    out = Path(args.out)
    summary = run_demo(out, epochs=args.epochs, samples=args.samples, seed=args.seed)
    say(f"\ndone in {summary['seconds']:.0f} s. Everything is in {out}/:")
    for name, what in OUTPUTS:
        say(f"  {out / name}  {what}")
    return 0


def train(args: argparse.Namespace) -> int:
    import shutil

    from .._atomic import write_text_atomic
    from .._checkpoint import save_checkpoint
    from .._data import load_data
    from .._training import train_flow
    from ..jobs._sinks import check_output_folder, check_space

    out, losses = Path(args.out), "losses.json"
    # before any work: neither output may be an input (issue 22, item 1), the seed must be one
    # torch takes (it raises an overflow after the data is read)
    inputs = (Path(args.data), *([Path(args.hp)] if args.hp else []))
    check_output_folder(out, (CHECKPOINT, losses), inputs)
    if not -(2**63) <= args.seed < 2**64:
        raise UsageError(f"--seed {args.seed}: expected an integer from -2**63 to 2**64-1")
    data = load_data(args.data)
    hp: dict[str, Any] = load_hp_file(args.hp) if args.hp else {}
    block = hp.setdefault("iResNetBlock", {})
    for table in (hp, block):  # a model's HP (model.HP) holds input_size: the data's width
        if table.get("input_size", data.shape[1]) != data.shape[1]:
            raise UsageError(
                f"HP file {args.hp}: input_size is {table['input_size']!r}, but the rows of "
                f"{args.data} have {data.shape[1]} values; remove it (the data sets it)"
            )
        table.pop("input_size", None)
    for key in ("hidden_size", "activation", "variant"):
        if getattr(args, key) is not None:
            block[key] = getattr(args, key)
    if args.nblocks is not None:
        hp["nblocks"] = args.nblocks
    result = train_flow(
        data, hp=hp, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed
    )
    state = result.model.state_dict().values()
    check_space(out / CHECKPOINT, sum(t.numel() * t.element_size() for t in state) + (1 << 16))
    created = not out.exists()
    try:
        path = save_checkpoint(result.model, out / CHECKPOINT)
        write_text_atomic(out / losses, json.dumps(result.losses))
    except BaseException:
        if created:  # nothing left behind: not even the folder the run made
            shutil.rmtree(out, ignore_errors=True)
        raise
    say(f"trained on {data.shape[0]}×{data.shape[1]} in {result.seconds:.1f} s, "
        f"final NLL {result.losses[-1]:.4f}; checkpoint: {path}")  # fmt: skip
    return 0


def export(args: argparse.Namespace) -> int:
    from .._checkpoint import load_checkpoint
    from .._export import export as export_folder

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
            "exporter",
        )
        if getattr(args, key) is not None
    }  # unset flags keep export()'s defaults
    result = export_folder(
        model, args.out, validate=not args.no_validate, functions=args.functions,
        ort_format=args.ort_format, openvino_ir=args.openvino_ir, runtimes=args.runtime,
        **options,
    )  # fmt: skip
    say(f"exported {args.checkpoint} in {result.seconds:.2f} s:")
    for name, path in result.paths.items():
        say(f"  {name:<10} {path}")
    if result.report is not None:
        say(result.report)
    return 0


def verify(args: argparse.Namespace) -> int:
    from .._manifest import read_manifest, verify_hashes
    from ..errors import CheckpointError, InvalidModelError

    folder = Path(args.dir)
    manifest = read_manifest(folder)
    recorded = manifest.get("checkpoint", CHECKPOINT)
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
        problems += report.problems + [str(row) for row in report.failures]
        if report.unsupported and not problems:
            first = report.unsupported[0]
            raise UsageError(f"{first['runtime']} cannot run {first['graph']}: {first['reason']}")
    except (InvalidModelError, CheckpointError) as error:
        if not bad_hashes:
            raise  # a file that never matched the manifest's hashes is bad input (exit 2)
        problems.append(f"cannot run parity: {error}")  # a file broken since export (exit 1)
    passed = not problems
    if args.json:
        say_json({
            "passed": passed, "hashes": hashes, "problems": problems,
            "parity": report.to_dict() if report is not None else None,
        })  # fmt: skip
    else:
        for name, state in hashes.items():
            say(f"sha256 {name}: {state}")
        if report is not None:
            say(report)
    if not passed:
        raise VerificationError(f"verification of {folder} failed: {'; '.join(problems)}")
    return 0


def _golden_report(args: argparse.Namespace, folder: Path, manifest: dict[str, Any]) -> Any:
    """The golden vectors on the device: numpy and a runtime, no torch, no checkpoint."""
    from .._golden import verify_golden

    if args.checkpoint:
        raise UsageError("--golden checks the stored vectors; it takes no --checkpoint")
    return verify_golden(folder, manifest, runtimes=args.runtime, graph_file=args.graph)


def _parity_report(args: argparse.Namespace, folder: Path, manifest: dict[str, Any]) -> Any:
    """Parity against the folder's checkpoint (or --checkpoint) on fresh inputs: needs torch."""
    if args.graph:
        raise UsageError("--graph FILE is checked against the golden vectors: add --golden")
    from .. import parity
    from .._checkpoint import load_checkpoint

    checkpoint = (
        Path(args.checkpoint)
        if args.checkpoint
        else folder / manifest.get("checkpoint", CHECKPOINT)
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
        raise UsageError(
            f"checkpoint {checkpoint} holds a model of width {actual[0]} with {actual[1]} blocks; "
            f"the export {folder} has width {expected[0]} and {expected[1]} blocks"
        )


def bench(args: argparse.Namespace) -> int:
    from ..bench import (
        bench_export,
        bench_suite,
        fix_malloc_thresholds,
        format_table,
        machine,
        rows_to_dicts,
        suite_report,
    )
    from ..jobs import check_runnable
    from ..runtimes._session import check_threads

    # before any work: a bounded thread count (torch and the runtimes try to make as many as
    # asked), an unchanged export, and runtimes that can run it (issue 22, items 6, 10, 11)
    check_threads(args.threads, "bench --threads")
    if args.dir is not None:
        check_runnable(args.dir, ("forward", "inverse"), args.runtime or (), eager=True)
    fix_malloc_thresholds()  # the CLI owns its process: timings without malloc's warm-up drift
    if args.dir is None:  # the performance suite: baseline vs eager, TorchScript, onnxruntime
        rows = bench_suite(
            widths=args.widths, batches=args.batch, threads=args.threads, repeats=args.repeats,
            progress=not args.json,
        )  # fmt: skip
        report, data = suite_report(rows, args.widths, args.repeats, args.threads)
        if args.json:
            say_json(data)
        else:
            say(report)
        return 0
    rows = bench_export(
        args.dir, batches=args.batch, runtimes=args.runtime, repeats=args.repeats,
        threads=args.threads, progress=not args.json,
    )  # fmt: skip
    if args.json:
        say_json({"machine": machine(), "threads": args.threads, "rows": rows_to_dicts(rows)})
    else:
        say(f"latency, {args.threads} threads; ratio = torch eager / runtime")
        say(format_table(rows, reference="eager"))
    return 0


def score(args: argparse.Namespace) -> int:
    from ..jobs import score_file

    nonfinite = getattr(args, "nonfinite", "warn")
    summary = score_file(
        args.dir, args.data, args.out, runtime=args.runtime, batch_size=args.batch_size,
        nonfinite=nonfinite, column=getattr(args, "column", None), progress=not args.quiet,
    )  # fmt: skip
    say(
        f"scored {summary.rows:,} rows on {summary.runtime} in {summary.seconds:.2f} s "
        f"({summary.rows_per_second:,.0f} rows/s): {summary.out}"
    )
    if nonfinite == "flag":
        say(f"  non-finite rows skipped (score NaN): {summary.skipped:,}")
    if summary.nonfinite_results:
        say(f"  rows whose score is NaN or Inf: {summary.nonfinite_results:,}")
    return 0


def batch(args: argparse.Namespace) -> int:
    from ..jobs import run_batch

    summary = run_batch(
        args.dir, args.input, args.output, graph=args.graph, runtime=args.runtime,
        workers=args.workers, threads=args.threads, batch_size=args.batch_size,
        address=args.address, overwrite=args.overwrite, nonfinite=args.nonfinite,
        column=args.column, progress=not args.quiet,
    )  # fmt: skip
    say(
        f"{summary.graph}: {summary.rows:,} rows on {summary.runtime} in {summary.seconds:.2f} s "
        f"({summary.rows_per_second:,.0f} rows/s; Ray start-up {summary.ray_start_seconds:.1f} s "
        f"apart): {summary.out}"
    )
    for pid, stats in sorted(summary.workers.items()):
        say(
            f"  worker pid {pid}: {stats.rows:,} rows, {stats.rows_per_second:,.0f} rows/s "
            "in the runtime"
        )
    if summary.graph == "inverse":
        say(f"  rows that did not converge: {summary.not_converged:,}")
    if args.nonfinite == "flag":
        say(f"  non-finite rows skipped (output NaN): {summary.nonfinite:,}")
    if summary.nonfinite_results:
        say(f"  rows whose output is NaN or Inf: {summary.nonfinite_results:,}")
    return 0


def inspect(args: argparse.Namespace) -> int:
    from .._inspect import inspect_path, render

    info = inspect_path(Path(args.path))
    if args.json:
        say_json(info)
    else:
        say(render(info))
    return 0


def web(args: argparse.Namespace) -> int:
    from .._site import build_site, check_site

    if args.screenshot and not args.check:
        raise UsageError("--screenshot needs --check (the page is opened to take it)")
    out = build_site(args.dir, args.out)
    say(f"site of {args.dir} written to {out}/; serve it over HTTP, e.g. "
        f"python -m http.server -d {out}, and open the address it prints")  # fmt: skip
    if not args.check:
        return 0
    result = check_site(out, screenshot=args.screenshot)
    say(f"in headless Chromium: {result.verdict}")
    if not result.passed:
        raise VerificationError(f"the page of {out} says {result.verdict}")
    return 0
