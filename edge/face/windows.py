"""Resample frames to the manifest's fixed rate by their timestamps and cut them into windows.

Resampling: sampled frames sit on a grid ``t0 + k / sample_fps`` started by the first frame (after a reset).
Each grid point takes the camera frame nearest to it: a frame at ``t`` is taken for every grid point up to
``t + dt / 2`` (``dt`` the camera's last frame interval), so a 30, 25 or 15 fps camera gives the same 8 fps
grid, and a camera slower than ``sample_fps`` has frames repeated (nearest-neighbour resampling) rather than the
clock stretched. ``dt`` is capped at the longer of the grid period and the interval before: a longer interval
means frames were left out (the capture thread hands over only the frames this rule takes), and the thinned
stream must get the same frames on the same grid points as the full one (training and calibration read full
videos). The decision is made from the timestamp alone, before any pixel is looked at, so frames that are not
taken cost nothing. A gap longer than ``max_gap`` seconds (or a timestamp going backwards) restarts the
grid and drops the partial window.

Windows: ``frames`` consecutive grid samples, a new one every ``window_stride`` samples. A landmark jump or a
change of primary face ends the window: the samples before it never share a window with the ones after. If
samples not yet part of an emitted window are dropped that way, one window is emitted for them, marked
``reject_reason="landmark_jump"``, padded to full length by repeating its last frame (``length`` says how many
are real), so rejections can be counted. A frame without a face repeats the last mosaic (black before any) and
counts against ``face_fraction``.

Window quality: fails with ``"face_lost"`` when fewer than ``min_face_fraction`` of its frames have the face,
else with the most frequent frame reason (ties: the more serious, in ``FRAME_REASONS`` order) when more than
``max_failed_fraction`` of its frames fail a check. Such windows are emitted all the same, with
``passed=False``; the daemon counts them instead of scoring them.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from edge.bundle.manifest import Tile
from edge.face.config import FaceConfig
from edge.face.quality import FRAME_REASONS, FrameQuality

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class WindowQuality:
    """Quality summary of one window."""

    passed: bool
    reject_reason: str | None
    face_fraction: float
    passed_fraction: float
    mean_abs_yaw: float | None
    mean_abs_pitch: float | None
    mean_brightness: float | None
    mean_contrast: float | None
    mean_blur: float | None
    reasons: dict[str, int] = field(default_factory=dict)  # frames failing each check


@dataclass(frozen=True)
class Window:
    """``frames`` resampled mosaic frames of one face, in memory only."""

    frames: npt.NDArray[np.uint8]  # (T, H, W, 3) RGB
    start: float  # timestamp of the first frame, seconds
    end: float  # timestamp of the last frame, seconds
    quality: WindowQuality
    sample_times: npt.NDArray[np.float64]  # (T,) timestamps of the camera frames used
    grid_times: npt.NDArray[np.float64]  # (T,) resampling grid points they stand for
    tiles: tuple[Tile, ...]  # which region each mosaic tile holds
    region_corners: dict[str, npt.NDArray[np.float32]]  # region -> (T, 4, 2) box corners in frame pixels (NaN: none)
    length: int  # real frames (< T only for a window cut short by a landmark jump)


@dataclass(frozen=True)
class Sample:
    """One grid point's frame as the window buffer keeps it."""

    mosaic: npt.NDArray[np.uint8]
    timestamp: float
    grid_time: float
    quality: FrameQuality
    corners: dict[str, npt.NDArray[np.float32]]


class Resampler:
    """Decides from timestamps which camera frames stand for which points of the fixed-rate grid."""

    def __init__(self, sample_fps: float, max_gap: float) -> None:
        self.period = 1.0 / sample_fps
        self._max_gap = max_gap
        self._next: float | None = None
        self._last: float | None = None
        self._dt = 0.0
        self._interval = 0.0  # the last frame interval, uncapped

    def due(self, timestamp: float) -> tuple[list[float], bool]:
        """Grid points this frame stands for (often none) and whether the grid restarted here."""
        restart = self._next is None
        if self._last is not None and (timestamp <= self._last or timestamp - self._last > self._max_gap):
            if timestamp <= self._last:
                LOG.warning(
                    "frame timestamp %.3f s is not after the previous one (%.3f s): restarting the window",
                    timestamp,
                    self._last,
                )
            restart = True
        if restart:
            self._next, self._dt, self._interval = timestamp, 0.0, 0.0
        else:
            assert self._last is not None
            interval = timestamp - self._last
            self._dt = min(interval, max(self.period, self._interval))
            self._interval = interval
        self._last = timestamp
        assert self._next is not None
        reach = timestamp + self._dt / 2
        grid = []
        while self._next <= reach + 1e-9:
            grid.append(self._next)
            self._next += self.period
        return grid, restart

    def reset(self) -> None:
        """Start a new grid at the next frame."""
        self._next = self._last = None
        self._dt = self._interval = 0.0


