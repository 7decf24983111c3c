"""The systemd unit: valid (``systemd-analyze verify``) and well sandboxed (``systemd-analyze security``)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SYSTEMD = Path(__file__).parents[2] / "systemd"
UNIT = SYSTEMD / "expresso-edge.service"
MAX_EXPOSURE = 2.0
"""Highest acceptable ``systemd-analyze security`` exposure (0-10; a bare unit scores 9.6)."""

analyze = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(analyze is None, reason="systemd-analyze is not installed (not a systemd host)")


def settings() -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def local_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this Python (verify checks that the executable exists)."""
    text = UNIT.read_text().replace("/opt/expresso-edge/venv/bin/python", sys.executable)
    copy = tmp_path / UNIT.name
    copy.write_text(text)
    return copy


def test_unit_has_the_service_contract() -> None:
    unit = settings()
    assert unit["Type"] == ["notify"] and unit["Restart"] == ["on-failure"]
    assert int(unit["WatchdogSec"][0]) > 0
    assert unit["DynamicUser"] == ["yes"] and unit["SupplementaryGroups"] == ["video"]
    assert unit["StateDirectory"] == ["expresso-edge"] and unit["ConfigurationDirectory"] == ["expresso-edge"]
    assert unit["DevicePolicy"] == ["closed"] and "char-video4linux rw" in unit["DeviceAllow"]
    assert "PrivateDevices" not in unit  # it would hide the camera and the GPU (FIELD-NOTES)
    assert "--config /etc/expresso-edge/config.toml" in unit["ExecStart"][0]
    assert set(unit["RestartPreventExitStatus"][0].split()) == {"3", "4"}  # config and bundle errors do not heal


@needs_analyze
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(analyze), "verify", "--man=no", str(local_copy(tmp_path))], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "expresso-edge.service" not in done.stderr, done.stderr  # no warning about our unit


@needs_analyze
def test_systemd_analyze_security_scores_the_sandbox(tmp_path: Path) -> None:
    probe = subprocess.run([str(analyze), "security", "--help"], capture_output=True, text=True, timeout=30)
    if "--offline" not in probe.stdout:
        pytest.skip("this systemd-analyze has no --offline (systemd < 250): run this check in CI")
    command = [str(analyze), "security", "--offline=yes", f"--threshold={int(MAX_EXPOSURE * 10)}"]
    done = subprocess.run([*command, str(local_copy(tmp_path))], capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout + done.stderr)
    assert match, done.stdout + done.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE
    assert done.returncode == 0, done.stdout[-2000:]


def test_install_script_is_valid_bash() -> None:
    assert shutil.which("bash"), "bash is not installed (CI runs .ci/run with it)"
    assert subprocess.run(["bash", "-n", str(SYSTEMD / "install.sh")], timeout=30).returncode == 0
