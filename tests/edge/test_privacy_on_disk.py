"""Privacy by construction, checked from the outside: a daemon run on a real face video, read as a file and as a
live camera-like stream, leaves no frame, crop, landmark or embedding on the disk (state, temporary, working, home
and cache directories, the broker's directory), in its DEBUG logs or on the broker (every topic).

The scanner (:mod:`privacy_scan`) looks for the very pixels and landmark values the face pipeline computes on that
video, in any encoding; the second half of this module plants each kind of leak and checks that it is found."""

from __future__ import annotations

import base64
import http.server
import json
import os
import re
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from daemon_media import daemon_command, face_video, faceless_video, tiny_bundle, write_config
from mqtt_broker import Broker, Received, Subscriber
from privacy_scan import FaceTraces, Scanner, face_traces

from edge.bundle import Bundle
from edge.face.descriptors import DESCRIPTORS
from edge.schemas import schema_errors

BLOB = re.compile(r"[A-Za-z0-9+/]{200,}={0,2}")


@dataclass(frozen=True)
class Media:
    """The face video (MJPG, so a file and an HTTP stream decode to the same pixels), its bundle and traces."""

    video: Path
    bundle: Bundle
    traces: FaceTraces
    scanner: Scanner


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    root = tmp_path_factory.mktemp("privacy-media")
    video = face_video(root / "face.avi", seconds=3.0, fourcc="MJPG")
    bundle = tiny_bundle(root / "bundle", frames=8)
    traces = face_traces(video, bundle)
    return Media(video, bundle, traces, Scanner(traces))


