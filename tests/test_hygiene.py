"""Rules of the code base that no behaviour test would notice being broken."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "iresnet_onnx"
MODULE_LINES = 400
FUNCTION_LINES = 80


def modules() -> dict[str, Path]:
    """Dotted name → file of every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(path: Path, top_level_only: bool) -> set[str]:
    """The modules ``path`` imports (relative imports resolved), at module level or anywhere."""
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(PACKAGE.parent).parent.parts)  # the module's package
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}  # `from . import x`
    return found


def test_library_code_never_changes_process_wide_warning_state():
    # warnings.catch_warnings() swaps the process-wide filter list: another thread's warnings
    # are lost or doubled while it is active; filterwarnings/simplefilter at import time change
    # what every user of the process sees (issue "Correct under every use", item 3)
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if any(word in path.read_text() for word in ("catch_warnings", "filterwarnings(",
                                                      "simplefilter("))
    ]  # fmt: skip
    assert offenders == []


def test_the_timeout_in_the_pytest_config_is_enforced(pytestconfig):
    # `timeout = 600` does nothing unless pytest-timeout is installed and loaded
    assert pytestconfig.pluginmanager.hasplugin("timeout")
    assert int(pytestconfig.getini("timeout")) > 0


def test_modules_and_functions_stay_readable():
    long_modules = {
        name: lines
        for name, path in modules().items()
        if (lines := len(path.read_text().splitlines())) > MODULE_LINES
    }
    long_functions = {}
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > FUNCTION_LINES:
                    long_functions[f"{name}.{node.name}"] = length
    assert long_modules == {} and long_functions == {}


def test_public_modules_declare_their_names():
    missing = [
        name
        for name, path in modules().items()
        if not any(part.startswith("_") for part in name.split(".")[1:])
        and name not in ("iresnet_onnx.__main__",)
        and "__all__" not in path.read_text()
    ]
    assert missing == []


def needs_torch() -> set[str]:
    """The package's modules that import torch at module level, directly or through another."""
    found = modules()
    top = {name: imports(path, top_level_only=True) for name, path in found.items()}
    torch_modules = {name for name, names in top.items() if "torch" in names}
    changed = True
    while changed:
        changed = False
        for name, names in top.items():
            if name not in torch_modules and names & torch_modules:
                torch_modules.add(name)
                changed = True
    return torch_modules


def test_the_runtime_side_never_imports_the_model_side():
    """runtimes/ imports no model or export module at any level, and torch only inside
    functions (for tensor interop); the eager runtime registers itself from the model side."""
    model_side = needs_torch()
    assert {"iresnet_onnx._iresnet", "iresnet_onnx._export", "iresnet_onnx.exporters"} <= model_side
    runtime_side = {n: p for n, p in modules().items() if n.startswith("iresnet_onnx.runtimes")}
    for name, path in runtime_side.items():
        assert "torch" not in imports(path, top_level_only=True), name
        everywhere = imports(path, top_level_only=False)
        assert everywhere & model_side == set(), (name, everywhere & model_side)
    torch_free = ("iresnet_onnx.graphs", "iresnet_onnx._layout", "iresnet_onnx._golden",
                  "iresnet_onnx._manifest", "iresnet_onnx.jobs", "iresnet_onnx.errors",
                  "iresnet_onnx._report", "iresnet_onnx._tolerances", "iresnet_onnx._structure")  # fmt: skip
    assert set(torch_free) & model_side == set()


def test_the_names_users_call_are_reachable_from_the_package():
    """From ``import iresnet_onnx`` alone (a fresh interpreter: this one has imported everything),
    and the runtime side's names without loading torch."""
    code = (
        "import sys, iresnet_onnx as p\n"
        "p.runtimes.load, p.runtimes.available, p.graphs.GRAPHS\n"
        "assert 'torch' not in sys.modules, 'the runtime side loaded torch'\n"
        "p.parity.check, p.parity.assert_parity, p.freeze, p.train_flow, p.score_file\n"
        "p.run_batch, p.ExportResult, p.UsageError, p.errors.ParityError\n"
        "assert set(p._MODULES) <= set(dir(p))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=120)
