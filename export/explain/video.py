"""One video through the device's face pipeline, every passed window attributed, pooled and correlated.

The windows, mosaics and landmarks are the ones the device would make (``edge.face``); they stay in memory. What
comes out is numbers per window and per video: region attribution (raw, shares), the per-frame curve, the
behaviour descriptors per sampled frame and their Spearman correlations with the curve.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.face import FacePipeline
from edge.face.descriptors import DESCRIPTORS, finish_video, frame_descriptors
from edge.face.video import iter_video_frames
from edge.preprocess import window_to_input
from export.explain.correlate import mean_correlations, window_correlations
from export.explain.methods import Method
from export.explain.pooling import FloatArray, PooledWindow, pool_video, pool_window


@dataclass(frozen=True)
class WindowResult:
    """One scored window: its time span, score, pooled attribution and correlations."""

    start: float
    end: float
    score: float
    pooled: PooledWindow
    sample_times: FloatArray
    correlations: dict[str, float]


@dataclass
class VideoResult:
    """A video's explanation: per-window results, per-video pooling, curve and descriptor series."""

    video: str
    regions: tuple[str, ...]
    windows: list[WindowResult]
    frame_times: FloatArray  # sampled frames with a face
    descriptors: FloatArray  # (F, len(DESCRIPTORS))
    label: float | None = None
    raw: FloatArray = field(init=False)
    shares: FloatArray = field(init=False)

    def __post_init__(self) -> None:
        self.raw, self.shares = pool_video([w.pooled for w in self.windows])

    @property
    def score(self) -> float:
        """The mean of the window scores (Expresso-AI's per-participant prediction)."""
        return float(np.mean([w.score for w in self.windows]))

    @property
    def correlations(self) -> dict[str, float | None]:
        """Per descriptor, the mean over windows of Spearman's rho with the attribution curve."""
        return mean_correlations([w.correlations for w in self.windows])

    def curve(self) -> tuple[FloatArray, FloatArray]:
        """The per-frame attribution curve over the video: at each sampled time, the mean over the windows
        holding that frame."""
        times = np.unique(np.concatenate([w.sample_times for w in self.windows]))
        total, count = np.zeros_like(times), np.zeros_like(times)
        for w in self.windows:
            at = np.searchsorted(times, w.sample_times)
            np.add.at(total, at, w.pooled.curve)
            np.add.at(count, at, 1.0)
        return times, total / np.maximum(count, 1.0)


def explain_video(
    path: Path, method: Method, *, label: float | None = None, progress: Callable[[int], None] | None = None
) -> VideoResult:
    """Run ``method`` on every passed window of ``path``; ``progress`` is called with each window count."""
    descriptors: dict[float, dict[str, float]] = {}
    scored: list[tuple[float, float, float, PooledWindow, FloatArray]] = []
    previous = None
    with FacePipeline(method.spec, method.tiles) as pipeline:
        for frame, timestamp in iter_video_frames(path):
            result = pipeline.push(frame, timestamp, color_order="BGR")
            if result.sampled and result.raw_landmarks is not None:
                descriptors[result.timestamp] = frame_descriptors(result.raw_landmarks, previous)
            previous = result.raw_landmarks if result.sampled else previous
            for window in result.windows:
                if window.quality.passed:
                    score, per_frame = method.attribute(window_to_input(window.frames, method.spec))
                    times = np.asarray(window.sample_times, dtype=np.float64)
                    scored.append((window.start, window.end, score, pool_window(per_frame), times))
                    if progress is not None:
                        progress(1)
    frame_times = np.array(sorted(descriptors), dtype=np.float64)
    series = finish_video(_series(descriptors, frame_times))  # blinks against the whole video's eye openness
    rows = {float(t): row for t, row in zip(frame_times, series, strict=True)}
    missing = np.full(len(DESCRIPTORS), np.nan)
    windows = [
        WindowResult(
            start,
            end,
            score,
            pooled,
            times,
            window_correlations(pooled.curve, np.array([rows.get(float(t), missing) for t in times])),
        )
        for start, end, score, pooled, times in scored
    ]
    return VideoResult(path.name, tuple(t.region for t in method.tiles), windows, frame_times, series, label)


def _series(descriptors: dict[float, dict[str, float]], times: FloatArray) -> FloatArray:
    """Descriptor rows at ``times`` (NaN where the frame had no face)."""
    empty = dict.fromkeys(DESCRIPTORS, float("nan"))
    return np.array([[descriptors.get(float(t), empty)[n] for n in DESCRIPTORS] for t in times], dtype=np.float64)