@contextmanager
def paced_stream(video: Path) -> Iterator[str]:
    """``video`` served over loopback HTTP at its own frame rate: a live source, read as a camera is."""
    data = video.read_bytes()
    chunks = round(cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FRAME_COUNT))
    step = -(-len(data) // chunks)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "video/x-msvideo")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            start = time.monotonic()
            try:
                for index, offset in enumerate(range(0, len(data), step)):
                    time.sleep(max(0.0, start + index / 30.0 - time.monotonic()))
                    self.wfile.write(data[offset : offset + step])
            except (BrokenPipeError, ConnectionResetError):
                return

        def log_message(self, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{video.name}"
    finally:
        server.shutdown()
        thread.join()


@dataclass(frozen=True)
class DaemonRun:
    """What a daemon run left behind: the directories it could write to, its logs, what the broker received."""

    roots: list[Path]
    logs: str
    messages: list[Received]


def offline(messages: list[Received]) -> bool:
    return any(m.topic.endswith("/status") and m.json()["state"] == "offline" for m in messages)


def scored(count: int) -> Callable[[list[Received]], bool]:
    return lambda messages: any(
        m.topic.endswith("/health") and m.json()["metrics"].get("windows_scored", 0) >= count for m in messages
    )


def run_daemon(tmp_path: Path, broker: Broker, bundle: Path, source: str, *, live: bool) -> DaemonRun:
    """Run ``python -m edge -vv run`` with its own TMPDIR, working directory, HOME and XDG directories.

    A file is read to its end; a live stream runs until 3 windows are scored, then gets SIGTERM."""
    roots = [tmp_path / name for name in ("state", "tmp", "cwd", "home", "cache")]
    state, scratch, cwd, home, cache = roots
    for root in roots[1:]:
        root.mkdir()
    config = write_config(
        tmp_path / "c.toml",
        {
            "device": {"state_dir": str(state)},
            "camera": {"source": source, "realtime": False},
            "model": {"bundle": str(bundle), "backend": "onnxruntime", "threads": 1, "allow_random_weights": True},
            # a live source runs on the wall clock: publish at once, do not hold until the 15-minute period ends
            "privacy": {"consent": "granted", "k_min_windows": 2, "hold_until_period_end": not live},
            "mqtt": {"host": "127.0.0.1", "port": broker.port, "health_interval_s": 0.5},
            # every scored window occluded tile by tile, behaviour descriptors from every frame's landmarks: in memory
            "explain": {"window_share": 1.0, "descriptors": True},
        },
    )
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "TMPDIR": str(scratch),
        "HOME": str(home),
        "XDG_CACHE_HOME": str(cache),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_STATE_HOME": str(home / ".local/state"),
    }
    everything = Subscriber(broker.host, broker.port, "#")
    log = tmp_path / "daemon.log"  # outside the roots: the test's own copy of stdout and stderr
    try:
        with log.open("w") as out:
            proc = subprocess.Popen(
                daemon_command(config, verbose="-vv"), stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd
            )
            try:
                if live:
                    assert everything.wait_for(scored(3), 60), log.read_text()[-3000:]
                    proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
            finally:
                proc.kill()
        assert everything.wait_for(offline)
    finally:
        everything.close()
    return DaemonRun([*roots, broker.workdir], log.read_text(), list(everything.messages))


def traces_left_by(run: DaemonRun, scanner: Scanner) -> list[str]:
    """Everything the scanner finds in every file under the run's roots, its logs and every broker message."""
    found = [
        problem
        for root in run.roots
        for path in sorted(root.rglob("*"))
        if path.is_file()
        for problem in scanner.scan(path.read_bytes(), str(path))
    ]
    found += scanner.scan(run.logs.encode(), "the daemon's logs")
    for message in run.messages:
        found += scanner.scan(message.topic.encode() + b"\n" + message.payload, f"broker message on {message.topic}")
    return found


def numeric_lists(document: Any) -> list[int]:
    """Lengths of every list of numbers inside a JSON document."""
    if isinstance(document, dict):
        return [n for value in document.values() for n in numeric_lists(value)]
    if isinstance(document, list):
        inner = [n for value in document for n in numeric_lists(value)]
        numbers = sum(isinstance(v, (int, float)) and not isinstance(v, bool) for v in document)
        return [numbers, *inner]
    return []


@pytest.mark.slow
@pytest.mark.parametrize("live", [False, True], ids=["video-file", "live-stream"])
def test_nothing_of_a_face_reaches_disk_logs_or_broker(
    media: Media, mqtt_broker: Broker, tmp_path: Path, live: bool
) -> None:
    with paced_stream(media.video) if live else nullcontext(str(media.video)) as source:
        run = run_daemon(tmp_path, mqtt_broker, media.bundle.root, source, live=live)

    # The run did real work: faces found, windows scored, summaries published, DEBUG logged.
    summaries = [m.json() for m in run.messages if m.topic.endswith("/summary")]
    assert summaries and max(s["windows"]["scored"] for s in summaries) >= 2
    assert "DEBUG" in run.logs
    assert any(path.is_file() for path in run.roots[0].iterdir())  # the state directory was written

    # No image, pixel run, landmark value (binary or printed) or feature vector anywhere, base64 or not.
    assert traces_left_by(run, media.scanner) == []

    # Logs at DEBUG: no printed arrays, no blobs; a single window's score only ever at DEBUG.
    assert not BLOB.search(run.logs)
    assert "array(" not in run.logs and "ndarray" not in run.logs
    for line in run.logs.splitlines():
        if re.search(r"scored \d+\.\d+", line):
            assert line.startswith("DEBUG"), line
    # ... and no window's region share, at any level: shares leave only as the summaries' means
    assert not re.search(r"\b(right_eyebrow|left_eyebrow|right_eye|left_eye|nose|mouth)\W{0,4}\d*\.\d+", run.logs)

    # Broker, every topic: small JSON documents that validate against their schemas, with no arrays of numbers.
    for message in run.messages:
        assert len(message.payload) < 8192
        document = json.loads(message.payload)
        name = document["schema"].removeprefix("expresso-edge/")
        assert schema_errors(document, name) == [], message.topic
        assert max(numeric_lists(document), default=0) <= 2  # e.g. the score range [0, 63], nothing longer

    # Region explanations leave only as one mean per summary, resting on at least k explained windows.
    explained = [s for s in summaries if s["regions"]]
    assert explained, "no summary carried region shares"
    for summary in explained:
        assert summary["windows"]["explained"] >= summary["privacy"]["k"]
        assert set(summary["regions"]) <= {"right_eyebrow", "left_eyebrow", "right_eye", "left_eye", "nose", "mouth"}
        assert sum(summary["regions"].values()) == pytest.approx(1.0, abs=0.01)
    # Behaviour descriptors leave only as a few means per summary (the scan above found no landmark in them).
    assert all(set(s["behaviour"]) <= set(DESCRIPTORS) for s in summaries) and any(s["behaviour"] for s in summaries)


# ---- the scanner's power: each kind of leak, planted, is found ---------------------------------------------------


def plant_leaks(traces: FaceTraces) -> dict[str, tuple[bytes, str]]:
    """Name -> (bytes as a leaky daemon could write them, what the scanner must say about them)."""
    frame, points, mosaic = traces.frames[5], traces.landmarks[7], traces.mosaics[3]
    width, height = traces.size
    crop = frame[150:262, 260:372]  # 112 x 112, about the face
    png = cv2.imencode(".png", crop)[1].tobytes()
    jpeg = cv2.imencode(".jpg", crop)[1].tobytes()
    normalised = points / np.array([width, height, width], dtype=np.float32)
    return {
        "raw crop": (b"hdr" + crop.tobytes(), "raw pixels"),
        "raw grey crop": (cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY).tobytes(), "raw pixels"),
        "frame resized to the mosaic": (cv2.resize(frame, (112, 112))[:, :, ::-1].tobytes(), "raw pixels"),
        "mosaic": (mosaic.tobytes(), "raw pixels"),
        "PNG inside a SQLite file": (sqlite_with_blob(png), "a PNG image"),
        "JPEG in the middle of a file": (b"x" * 999 + jpeg + b"y" * 999, "a JPEG image"),
        "base64 JPEG in a log line": (b"DEBUG edge.face: crop " + base64.b64encode(jpeg) + b"\n", "base64"),
        "base64 float32 landmarks": (b'{"l": "' + base64.b64encode(points.tobytes()) + b'"}', "landmarks as <f4"),
        "float64 landmarks": (b"\x01" * 3 + points.astype(np.float64).tobytes(), "landmarks as <f8"),
        "float16 landmarks": (points.astype(np.float16).tobytes(), "landmarks as <f2"),
        "normalised float32 landmarks": (normalised.tobytes(), "landmarks as <f4"),
        "normalised float64 landmarks": (normalised.astype(np.float64).tobytes(), "landmarks as <f8"),
        "(478, 3) array in a log line": (f"DEBUG edge.face: landmarks {points}\n".encode(), "landmarks as text"),
        "list of lists": (json.dumps({"landmarks": points.tolist()}).encode(), "landmarks as text"),
        "3 significant digits": (" ".join(f"{v:.3g}" for v in normalised.ravel()).encode(), "landmarks as text"),
        "an embedding": (np.linspace(-3, 3, 128, dtype=np.float32).tobytes(), "a run of 64+ <f4"),
    }


