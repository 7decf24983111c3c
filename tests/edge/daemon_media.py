"""Tiny fixtures for the daemon's tests, made on the fly: short videos (a real face, no face, damaged) and a
minimal model bundle whose ONNX graph is built with onnx.helper (a mean over the window, no torch needed)."""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import socket
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from bundle_factory import write_test_bundle

from edge.bundle import Bundle


def _moving(image: npt.NDArray[np.uint8], count: int, size: tuple[int, int]) -> list[npt.NDArray[np.uint8]]:
    """``count`` frames of ``image`` resized to ``size`` (w, h), drifting a few pixels like a hand-held camera."""
    base = cv2.resize(image, size)
    frames = []
    for i in range(count):
        shift = np.float32([[1, 0, 4 * np.sin(i / 6)], [0, 1, 3 * np.cos(i / 9)]])
        frames.append(cv2.warpAffine(base, shift, size, borderMode=cv2.BORDER_REFLECT))
    return frames


def write_video(path: Path, frames: list[npt.NDArray[np.uint8]], fps: float = 30.0, fourcc: str = "mp4v") -> Path:
    """Write BGR ``frames`` as an MPEG-4 (mp4v) file, or with another codec (``"MJPG"`` in an .avi streams)."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def _photo(name: str) -> npt.NDArray[np.uint8]:
    from skimage import data

    return cv2.cvtColor(getattr(data, name)(), cv2.COLOR_RGB2BGR)


def face_video(
    path: Path, seconds: float = 3.0, fps: float = 30.0, size: tuple[int, int] = (640, 480), fourcc: str = "mp4v"
) -> Path:
    """A video of skimage's astronaut portrait (one real face), gently moving."""
    return write_video(path, _moving(_photo("astronaut"), round(seconds * fps), size), fps, fourcc)


def faceless_video(path: Path, seconds: float = 2.0, fps: float = 30.0, size: tuple[int, int] = (640, 480)) -> Path:
    """A video with no face in it: skimage's coffee cup."""
    return write_video(path, _moving(_photo("coffee"), round(seconds * fps), size), fps)


def stretches_video(path: Path, *stretches: tuple[bool, float], fps: float = 30.0) -> Path:
    """Stretches of ``(face?, seconds)``: the astronaut where there is a face, the coffee cup where there is none."""
    size = (640, 480)
    frames = []
    for face, seconds in stretches:
        frames += _moving(_photo("astronaut" if face else "coffee"), round(seconds * fps), size)
    return write_video(path, frames, fps)


def face_then_none_video(path: Path, face_s: float, none_s: float, fps: float = 30.0) -> Path:
    """``face_s`` seconds of the astronaut, then ``none_s`` seconds of the coffee cup."""
    return stretches_video(path, (True, face_s), (False, none_s), fps=fps)


def damage(path: Path, out: Path, *, keep: float = 0.5, garble: bool = True) -> Path:
    """A copy of ``path`` truncated to ``keep`` of its bytes, with a stretch in the middle overwritten by noise."""
    data = bytearray(path.read_bytes())
    data = data[: int(len(data) * keep)]
    if garble:
        rng = np.random.default_rng(0)
        start = len(data) // 3
        data[start : start + len(data) // 6] = rng.integers(0, 256, len(data) // 6, dtype=np.uint8).tobytes()
    out.write_bytes(bytes(data))
    return out


BDI_AND_PHQ9 = (
    {"name": "bdi_ii", "units": "BDI-II", "range": [0.0, 63.0]},
    {"name": "phq9", "units": "PHQ-9", "range": [0.0, 27.0]},
)
"""The outputs of :func:`tiny_bundle` with ``two_outputs``: a BDI-II head and a PHQ-9 head."""
PHQ9_PER_BDI = 0.4
"""The two-output model's PHQ-9 score is this times its BDI-II score (both linear in the window's mean)."""


def tiny_bundle(root: Path, frames: int = 16, size: int = 112, *, two_outputs: bool = False) -> Bundle:
    """A valid bundle whose model scores a window as 20 + 10 x (mean of the normalised input): plumbing only.

    With ``two_outputs`` the model has one ``(N, 2)`` output, the BDI-II score and :data:`PHQ9_PER_BDI` times it
    (:data:`BDI_AND_PHQ9`), as a bundle of several outputs has them."""
    from onnx import TensorProto, helper

    shape = ["N", frames, 3, size, size]
    nodes = [
        helper.make_node("ReduceMean", ["clip", "axes"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "gain"], ["scaled"]),
        helper.make_node("Add", ["scaled", "offset"], ["score"]),
    ]
    output = helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N"])
    if two_outputs:
        nodes = [
            *nodes[:2],
            helper.make_node("Add", ["scaled", "offset"], ["bdi"]),
            helper.make_node("Unsqueeze", ["bdi", "column"], ["bdi_column"]),
            helper.make_node("Mul", ["bdi_column", "ratio"], ["phq_column"]),
            helper.make_node("Concat", ["bdi_column", "phq_column"], ["score"], axis=1),
        ]
        output = helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 2])
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("clip", TensorProto.FLOAT, shape)],
        [output],
        initializer=[
            helper.make_tensor("axes", TensorProto.INT64, [4], [1, 2, 3, 4]),
            helper.make_tensor("gain", TensorProto.FLOAT, [], [10.0]),
            helper.make_tensor("offset", TensorProto.FLOAT, [], [20.0]),
            *(
                [
                    helper.make_tensor("column", TensorProto.INT64, [1], [1]),
                    helper.make_tensor("ratio", TensorProto.FLOAT, [], [PHQ9_PER_BDI]),
                ]
                if two_outputs
                else []
            ),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return write_test_bundle(
        root,
        model,
        architecture="mean-probe",
        frames=frames,
        size=size,
        parameters=2,
        macs=frames * 3 * size * size,
        intended_use="tests of the daemon's plumbing",
        limitation="not a model: the mean of its input",
        outputs=BDI_AND_PHQ9 if two_outputs else (),
    )


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))


def write_config(path: Path, sections: dict[str, dict[str, object]]) -> Path:
    """Write ``{"section": {"key": value}}`` (dotted section names for tables in tables) as TOML."""
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def daemon_command(config: Path, *extra: str, verbose: str = "-v") -> list[str]:
    """The command line of ``python -m edge run`` for ``config``."""
    return [sys.executable, "-m", "edge", verbose, "run", "--config", str(config), *extra]


@functools.cache
def media_set() -> dict[str, Any]:
    """A bundle with 8-frame windows (stride 4) and short videos: 3 s face, 2 s no face, 2 s face then 2 s none.

    Made once per test process (in a temporary directory removed at exit) and shared by the daemon's test modules.
    """
    root = Path(tempfile.mkdtemp(prefix="daemon-media-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return {
        "bundle": tiny_bundle(root / "bundle", frames=8),
        "two_output_bundle": tiny_bundle(root / "two_outputs", frames=8, two_outputs=True),
        "face": face_video(root / "face.mp4", seconds=3.0),
        "faceless": faceless_video(root / "faceless.mp4", seconds=2.0),
        "face_then_none": face_then_none_video(root / "face_then_none.mp4", 2.0, 2.0),
        "two_sessions": stretches_video(
            root / "two_sessions.mp4", (True, 2.5), (False, 1.5), (True, 2.5), (False, 3.0)
        ),
    }


class NotifySocket:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET, recording what the daemon sends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue

    def lines(self) -> list[str]:
        return [line for message in list(self.messages) for line in message.splitlines()]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()
