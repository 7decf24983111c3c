"""Privacy by construction, checked from the outside: a daemon run on a real face video leaves no frame, crop,
landmark or embedding on the disk (state directory, temporary directory, working directory), in its DEBUG logs or
on the broker (every topic)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from daemon_media import daemon_command, face_video, tiny_bundle, write_config
from mqtt_broker import Broker, Subscriber

from edge.schemas import schema_errors

IMAGE_MAGIC = {
    b"\xff\xd8\xff": "JPEG",
    b"\x89PNG": "PNG",
    b"GIF8": "GIF",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"\x93NUMPY": "numpy .npy",
    b"PK\x03\x04": "zip / .npz",
}
NUMBER_RUN = re.compile(r"(?:[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?[\s,;]+){30,}")
"""30 numbers in a row: how landmarks or an embedding look when printed."""
BLOB = re.compile(r"[A-Za-z0-9+/]{200,}={0,2}")


def float_run(data: bytes, length: int = 64) -> int:
    """Length of the longest run (at 4-byte alignments) of float32 values that look like coordinates or features:
    finite, 1e-3 <= |x| <= 1e4. Text, SQLite pages and random secrets do not make runs of 64."""
    best = 0
    for offset in range(4):
        usable = (len(data) - offset) // 4 * 4
        if usable < 4 * length:
            continue
        values = np.frombuffer(data[offset : offset + usable], dtype="<f4")
        with np.errstate(invalid="ignore", over="ignore"):
            plausible = np.isfinite(values) & (np.abs(values) >= 1e-3) & (np.abs(values) <= 1e4)
        run = 0
        for ok in plausible:
            run = run + 1 if ok else 0
            best = max(best, run)
    return best


def frame_rows(video: Path) -> list[bytes]:
    """48-byte pieces of the video's decoded pixels (BGR and RGB) from busy rows: a raw frame on disk holds them."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    pieces = []
    for index in range(0, 90, 15):
        cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = cap.read()
        assert ok
        for image in (frame, frame[:, :, ::-1]):
            for y in range(100, 400, 60):
                row = np.ascontiguousarray(image[y, 300:316]).tobytes()
                if len(set(row)) >= 24:  # busy: not a flat stretch that zero-filled pages could match
                    pieces.append(row)
    cap.release()
    assert len(pieces) >= 20
    return pieces


def scan_file(path: Path, pieces: list[bytes]) -> list[str]:
    data = path.read_bytes()
    found = [f"{path}: starts like a {kind} file" for magic, kind in IMAGE_MAGIC.items() if data.startswith(magic)]
    if any(piece in data for piece in pieces):
        found.append(f"{path}: holds raw pixels of the video")
    if float_run(data) >= 64:
        found.append(f"{path}: holds a long run of float32 values (landmarks, embeddings, model input?)")
    text = data.decode("latin-1")
    if NUMBER_RUN.search(text):
        found.append(f"{path}: holds a long run of printed numbers")
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
def test_nothing_of_a_face_reaches_disk_logs_or_broker(mqtt_broker: Broker, tmp_path: Path) -> None:
    video = face_video(tmp_path / "face.mp4", seconds=3.0)
    bundle = tiny_bundle(tmp_path / "bundle", frames=8)
    state, scratch, cwd = tmp_path / "state", tmp_path / "tmp", tmp_path / "cwd"
    scratch.mkdir()
    cwd.mkdir()
    config = write_config(
        tmp_path / "c.toml",
        {
            "device": {"state_dir": str(state)},
            "camera": {"source": str(video), "realtime": False},
            "model": {"bundle": str(bundle.root), "backend": "onnxruntime", "threads": 1},
            "privacy": {"consent": "granted", "k_min_windows": 2},
            "mqtt": {"host": "127.0.0.1", "port": mqtt_broker.port, "health_interval_s": 1.0},
        },
    )
    everything = Subscriber(mqtt_broker.host, mqtt_broker.port, "#")
    env = {**os.environ, "TMPDIR": str(scratch), "PYTHONUNBUFFERED": "1"}
    try:
        done = subprocess.run(
            daemon_command(config, verbose="-vv"), capture_output=True, text=True, timeout=120, env=env, cwd=cwd
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert everything.wait_for(
            lambda ms: any(m.topic.endswith("/status") and b'"offline"' in m.payload for m in ms)
        )
    finally:
        everything.close()
    logs = done.stdout + done.stderr

    # The run did real work: faces found, windows scored, summaries published.
    summaries = [m.json() for m in everything.messages if m.topic.endswith("/summary")]
    assert summaries and summaries[0]["windows"]["scored"] >= 3
    assert "DEBUG" in logs

    # Disk: everything the daemon wrote in its state, temporary and working directories.
    pieces = frame_rows(video)
    written = [p for root in (state, scratch, cwd) for p in root.rglob("*") if p.is_file()]
    assert any(p.parent == state for p in written)
    problems = [problem for path in written for problem in scan_file(path, pieces)]
    assert problems == []
    assert sum(p.stat().st_size for p in written) < 512 * 1024  # one 16-frame mosaic window alone is 600 KB

    # Logs at DEBUG: no printed arrays, no blobs; a single window's score only ever at DEBUG.
    assert not NUMBER_RUN.search(logs) and not BLOB.search(logs)
    assert "array(" not in logs and "ndarray" not in logs
    for line in logs.splitlines():
        if re.search(r"scored \d+\.\d+", line):
            assert line.startswith("DEBUG"), line

    # Broker, every topic: small JSON documents that validate against their schemas, with no arrays of numbers.
    assert everything.messages
    for message in everything.messages:
        assert len(message.payload) < 8192
        document = json.loads(message.payload)
        name = document["schema"].removeprefix("expresso-edge/")
        assert schema_errors(document, name) == [], message.topic
        assert max(numeric_lists(document), default=0) <= 2  # e.g. the score range [0, 63], nothing longer


def test_the_scanner_finds_what_it_looks_for(tmp_path: Path) -> None:
    video = face_video(tmp_path / "face.mp4", seconds=3.0)
    pieces = frame_rows(video)
    import cv2

    frame = cv2.VideoCapture(str(video)).read()[1]
    cases = {
        "raw.bin": frame.tobytes(),
        "crop.png": cv2.imencode(".png", frame[100:200, 250:350])[1].tobytes(),
        "landmarks.bin": (np.random.default_rng(0).random((478, 3), dtype=np.float32) * 480).tobytes(),
        "landmarks.txt": json.dumps(np.round(np.random.default_rng(1).random(90) * 480, 2).tolist()).encode(),
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        assert scan_file(tmp_path / name, pieces), name
    (tmp_path / "ok.json").write_bytes(json.dumps({"mean": 21.5, "range": [0, 63], "text": "x" * 3000}).encode())
    assert scan_file(tmp_path / "ok.json", pieces) == []
