"""Argument types of the command line: each turns text into a value or an argparse error that
says what was expected."""

import argparse
import json
import math
from pathlib import Path
from typing import Any

from ..errors import UsageError

__all__ = [
    "int_list",
    "load_hp_file",
    "non_negative_float",
    "positive_float",
    "positive_int",
    "runtime_list",
    "steps_per_check",
]


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def steps_per_check(text: str) -> int | str:
    """``auto`` or a positive integer (export's ``steps_per_check``)."""
    if text == "auto":
        return text
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f'expected "auto" or a positive integer, got {text!r}'
        ) from None


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
    """HP from a JSON or TOML file; a :class:`UsageError` naming the file otherwise."""
    import tomllib

    file = Path(path)
    if not file.is_file():
        raise UsageError(f"HP file {file}: no such file")
    try:
        text = file.read_text()
        hp = tomllib.loads(text) if file.suffix == ".toml" else json.loads(text)
    except (OSError, json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise UsageError(f"HP file {file}: {error}") from error
    if not isinstance(hp, dict) or not isinstance(hp.get("iResNetBlock", {}), dict):
        raise UsageError(
            f"HP file {file}: expected an object such as "
            '{"nblocks": 5, "iResNetBlock": {"activation": "ELU"}}'
        )
    return hp
