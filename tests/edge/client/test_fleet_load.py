"""A tiny run of the fleet load test (scripts/fleet_load.py): simulated devices through the device's own outbox
and MQTT link, two workers on a shared subscription, the broker restarted mid-run; nothing lost or stored twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow  # about 20 s: the broker's restart and one retry of what it routed to nobody meanwhile
def test_a_small_fleet_loses_nothing_across_a_broker_restart() -> None:
    done = subprocess.run(
        [sys.executable, "scripts/fleet_load.py", "--devices", "8", "--summaries", "2", "--interval", "1",
         "--per-process", "4", "--store", "sqlite", "--budget-s", "60", "--json"],
        capture_output=True, text=True, cwd=ROOT, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["sent"] == report["stored"] == 16
    assert report["lost"] == 0 and report["stored_twice"] == 0
    assert report["received_by_workers"] >= 16 and len(report["workers"]) == 2
    assert report["broker"]["peak_rss_mib"] > 0
