"""``python -m edge demo``: the daemon on the bundled demo model and a sample video, watched like an integrator.

No set-up: consent is granted for the demo, the state lives in a temporary directory, and a broker is started on
a free loopback port (Mosquitto when installed, else amqtt) unless ``--broker`` names one. A subscriber prints
what arrives on the device's topics as a table (raw JSON with ``--json``); the demo ends with the video.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edge import NOT_A_DIAGNOSTIC_DEVICE
from edge.bundle import load_bundle
from edge.commands._demo_broker import BrokerAddress, demo_broker, parse_broker_url
from edge.commands.run import add_overrides
from edge.config import load_config
from edge.daemon import Daemon
from edge.errors import BrokerError, UsageError
from edge.schemas import TOPIC_LEVEL

NAME = "demo"
HELP = "run the daemon on the bundled demo model and a sample video, printing what an integrator receives"
EXAMPLES = """\
  python -m edge demo
  python -m edge demo --video samples/clip_001_score28.6.mp4 --json
  python -m edge demo --broker mqtt://127.0.0.1:1883
"""

SAMPLE_VIDEO = Path(__file__).parents[1] / "assets" / "sample_video.mp4"
"""The first sample video (samples/clip_000_score04.3.mp4), packaged so that an installed device has it too."""
COLUMNS = ("topic", "what", "period (UTC)", "windows", "mean", "median", "IQR", "scale: band shares %")
WIDTHS = (8, 18, 23, 12, 6, 7, 11, 24)
log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--video, --broker, --json, --set."""
    parser.add_argument("--video", type=Path, help="video file (default: the packaged sample video)")
    parser.add_argument("--broker", metavar="URL", help="use this broker, e.g. mqtt://127.0.0.1:1883")
    parser.add_argument("--json", action="store_true", help="print each message as raw JSON (one per line)")
    add_overrides(parser)


def default_video() -> Path:
    """The sample video shipped in the package."""
    if not SAMPLE_VIDEO.is_file():
        raise UsageError(f"no sample video at {SAMPLE_VIDEO}", fix="pass --video PATH, or reinstall the package")
    return SAMPLE_VIDEO


def _row(cells: tuple[str, ...]) -> str:
    return "  ".join(cell.ljust(width) for cell, width in zip(cells, WIDTHS, strict=True)).rstrip()


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}"


def _score_cells(score: dict[str, Any]) -> tuple[str, str, str, str]:
    """Mean, median, IQR and band shares of one output (``score`` or an item of ``outputs``) for the table."""
    bands = score.get("bands") or {}
    shares = f"{score['scale']}: " + "/".join(f"{100 * share:.0f}" for share in bands.values()) if bands else ""
    iqr = "-" if score["q1"] is None else f"{score['q1']:.1f}-{score['q3']:.1f}"
    return _number(score["mean"]), _number(score["median"]), iqr, shares or "-"


def region_line(regions: dict[str, float], output: str | None = None) -> str:
    """Region shares, largest first: what the model's score (of ``output``, named when a bundle has several)
    leaned on (an association, not a cause)."""
    ranked = sorted(regions.items(), key=lambda item: -item[1])
    label = f"{output} regions: " if output else "regions: "
    return label + ", ".join(f"{name} {100 * share:.0f}%" for name, share in ranked)


def render(topic: str, doc: dict[str, Any]) -> str:
    """One table row (or two) for a message an integrator received."""
    kind = topic.rsplit("/", 1)[-1]
    if kind == "summary":
        period, windows = doc["period"], doc["windows"]
        span = f"{period['start'][5:16].replace('T', ' ')}-{period['end'][11:16]}"
        what = f"{doc['kind']}{'' if period['complete'] else ' (part)'}"
        counts = f"{windows['scored']} +{windows['rejected_total']}r"
        rows = [_row(("summary", what, span, counts, *_score_cells(doc["score"])))]
        outputs = doc.get("outputs", [])
        for output in outputs[1:]:  # a bundle of several outputs: one row for each further output
            rows.append(_row(("", f"  {output['name']}"[:18], "", "", *_score_cells(output))))
            if output.get("regions"):  # its own region shares, under its row
                rows.append(f"{'':<8}  {region_line(output['regions'], output['name'])}")
        if doc.get("regions"):  # the primary output's, named when there are several
            rows.append(f"{'':<8}  {region_line(doc['regions'], outputs[0]['name'] if len(outputs) > 1 else None)}")
        if doc.get("behaviour"):  # [explain] descriptors = true: landmark-geometry proxies, not action units
            means = ", ".join(f"{name} {value:.2f}" for name, value in doc["behaviour"].items())
            rows.append(f"{'':<8}  behaviour (proxies): {means}")
        return "\n".join(rows)
    if kind == "status":
        detail = f" ({doc['detail']})" if doc.get("detail") else ""
        return _row(
            ("status", f"{doc['state']}: {doc['activity']}{detail}", f"consent {doc['consent']}", "", "", "", "", "")
        )
    if kind == "health":
        m = doc["metrics"]
        frames, scored = m.get("frames_processed", 0), m.get("windows_scored", 0)
        return _row(("health", f"{frames:.0f} frames", f"{doc.get('backend')}", f"{scored:.0f} scored", "", "", "", ""))
    return _row((kind, json.dumps(doc)[:60], "", "", "", "", "", ""))


