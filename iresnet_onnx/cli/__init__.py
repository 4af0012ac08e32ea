"""``iresnet-onnx``: the main job (``demo``) and the commands build pipelines call.

Exit codes, for pipelines to branch on — decided by whose fault a failure is
(:mod:`iresnet_onnx.errors`), never by a builtin exception type:

==== ==========================================================================================
0    success
1    the export is wrong: a parity miss, a file changed since export, a golden vector missed
     (:class:`~iresnet_onnx.errors.ParityError`, :class:`~iresnet_onnx.errors.VerificationError`)
2    the input is wrong: every other error of the package — bad arguments, files, data, a
     runtime / extra that is not installed — and argparse's usage errors
3    the tool is broken: any other exception (a bug; ``--debug`` shows the traceback)
130  interrupted (Ctrl-C)
141  the reader of our output went away (``| head``), as for any tool killed by SIGPIPE
==== ==========================================================================================

Errors and warnings are one line on stderr; ``--debug`` (before or after the command) adds the
traceback and debug logs and never changes the exit code. Each command checks the optional
packages it needs before it starts any work. Nothing heavy is imported before a command runs.
"""

import argparse
import importlib.util
import logging
import os
import sys
import traceback
import warnings

# numpy imports numpy.random on first use, and a Ctrl-C that lands during that import is lost
# (the KeyboardInterrupt is cleared inside the compiled module's abc registration): an export then
# ran to the end after SIGINT and exited 0. Imported here, before any command's work starts.
import numpy.random  # noqa: F401

from ..errors import IresnetOnnxError, MissingExtraError, ParityError, VerificationError
from ._output import complain
from ._parser import build_parser

__all__ = ["EXIT_FAILED", "EXIT_INTERNAL", "EXIT_USAGE", "main", "require_extras"]

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
    "web": {},  # no Python extra: it copies files; npm's onnxruntime-web is checked by the command
}


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


def _one_line_warnings(command: str) -> None:
    """Warnings (ours and libraries') as one line each on stderr, like errors. The CLI owns its
    process, so it may set this hook; library code never does."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = str(message).splitlines()[0] if str(message) else ""
        complain(command, f"warning: {category.__name__}: {text}")

    warnings.showwarning = show


def _needs(args: argparse.Namespace) -> str:
    return "verify --golden" if getattr(args, "golden", False) else args.command


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = getattr(args, "debug", False)
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO, format="%(message)s", stream=sys.stderr
    )
    if not debug:
        _one_line_warnings(args.command)

    def fail(code: int, text: str) -> int:
        if debug:
            traceback.print_exc()
        complain(args.command, text)
        return code

    try:
        require_extras(_needs(args))
        return args.handler(args)
    except (ParityError, VerificationError) as error:
        return fail(EXIT_FAILED, str(error).splitlines()[0])
    except BrokenPipeError:
        return _broken_pipe()
    except IresnetOnnxError as error:
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
