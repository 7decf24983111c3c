"""Resampling by timestamps and the window buffer (pure logic, no mediapipe)."""

from __future__ import annotations

import numpy as np
import pytest

from edge.bundle import Tile
from edge.capture import _selector
from edge.face import FaceConfig, FrameQuality
from edge.face.quality import NO_FACE
from edge.face.windows import Resampler, Sample, WindowBuffer, window_quality

GOOD = FrameQuality(face_present=True, faces=1, yaw=5.0, pitch=0.0, roll=0.0, brightness=120.0, blur=300.0)
DARK = FrameQuality(face_present=True, faces=1, yaw=5.0, pitch=0.0, roll=0.0, brightness=20.0, reasons=("dark",))
TILES = (Tile("mouth", 0, 0, 4, 4),)


def _sample_times(camera_fps: float, seconds: float, sample_fps: float = 8.0) -> tuple[list[float], list[float]]:
    resampler = Resampler(sample_fps, max_gap=0.5)
    taken, grid = [], []
    for index in range(int(seconds * camera_fps)):
        timestamp = 100.0 + index / camera_fps
        points, _ = resampler.due(timestamp)
        taken += [timestamp] * len(points)
        grid += points
    return taken, grid


@pytest.mark.parametrize("camera_fps", [30.0, 25.0, 15.0, 5.0])
def test_the_grid_keeps_the_sampling_rate_whatever_the_camera(camera_fps: float) -> None:
    taken, grid = _sample_times(camera_fps, 4.0)
    assert np.allclose(np.diff(grid), 1 / 8)
    assert len(grid) == pytest.approx(4.0 * 8, abs=1)
    # each grid point takes the camera frame nearest to it
    assert np.max(np.abs(np.array(taken) - np.array(grid))) <= 0.5 / camera_fps + 1e-9


def test_a_camera_slower_than_the_rate_has_frames_repeated() -> None:
    taken, grid = _sample_times(5.0, 2.0)
    camera = [100.0 + index / 5.0 for index in range(10)]
    assert len(taken) == len(grid) == 2 * 8  # the grid keeps 8 fps: 16 points from 10 camera frames
    assert sorted(set(taken)) == camera  # every camera frame is used, so 6 of them twice
    assert len(taken) - len(set(taken)) == 16 - 10


@pytest.mark.parametrize("camera_fps", [30.0, 15.0, 12.0, 10.0, 7.5, 5.0])
def test_frames_thinned_by_the_capture_land_on_the_grid_points_the_full_stream_gives_them(camera_fps: float) -> None:
    # the device's capture thread keeps only the frames this rule takes; training and calibration feed every frame
    timestamps = [100.0 + index / camera_fps for index in range(int(6 * camera_fps))]
    full, thinned, keep = Resampler(8.0, max_gap=0.5), Resampler(8.0, max_gap=0.5), _selector(8.0, max_gap=0.5)
    expected = [(t, point) for t in timestamps for point in full.due(t)[0]]
    kept = [t for t in timestamps if keep(t)]  # the capture thread's own rule
    assert len(kept) < len(timestamps) or camera_fps <= 8.0  # a faster camera is really thinned
    assert [(t, point) for t in kept for point in thinned.due(t)[0]] == expected


def test_a_gap_or_a_backwards_timestamp_restarts_the_grid() -> None:
    resampler = Resampler(8.0, max_gap=0.5)
    assert resampler.due(0.0) == ([0.0], True)
    assert resampler.due(0.1)[1] is False
    assert resampler.due(2.0) == ([2.0], True)
    assert resampler.due(1.0) == ([1.0], True)


def _sample(index: int, quality: FrameQuality = GOOD) -> Sample:
    mosaic = np.full((4, 4, 3), index, dtype=np.uint8)
    return Sample(mosaic, index / 8, index / 8, quality, {"mouth": np.zeros((4, 2), dtype=np.float32)})


def test_windows_come_every_stride_samples_once_full() -> None:
    buffer = WindowBuffer(8, 4, TILES, FaceConfig())
    windows = [(i, w) for i in range(20) if (w := buffer.add(_sample(i))) is not None]
    assert [i for i, _ in windows] == [7, 11, 15, 19]
    first = windows[0][1]
    assert first.frames.shape == (8, 4, 4, 3) and first.frames[:, 0, 0, 0].tolist() == list(range(8))
    assert first.start == 0.0 and first.end == 7 / 8 and first.length == 8
    assert first.region_corners["mouth"].shape == (8, 4, 2)
    assert windows[1][1].frames[0, 0, 0, 0] == 4


def test_a_cut_drops_the_partial_window_or_reports_it_rejected() -> None:
    buffer = WindowBuffer(8, 4, TILES, FaceConfig())
    for i in range(10):
        buffer.add(_sample(i))  # window at 7; samples 8 and 9 are fresh
    cut = buffer.cut(reject="landmark_jump")
    assert cut is not None and cut.length == 2 and cut.frames.shape[0] == 8
    assert not cut.quality.passed and cut.quality.reject_reason == "landmark_jump"
    assert cut.frames[:, 0, 0, 0].tolist() == [8, 9] + [9] * 6
    assert buffer.cut(reject="landmark_jump") is None  # nothing fresh left
    for i in range(3):
        buffer.add(_sample(i))
    assert buffer.cut(reject=None) is None
    assert [buffer.add(_sample(i)) is None for i in range(8)] == [True] * 7 + [False]  # starts over


def test_window_quality_rules() -> None:
    config = FaceConfig()
    assert window_quality([GOOD] * 16, config).passed
    lost = window_quality([GOOD] * 13 + [NO_FACE] * 3, config)
    assert (lost.passed, lost.reject_reason, lost.face_fraction) == (False, "face_lost", 13 / 16)
    assert window_quality([GOOD] * 14 + [NO_FACE] * 2, config).passed
    dark = window_quality([GOOD] * 11 + [DARK] * 5, config)
    assert (dark.passed, dark.reject_reason, dark.reasons) == (False, "dark", {"dark": 5})
    assert window_quality([GOOD] * 12 + [DARK] * 4, config).passed
    assert window_quality([GOOD] * 16, config).mean_brightness == 120.0