class Integrator:
    """Subscribes to every device topic under a prefix and prints what arrives."""

    def __init__(self, address: BrokerAddress, prefix: str, *, as_json: bool) -> None:
        self.as_json = as_json
        self.summaries = 0
        self.offline = threading.Event()
        self._ready = threading.Event()
        self._lock = threading.Lock()
        v5 = address.protocol == "5"
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"demo-integrator-{uuid.uuid4().hex[:8]}",
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
        )
        if address.tls:
            self._client.tls_set()
        self._client.on_connect = lambda c, *_: c.subscribe(f"{prefix}/{TOPIC_LEVEL}/+/#", qos=1)
        self._client.on_subscribe = lambda *_: self._ready.set()
        self._client.on_message = self._on_message
        try:
            self._client.connect(address.host, address.port, keepalive=30)
        except OSError as exc:
            raise BrokerError(f"cannot reach {address.description}: {exc}", fix="check --broker HOST:PORT") from exc
        self._client.loop_start()
        if not self._ready.wait(10):
            raise BrokerError(f"could not subscribe at {address.description}", fix="check that the broker is up")

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        doc = json.loads(message.payload) if message.payload else {}
        with self._lock:
            if self.as_json:
                print(json.dumps({"topic": message.topic, "payload": doc}), flush=True)
            else:
                print(render(message.topic, doc), flush=True)
            if message.topic.endswith("/summary"):
                self.summaries += 1
            if message.topic.endswith("/status") and doc.get("state") == "offline":
                self.offline.set()

    def close(self) -> None:
        """Disconnect."""
        self._client.disconnect()
        self._client.loop_stop()


@contextlib.contextmanager
def quiet_native_stderr(enabled: bool) -> Iterator[None]:
    """Discard what native libraries (mediapipe, ffmpeg) write on stderr while ``enabled`` (Python errors still
    reach the user: they are printed after this block)."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def run(args: argparse.Namespace) -> int:
    """Start a broker and an integrator, run the daemon on the video, print what arrives."""
    video = args.video or default_video()
    if not video.is_file():
        raise UsageError(f"video {video} does not exist", fix="pass --video with an existing file")
    if args.broker is not None:
        parse_broker_url(args.broker)  # a malformed URL is a usage error before anything starts
    prefix = f"expresso-demo-{uuid.uuid4().hex[:6]}"
    bundle = load_bundle(load_config(None, args.overrides).model.bundle)  # a missing model fails before set-up
    if not args.json:
        print(f"expresso-edge demo: {video.name} through model {bundle.name}\n{NOT_A_DIAGNOSTIC_DEVICE}\n")
    with demo_broker(args.broker) as address, tempfile.TemporaryDirectory(prefix="expresso-demo-state-") as state:
        overrides = [
            f"device.state_dir={json.dumps(state)}",
            f"camera.source={json.dumps(str(video.resolve()))}",
            "camera.realtime=false",
            'privacy.consent="granted"',
            f"mqtt.host={json.dumps(address.host)}",
            f"mqtt.port={address.port}",
            f'mqtt.protocol="{address.protocol}"',
            f"mqtt.tls.enabled={'true' if address.tls else 'false'}",
            f"mqtt.topic_prefix={json.dumps(prefix)}",
            "mqtt.health_interval_s=5",
            "explain.window_share=1.0",  # a 12 s sample: explain every window so its regions reach k
            *args.overrides,
        ]
        config = load_config(None, overrides)
        prefix = config.mqtt.topic_prefix  # --set mqtt.topic_prefix=... wins over the fresh one
        if not args.json:
            print(f"{address.description}; topics {prefix}/{TOPIC_LEVEL}/<device>/...\n")
            print(_row(COLUMNS))
        integrator = Integrator(address, prefix, as_json=args.json)
        started = time.monotonic()
        try:
            with quiet_native_stderr(not args.verbose):
                if not args.verbose:
                    logging.getLogger("edge").setLevel(logging.WARNING)
                daemon = Daemon(config)
                daemon.run()
            integrator.offline.wait(10)
        finally:
            logging.getLogger("edge").setLevel(logging.NOTSET)
            integrator.close()
    if not args.json:
        took = time.monotonic() - started
        print(f"\n{daemon.summary_line()}; {integrator.summaries} summaries received in {took:.0f} s")
        if not integrator.summaries:
            print(f"no summary: fewer than privacy.k_min_windows={config.privacy.k_min_windows} windows were scored")
        print(NOT_A_DIAGNOSTIC_DEVICE)
    return 0
