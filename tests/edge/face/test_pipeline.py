"""The face pipeline on real pixels: mediapipe on ``skimage.data.astronaut()`` and frames built from it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import pytest
from face_frames import Frame, on_canvas, rotated, shifted, turned, two_faces

from edge.bundle import InputSpec, Tile
from edge.errors import BundleError, InputError
from edge.face import FacePipeline, FrameResult, LandmarkDetector

MakePipeline = Callable[..., FacePipeline]
FACE_CENTRE = (223.0, 125.0)  # the astronaut's nose, roughly


def _feed(pipeline: FacePipeline, frames: list[Frame], fps: float = 8.0, start: int = 0) -> list[FrameResult]:
    return [pipeline.push(frame, (start + i) / fps, color_order="RGB") for i, frame in enumerate(frames)]


def _eye_x(result: FrameResult) -> float:
    assert result.landmarks is not None
    return float(result.landmarks[[33, 133, 263, 362], 0].mean())


def test_the_astronaut_is_found_tracked_and_tiled(
    make_pipeline: MakePipeline, short_spec: InputSpec, astronaut: Frame
) -> None:
    pipeline = make_pipeline(short_spec)
    shifts = [4 * np.sin(i / 3) for i in range(16)]
    results = _feed(pipeline, [shifted(astronaut, dx) for dx in shifts])
    assert all(r.sampled and r.quality.face_present and r.quality.passed for r in results)
    assert all(r.quality.source == "mesh" and r.quality.faces == 1 for r in results)
    # the eyes sit where the photo has them and follow the shifts (smoothing lags a little)
    eye_x = np.array([_eye_x(r) for r in results])
    assert abs(eye_x[0] - 225) < 10
    assert np.corrcoef(eye_x, shifts)[0, 1] > 0.9
    windows = [w for r in results for w in r.windows]
    assert [w.start for w in windows] == [0.0, 0.5, 1.0]
    for window in windows:
        assert window.quality.passed and window.quality.face_fraction == 1.0
        assert window.frames.shape == (8, 112, 112, 3) and window.frames.dtype == np.uint8
        assert window.frames.std(axis=(0, 1, 2)).min() > 10  # real picture content in every channel
    # region corners are in frame pixels: the right eye's box holds the right eye centre
    corners = windows[0].region_corners["right_eye"][0]
    eye = results[7].landmarks[[33, 133], :2].mean(axis=0)  # type: ignore[index]
    assert corners[:, 0].min() < eye[0] < corners[:, 0].max() and corners[:, 1].min() < eye[1] < corners[:, 1].max()


def test_the_mosaic_follows_the_manifest_tiles(detector: LandmarkDetector, spec: InputSpec, astronaut: Frame) -> None:
    layout = (Tile("face", 0, 0, 64, 64), Tile("mouth", 64, 0, 64, 32), Tile("left_eye", 64, 32, 64, 32))
    narrow = InputSpec(**{**spec.__dict__, "height": 64, "width": 128})
    detector.reset()
    pipeline = FacePipeline(narrow, layout, landmarks=detector)
    mosaic = pipeline.push(astronaut, 0.0, color_order="RGB").mosaic
    assert mosaic is not None and mosaic.shape == (64, 128, 3)
    for tile in layout:
        assert mosaic[tile.y : tile.y + tile.height, tile.x : tile.x + tile.width].std() > 10


def test_bgr_and_rgb_inputs_give_identical_results_and_the_order_is_observable(
    make_pipeline: MakePipeline, astronaut: Frame
) -> None:
    as_rgb = make_pipeline().push(astronaut, 0.0, color_order="RGB")
    as_bgr = make_pipeline().push(np.ascontiguousarray(astronaut[..., ::-1]), 0.0, color_order="BGR")
    assert as_rgb.landmarks is not None and as_bgr.landmarks is not None
    assert as_rgb.mosaic is not None and as_bgr.mosaic is not None
    assert np.array_equal(as_rgb.landmarks, as_bgr.landmarks)
    assert np.array_equal(as_rgb.mosaic, as_bgr.mosaic)
    # skin is redder than blue in a correctly ordered mosaic; declaring RGB pixels as BGR swaps that
    misread = make_pipeline().push(astronaut, 0.0, color_order="BGR")
    red_minus_blue = [float(r.mosaic[..., 0].mean() - r.mosaic[..., 2].mean()) for r in (as_rgb, misread)]  # type: ignore[index]
    assert red_minus_blue[0] > 20 and red_minus_blue[1] < -20


def test_a_grey_frame_is_converted(make_pipeline: MakePipeline, astronaut: Frame) -> None:
    grey = np.asarray(cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY), dtype=np.uint8)
    result = make_pipeline().push(grey, 0.0)
    assert result.quality.face_present and result.mosaic is not None
    assert np.array_equal(result.mosaic[..., 0], result.mosaic[..., 2])


def test_a_small_face_is_found_through_the_detector(make_pipeline: MakePipeline, astronaut: Frame) -> None:
    frame = on_canvas(astronaut, 0.45, 300, 200)
    pipeline = make_pipeline()
    for result in _feed(pipeline, [frame, frame]):
        assert result.quality.face_present and result.quality.source == "detector"
        assert result.landmarks is not None
        width = float(np.ptp(result.landmarks[:, 0]))
        assert 35 < width < 55
        assert 380 < _eye_x(result) < 420
        assert result.quality.passed


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda im: (im * 0.15).astype(np.uint8), "dark"),
        (lambda im: np.clip(128 + (im.astype(np.int16) - 128) * 0.15, 0, 255).astype(np.uint8), "low_contrast"),
        (lambda im: cv2.GaussianBlur(im, (0, 0), 3), "blur"),
        (lambda im: rotated(im, FACE_CENTRE, 55), "pose"),
        (lambda im: turned(im, FACE_CENTRE, 60, 30), "pose"),
        (lambda im: turned(im, FACE_CENTRE, 60, 0, -30), "pose"),
        (lambda im: np.clip(im * 1.5 + 60, 0, 255).astype(np.uint8), "bright"),
        (lambda im: im[:, 200:], "partial_face"),  # the frame's edge cuts through the face's right side
    ],
    ids=["dark", "low_contrast", "blur", "roll", "yaw", "pitch", "bright", "partial_face"],
)
def test_quality_flags_fire(make_pipeline: MakePipeline, astronaut: Frame, change: Any, reason: str) -> None:
    quality = make_pipeline().push(np.ascontiguousarray(change(astronaut)), 0.0, color_order="RGB").quality
    assert quality.face_present and not quality.passed
    assert reason in quality.reasons


def test_each_flag_rests_on_its_own_figure(make_pipeline: MakePipeline, astronaut: Frame) -> None:
    """The pose flag of a nod comes from the pitch, and a cut-off face is measured as landmarks out of frame."""
    nod = make_pipeline().push(turned(astronaut, FACE_CENTRE, 60, 0, -30), 0.0, color_order="RGB").quality
    assert nod.pitch is not None and nod.pitch > 30 and abs(nod.yaw) < 10 and abs(nod.roll) < 10  # type: ignore[arg-type]
    cut = make_pipeline().push(np.ascontiguousarray(astronaut[:, 200:]), 0.0, color_order="RGB").quality
    assert cut.landmarks_in_frame is not None and 0.5 < cut.landmarks_in_frame < 0.9
    assert cut.reasons == ("partial_face",)


def test_the_plain_photo_passes_with_a_frontal_pose(make_pipeline: MakePipeline, astronaut: Frame) -> None:
    quality = make_pipeline().push(astronaut, 0.0, color_order="RGB").quality
    assert quality.passed and quality.reasons == ()
    assert abs(quality.yaw) < 10 and abs(quality.pitch) < 10 and abs(quality.roll) < 10  # type: ignore[arg-type]
    turned_quality = make_pipeline().push(turned(astronaut, FACE_CENTRE, 60, 15), 0.0, color_order="RGB").quality
    assert turned_quality.yaw is not None and turned_quality.yaw < -10  # nose pushed to the image's right


@pytest.mark.parametrize("camera_fps", [30.0, 15.0, 25.0])
def test_windows_keep_rate_and_stride_whatever_the_camera(
    make_pipeline: MakePipeline, short_spec: InputSpec, astronaut: Frame, camera_fps: float
) -> None:
    pipeline = make_pipeline(short_spec)
    frames = [shifted(astronaut, 3 * np.sin(i / 10)) for i in range(int(1.5 * camera_fps) + 1)]
    results = _feed(pipeline, frames, fps=camera_fps)
    assert sum(r.sampled for r in results) == 13  # 0 to 1.5 s at 8 fps
    windows = [w for r in results for w in r.windows]
    assert len(windows) == 2 and all(w.quality.passed for w in windows)
    for window in windows:
        assert np.allclose(np.diff(window.grid_times), 1 / 8)
        assert np.abs(window.sample_times - window.grid_times).max() <= 0.5 / camera_fps + 1e-9
    assert windows[0].grid_times[0] == 0.0 and windows[1].grid_times[0] == pytest.approx(0.5)


def test_frames_without_a_face_are_flagged_and_windows_rejected(
    make_pipeline: MakePipeline, short_spec: InputSpec, astronaut: Frame
) -> None:
    pipeline = make_pipeline(short_spec)
    noise = np.random.default_rng(1).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    blank = np.zeros((480, 640, 3), dtype=np.uint8)
    results = _feed(pipeline, [blank, noise] * 4)
    assert all(not r.quality.face_present and r.quality.reasons == ("face_lost",) for r in results)
    assert all(r.quality.yaw is None and r.landmarks is None for r in results)
    [window] = [w for r in results for w in r.windows]
    assert window.quality.reject_reason == "face_lost" and window.quality.face_fraction == 0.0
    assert not window.frames.any()  # black until a face was seen
    after = pipeline.push(astronaut, 1.0, color_order="RGB")
    assert after.quality.face_present and after.quality.jump is None


def test_two_faces_the_larger_wins_after_the_hysteresis(
    make_pipeline: MakePipeline, short_spec: InputSpec, astronaut: Frame
) -> None:
    pipeline = make_pipeline(short_spec)
    only_small, both = two_faces(astronaut, big=False), two_faces(astronaut)
    results = _feed(pipeline, [only_small] * 2 + [both] * 4)
    assert [r.quality.faces for r in results] == [1, 1, 2, 2, 2, 2]
    sides = ["right" if _eye_x(r) > 320 else "left" for r in results]
    assert sides == ["right"] * 4 + ["left"] * 2  # the big face waits three frames (switch_frames) to take over
    assert results[4].quality.jump == "switch"
    [cut] = results[4].windows  # the switch ends the window: its four frames come back rejected
    assert (cut.length, cut.quality.reject_reason, cut.quality.passed) == (4, "landmark_jump", False)
    fresh = make_pipeline().push(both, 0.0, color_order="RGB")
    assert _eye_x(fresh) < 320  # with both in view from the start, the larger face is primary


def test_a_landmark_jump_ends_the_window(make_pipeline: MakePipeline, short_spec: InputSpec, astronaut: Frame) -> None:
    pipeline = make_pipeline(short_spec)
    here, there = on_canvas(astronaut, 1.0, 0, 0), on_canvas(astronaut, 0.8, 200, 120)
    results = _feed(pipeline, [here] * 6 + [there] * 8)
    assert [r.quality.jump is not None for r in results] == [False] * 6 + [True] + [False] * 7
    assert all(r.quality.face_present for r in results)
    windows = [w for r in results for w in r.windows]
    assert [(w.length, w.quality.reject_reason) for w in windows] == [(6, "landmark_jump"), (8, None)]
    assert windows[1].start == 6 / 8  # the new window starts at the jump, nothing from before it


@pytest.mark.parametrize("window_frames", [32, 64])
def test_a_face_that_comes_back_changed_after_a_gap_ends_the_window(
    make_pipeline: MakePipeline, spec: InputSpec, astronaut: Frame, window_frames: int
) -> None:
    """A gap a passing window tolerates (4 of 32, 8 of 64 frames) must not join two different faces in one."""
    pipeline = make_pipeline(InputSpec(**{**spec.__dict__, "frames": window_frames, "window_stride": 8}))
    here, there = on_canvas(astronaut, 1.0, 0, 0), on_canvas(astronaut, 0.8, 200, 120)
    blank = np.zeros_like(here)
    gap = window_frames // 8  # as many frames without a face as a passing window may hold
    before = window_frames - gap - 4
    results = _feed(pipeline, [here] * before + [blank] * gap + [there] * 4)
    assert [r.quality.face_present for r in results] == [True] * before + [False] * gap + [True] * 4
    assert [r.quality.jump for r in results][before + gap :] == ["move", None, None, None]
    windows = [w for r in results for w in r.windows]
    assert [(w.length, w.quality.reject_reason) for w in windows] == [(before + gap, "landmark_jump")]
    assert not any(w.quality.passed for w in windows)


def test_reset_and_close(make_pipeline: MakePipeline, short_spec: InputSpec, astronaut: Frame) -> None:
    pipeline = make_pipeline(short_spec)
    _feed(pipeline, [astronaut] * 6)
    pipeline.reset()
    results = _feed(pipeline, [astronaut] * 8, start=100)
    assert [len(r.windows) for r in results] == [0] * 7 + [1]  # the partial window was dropped
    pipeline.close()
    with pytest.raises(InputError, match="closed"):
        pipeline.push(astronaut, 200.0)


def test_unknown_or_misplaced_tiles_are_refused(detector: LandmarkDetector, spec: InputSpec) -> None:
    with pytest.raises(BundleError, match="'ears'"):
        FacePipeline(spec, (Tile("ears", 0, 0, 10, 10),), landmarks=detector)
    with pytest.raises(BundleError, match="does not fit"):
        FacePipeline(spec, (Tile("mouth", 100, 0, 20, 10),), landmarks=detector)


def test_raw_landmarks_are_the_mesh_before_smoothing(
    make_pipeline: MakePipeline, short_spec: InputSpec, astronaut: Frame
) -> None:
    """Behaviour descriptors read ``raw_landmarks``: the smoothed track must be an average of them, not them."""
    results = _feed(make_pipeline(short_spec), [shifted(astronaut, 0.5 * i) for i in range(4)])
    first, *rest = results
    assert first.raw_landmarks is not None and np.array_equal(first.raw_landmarks, first.landmarks)
    for before, now in zip(results[:-1], rest, strict=True):
        assert before.landmarks is not None and now.landmarks is not None and now.raw_landmarks is not None
        pulled, moved = (now.landmarks - before.landmarks).ravel(), (now.raw_landmarks - before.landmarks).ravel()
        alpha = float(pulled @ moved / (moved @ moved))  # smoothed = alpha * raw + (1 - alpha) * previous
        assert 0.39 < alpha < 0.99
        assert np.abs(pulled - alpha * moved).max() < 1e-3
