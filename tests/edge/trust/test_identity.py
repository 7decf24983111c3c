"""``python -m edge identity``: what an operator needs to pair a device with its broker user and ACL."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from edge.privacy.pseudonym import device_pseudonym


def _identity(config: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "edge", "identity", "--config", str(config), *overrides]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def test_identity_names_the_pseudonym_topics_client_id_and_acl_lines(tmp_path: Path) -> None:
    config = tmp_path / "edge.toml"
    config.write_text('[device]\nstate_dir = "state"\n[mqtt]\ntopic_prefix = "clinic-7"\n')
    shown = _identity(config, "--json")
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    pseudonym = device_pseudonym(tmp_path / "state")  # the same secret: the command created it on first use
    assert report["pseudonym"] == pseudonym == report["client_id"]
    assert report["topic_root"] == f"clinic-7/v2/{pseudonym}" and report["problems"] == []
    assert report["topics"]["control"] == f"clinic-7/v2/{pseudonym}/control"
    assert "pattern read clinic-7/v2/%u/control" in report["acl_patterns"]
    assert f"topic write clinic-7/v2/{pseudonym}/summary" in report["acl_device_lines"]
    mismatched = _identity(config, "--set", "mqtt.username=edge-01", "--set", "mqtt.client_id=edge-01")
    assert mismatched.returncode == 0
    assert "WARNING: mqtt.client_id 'edge-01' is not the pseudonym" in mismatched.stdout
    assert "WARNING: mqtt.username 'edge-01' is not the pseudonym" in mismatched.stdout
