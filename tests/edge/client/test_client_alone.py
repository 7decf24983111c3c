"""The integrator client works with the core dependencies only: the device's libraries are blocked from import
(as in a virtualenv with ``pip install expresso-edge`` and no ``[device]`` extra) and ``python -m edge subscribe``
still receives, validates and stores, while device commands say which extra they need."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mqtt_broker import Broker, Subscriber
from polling import wait_until
from summary_factory import summary_document

ROOT = Path(__file__).resolve().parents[3]
DEVICE_ONLY = ("numpy", "cv2", "mediapipe", "onnxruntime", "pydantic", "diffprivlib", "sklearn", "sdnotify", "tqdm",
               "torch", "psycopg")  # fmt: skip
BLOCKER = f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {DEVICE_ONLY!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Block())
sys.argv = ["python -m edge", *sys.argv[1:]]
import runpy
runpy.run_module("edge", run_name="__main__")
"""


def _edge(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKER, *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout
    )


def test_help_lists_every_command_and_device_commands_name_the_extra() -> None:
    listing = _edge("--help")
    assert listing.returncode == 0, listing.stderr
    for name in ("subscribe", "control", "demo", "run"):
        assert name in listing.stdout
    assert listing.stdout.count("edge[device]") >= 4  # demo, run, replay, check-config, bench-pipeline
    assert _edge("control", "--help").returncode == 0
    refused = _edge("run", "--config", "x.toml")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "pip install 'expresso-edge[device]'" in refused.stderr


def test_subscribe_stores_summaries_without_the_device_libraries(
    mqtt_broker: Broker, topic_prefix: str, tmp_path: Path
) -> None:
    store = tmp_path / "in.jsonl"
    worker = subprocess.Popen(
        [sys.executable, "-c", BLOCKER, "subscribe", "--port", str(mqtt_broker.port), "--host", mqtt_broker.host,
         "--prefix", topic_prefix, "--store", str(store), "--count", "2", "--seconds", "30", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    assert worker.stdout is not None
    assert worker.stdout.readline().startswith("subscribed to")
    publisher = Subscriber(mqtt_broker.host, mqtt_broker.port, f"{topic_prefix}/nothing")
    device = "ab" * 10
    for _ in range(2):
        publisher.publish(f"{topic_prefix}/v2/{device}/summary", json.dumps(summary_document(device)).encode())
    publisher.publish(f"{topic_prefix}/v2/{device}/summary", b"not json")
    publisher.close()
    out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    counts = json.loads(out.strip().splitlines()[-1])
    assert counts["in_store"]["summary"] == 2
    assert wait_until(lambda: len(store.read_text().splitlines()) == 2)
    assert "ModuleNotFoundError" not in err
