"""The README runs as written: its Python blocks execute, its commands exist, and every test its
bad-input catalogue cites is a real test."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


@pytest.mark.slow  # trains, exports twice and validates: 15–20 s
def test_the_python_blocks_run(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks, "the README has no python example"
    monkeypatch.chdir(tmp_path)  # the examples write out/ and model.pt where they run
    namespace: dict = {"__name__": "readme"}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    assert (tmp_path / "out" / "density.onnx").is_file()


def test_the_setup_commands_are_make_targets():
    targets = set(re.findall(r"^([a-z-]+):", (REPO / "Makefile").read_text(), flags=re.M))
    commands = re.findall(r"^make ([a-z-]+)", README, flags=re.M)
    assert {"demo", "test"} <= set(commands) <= targets
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_the_cited_tests_exist():
    cited = set(re.findall(r"`((?:tests/)?[\w/]+\.py)::(\w+)`", README))
    assert len(cited) > 10
    for path, name in sorted(cited):
        # the catalogue names files by their path under tests/, often without the folder
        candidates = (REPO / "tests").rglob(Path(path).name)
        assert any(re.search(rf"^def {name}\(", c.read_text(), flags=re.M) for c in candidates), (
            f"README cites {path}::{name}, which does not exist"
        )


@pytest.mark.parametrize("command", ["demo", "train", "export", "verify", "score", "batch",
                                     "bench", "inspect", "web"])  # fmt: skip
def test_every_command_in_the_table_has_help(command):
    assert f"| `{command}" in README
    result = subprocess.run(
        [sys.executable, "-m", "iresnet_onnx", command, "--help"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0 and "usage: iresnet-onnx" in result.stdout