def missing_allowance(frames: int, config: FaceConfig) -> int:
    """The most frames without the face that a window of ``frames`` may hold and still pass."""
    return max((m for m in range(frames + 1) if (frames - m) / frames >= config.min_face_fraction), default=0)


def window_quality(qualities: list[FrameQuality], config: FaceConfig) -> WindowQuality:
    """Summarise the frames' quality and decide whether the window may be scored."""
    total = len(qualities)
    with_face = [q for q in qualities if q.face_present]
    counts = Counter(reason for q in qualities for reason in q.reasons)
    face_fraction = len(with_face) / total
    passed_fraction = sum(q.passed for q in qualities) / total
    reason: str | None = None
    if face_fraction < config.min_face_fraction:
        reason = "face_lost"
    elif 1.0 - passed_fraction > config.max_failed_fraction:
        reason = max(counts, key=lambda r: (counts[r], -FRAME_REASONS.index(r)))

    def mean(values: list[float | None]) -> float | None:
        real = [abs(v) for v in values if v is not None]
        return float(np.mean(real)) if real else None

    return WindowQuality(
        passed=reason is None,
        reject_reason=reason,
        face_fraction=face_fraction,
        passed_fraction=passed_fraction,
        mean_abs_yaw=mean([q.yaw for q in with_face]),
        mean_abs_pitch=mean([q.pitch for q in with_face]),
        mean_brightness=mean([q.brightness for q in with_face]),
        mean_contrast=mean([q.contrast for q in with_face]),
        mean_blur=mean([q.blur for q in with_face]),
        reasons=dict(counts),
    )


class WindowBuffer:
    """Collects grid samples and emits a window every ``stride`` samples once ``frames`` are there."""

    def __init__(self, frames: int, stride: int, tiles: tuple[Tile, ...], config: FaceConfig) -> None:
        self._frames, self._stride, self._tiles, self._config = frames, stride, tiles, config
        self._buffer: deque[Sample] = deque(maxlen=frames)
        self._fresh = 0  # samples not yet in an emitted window

    def add(self, sample: Sample) -> Window | None:
        """Append one sample; the window it completes, if any."""
        self._buffer.append(sample)
        self._fresh += 1
        if len(self._buffer) == self._frames and self._fresh >= self._stride:
            self._fresh = 0
            return self._window(list(self._buffer), reject=None)
        return None

    def cut(self, *, reject: str | None) -> Window | None:
        """End the current window; with ``reject``, emit the samples not yet emitted as one rejected window."""
        pending = list(self._buffer)[-self._fresh :] if self._fresh else []
        self._buffer.clear()
        self._fresh = 0
        if reject is None or not pending:
            return None
        return self._window(pending, reject=reject)

    def _window(self, samples: list[Sample], *, reject: str | None) -> Window:
        length = len(samples)
        samples = samples + [samples[-1]] * (self._frames - length)
        quality = window_quality([s.quality for s in samples[:length]], self._config)
        if reject is not None:
            quality = WindowQuality(**{**quality.__dict__, "passed": False, "reject_reason": reject})
        corners = {
            tile.region: np.stack([s.corners.get(tile.region, _NO_CORNERS) for s in samples]) for tile in self._tiles
        }
        return Window(
            frames=np.stack([s.mosaic for s in samples]),
            start=samples[0].timestamp,
            end=samples[length - 1].timestamp,
            quality=quality,
            sample_times=np.array([s.timestamp for s in samples]),
            grid_times=np.array([s.grid_time for s in samples]),
            tiles=self._tiles,
            region_corners=corners,
            length=length,
        )


_NO_CORNERS = np.full((4, 2), np.nan, dtype=np.float32)
