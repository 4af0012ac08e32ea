"""Rules of the code base that no behaviour test would notice being broken."""

from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "iresnet_onnx"


def test_library_code_never_changes_process_wide_warning_state():
    # warnings.catch_warnings() swaps the process-wide filter list: another thread's warnings
    # are lost or doubled while it is active (issue "Correct under every use", item 3)
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "catch_warnings" in path.read_text()
    ]
    assert offenders == []


def test_the_timeout_in_the_pytest_config_is_enforced(pytestconfig):
    # `timeout = 600` does nothing unless pytest-timeout is installed and loaded
    assert pytestconfig.pluginmanager.hasplugin("timeout")
    assert int(pytestconfig.getini("timeout")) > 0
