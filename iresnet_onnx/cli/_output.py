"""Where the command line writes: results on stdout (one ``say`` per line, so a pipe reads them as
they come), complaints on stderr with the command's name in front, like every Unix tool. Only the
CLI writes to the terminal; library code reports through ``logging`` and ``warnings``."""

import json
import sys
from typing import Any

__all__ = ["complain", "say", "say_json"]


def say(text: object = "") -> None:
    sys.stdout.write(f"{text}\n")


def say_json(data: Any) -> None:
    say(json.dumps(data, indent=2, default=str))


def complain(command: str, text: str) -> None:
    sys.stderr.write(f"iresnet-onnx {command}: {text}\n")