def sqlite_with_blob(blob: bytes) -> bytes:
    """A SQLite database (the outbox's format) holding a JSON row and ``blob``, as bytes."""
    with sqlite3.connect(":memory:") as db:
        db.execute("create table outbox (id integer primary key, payload text, extra blob)")
        db.execute("insert into outbox (payload, extra) values (?, ?)", ('{"mean": 21.5}', blob))
        return db.serialize()


def test_the_scanner_finds_every_kind_of_planted_leak(media: Media) -> None:
    leaks = plant_leaks(media.traces)
    missed = {
        name: what for name, (data, what) in leaks.items() if not any(what in f for f in media.scanner.scan(data, name))
    }
    assert missed == {}


def test_the_scanner_finds_leaks_in_every_scanned_place(media: Media, tmp_path: Path) -> None:
    """Planted in HOME, the cache, the state directory, the logs and a broker payload, each leak is reported there."""
    roots = [tmp_path / name for name in ("state", "tmp", "cwd", "home", "cache")]
    for root in roots:
        root.mkdir()
    points = media.traces.landmarks[2]
    (roots[3] / ".cache-crop.raw").write_bytes(media.traces.frames[1][200:312, 250:362].tobytes())
    (roots[4] / "mediapipe" / "x").parent.mkdir()
    (roots[4] / "mediapipe" / "x").write_bytes(points.astype(np.float64).tobytes())
    payload = json.dumps({"schema": "expresso-edge/health", "points": points[:4].tolist()}).encode()
    run = DaemonRun(roots, f"INFO landmarks {points}\n", [Received("edge/x/health", payload, False)])
    found = traces_left_by(run, media.scanner)
    for place in ("home/.cache-crop.raw", "cache/mediapipe/x", "the daemon's logs", "broker message on edge/x/health"):
        assert any(place in problem for problem in found), place


def test_the_scanner_passes_what_the_daemon_may_write(media: Media, tmp_path: Path) -> None:
    other = faceless_video(tmp_path / "cup.mp4", seconds=0.5)
    cup = cv2.VideoCapture(str(other)).read()[1]
    rng = np.random.default_rng(0)
    clean = {
        "summary JSON": json.dumps({"mean": 21.5, "range": [0, 63], "windows": 12, "text": "x" * 3000}).encode(),
        "outbox": sqlite_with_blob(json.dumps({"score": {"mean": 23.41, "p90": 31.07}}).encode()),
        "device secret": rng.integers(0, 256, 64 * 1024, dtype=np.uint8).tobytes(),
        "another picture's pixels": cup.tobytes(),
        "log lines": b"INFO frames 90 faces 88 windows 5; 29.97 fps, 12.34 ms 0.125 s 640x480 1883 255.0 21.53\n" * 50,
        "a hex digest": ("a3" * 500).encode(),
    }
    assert {name: media.scanner.scan(data, name) for name, data in clean.items()} == {name: [] for name in clean}
