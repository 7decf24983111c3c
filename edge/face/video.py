"""Frames and windows from a video file (calibration, training, benchmarks; the daemon reads its camera).

Timestamps are the container's own presentation times (``CAP_PROP_POS_MSEC``), so a variable-frame-rate
recording is resampled by when its frames were taken, not by counting them. Where those times are missing or
stop increasing (some containers and backends report 0 or repeat a time), the rest of the file is timed by
counting frames at the container's frame rate from the last good time, see :class:`FrameClock`; a file
without any usable time gets ``frame index / frame rate``. A file that cannot be opened or yields no frame raises
:class:`edge.errors.InputError`. FIELD-NOTES: a damaged file can decode "successfully" with smeared frames;
the pipeline's landmark-jump check is what catches those.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edge.bundle.manifest import InputSpec, Tile
from edge.errors import InputError
from edge.face.config import FaceConfig
from edge.face.pipeline import FacePipeline
from edge.face.windows import Window

FALLBACK_FPS = 30.0


def video_fps(capture: cv2.VideoCapture) -> float:
    """The container's frame rate, or 30 where it records none."""
    fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    return fps if 0.0 < fps < 1000.0 else FALLBACK_FPS


class FrameClock:
    """Seconds for each decoded frame in turn, from the container's time of that frame.

    The container's time is used while it is finite, not negative and greater than the one before; from the
    first frame where it is not, each frame is timed ``1 / fps`` after the one before it for the rest of the
    file (a clock that failed once is not trusted again): ``index / fps`` if the first frame already failed.
    """

    def __init__(self, fps: float) -> None:
        self._fps = fps
        self._good: float | None = None  # the last container time used
        self._counted: int | None = None  # frames timed by counting since then (None: the clock is trusted)

    def __call__(self, container_seconds: float) -> float:
        """The timestamp of the next frame, whose container time is ``container_seconds``."""
        fine = math.isfinite(container_seconds) and container_seconds >= 0.0
        if self._counted is None and fine and (self._good is None or container_seconds > self._good):
            self._good = container_seconds
            return container_seconds
        if self._good is None:  # no usable time at all: count from 0
            self._counted = 0 if self._counted is None else self._counted + 1
            return self._counted / self._fps
        self._counted = 1 if self._counted is None else self._counted + 1
        return self._good + self._counted / self._fps


def open_video(path: str | Path) -> cv2.VideoCapture:
    """Open a video file for reading or raise InputError naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"video {path} does not exist", fix="check the path")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise InputError(
            f"video {path} cannot be opened", fix="check that it is a video OpenCV can decode (MP4/mp4v, AVI/MJPG)"
        )
    return capture


def iter_video_frames(
    path: str | Path, *, max_frames: int | None = None
) -> Iterator[tuple[npt.NDArray[np.uint8], float]]:
    """Yield ``(BGR frame, seconds)`` for each frame of the video, up to ``max_frames``."""
    capture = open_video(path)
    try:
        clock = FrameClock(video_fps(capture))
        index = 0
        while max_frames is None or index < max_frames:
            ok, frame = capture.read()
            if not ok:
                break
            yield np.asarray(frame, dtype=np.uint8), clock(capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0)
            index += 1
        if index == 0:
            raise InputError(f"video {path} has no readable frame", fix="check the file; re-encode it if damaged")
    finally:
        capture.release()


def windows_from_video(
    path: str | Path,
    input_spec: InputSpec,
    tiles: Sequence[Tile],
    config: FaceConfig | None = None,
    *,
    pipeline: FacePipeline | None = None,
) -> Iterator[Window]:
    """Every window (passed or not: check ``window.quality.passed``) the pipeline makes from a video file.

    Pass ``pipeline`` to reuse one (it is reset first and left open); otherwise one is made and closed.
    """
    own = pipeline is None
    pipe = FacePipeline(input_spec, tiles, config) if pipeline is None else pipeline
    pipe.reset()
    try:
        for frame, timestamp in iter_video_frames(path):
            yield from pipe.push(frame, timestamp, color_order="BGR").windows
    finally:
        if own:
            pipe.close()
