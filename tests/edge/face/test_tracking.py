"""Eye alignment, jump detection and smoothing on landmark arrays (pure numerics, no mediapipe)."""

from __future__ import annotations

import numpy as np
import pytest

from edge.face import FaceConfig
from edge.face.align import ALIGNED_SIZE, LEFT_EYE_AT, RIGHT_EYE_AT, align_to_eyes, apply, compose, invert
from edge.face.landmarks import Landmarks, eye_distance
from edge.face.regions import REGION_LANDMARKS
from edge.face.tracking import LandmarkTrack, landmark_jump, similarity_residual
from edge.face.windows import missing_allowance


def _face(seed: int = 0) -> Landmarks:
    """A plausible landmark cloud: 478 points in a 100 px face with the eye corners placed like a real one."""
    points = np.random.default_rng(seed).normal(0, 25, (478, 3)) + np.array([300, 200, 0])
    points[[33, 133]] = [[250, 180, 0], [280, 180, 0]]
    points[[362, 263]] = [[320, 180, 0], [350, 180, 0]]
    return points.astype(np.float32)


def _plus(face: Landmarks, offset: object) -> Landmarks:
    """``face`` plus an offset (a shift or per-point noise), as float32 landmarks."""
    return np.asarray(face + np.asarray(offset), dtype=np.float32)


def test_alignment_puts_the_eyes_in_place_and_inverts() -> None:
    matrix = align_to_eyes([100.0, 220.0], [160.0, 180.0])
    eyes = apply(matrix, np.array([[100.0, 220.0], [160.0, 180.0]]))
    assert np.allclose(eyes, np.array([RIGHT_EYE_AT, LEFT_EYE_AT]) * ALIGNED_SIZE)
    assert np.allclose(compose(invert(matrix), matrix), np.hstack([np.eye(2), np.zeros((2, 1))]))
    with pytest.raises(ValueError, match="coincide"):
        align_to_eyes([5.0, 5.0], [5.0, 5.0])


def test_similarity_residual_ignores_pose_and_sees_shape() -> None:
    face = _face()
    angle = np.radians(20)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = face[:, :2] @ rotation.T * 1.3 + 40
    assert similarity_residual(moved, face) < 1e-3
    assert similarity_residual(_face(seed=1), face) > 10


def test_jumps_are_told_apart_from_expressions() -> None:
    config, face = FaceConfig(), _face()
    assert eye_distance(face) == pytest.approx(70.0)
    smile = face.copy()
    smile[list(REGION_LANDMARKS["mouth"]), 1] += 8  # 40 of 478 points move: an expression
    assert landmark_jump(face, smile, config) is None
    assert landmark_jump(face, _plus(face, [120, 0, 0]), config) == "move"
    bigger = _plus(face * 1.6, -0.6 * face.mean(axis=0))
    assert landmark_jump(face, bigger, config) == "scale"
    smeared = _plus(face, np.random.default_rng(3).normal(0, 20, face.shape))
    smeared[[33, 133, 362, 263]] = face[[33, 133, 362, 263]]
    assert landmark_jump(face, smeared, config) == "shape"


def test_smoothing_damps_jitter_but_follows_motion() -> None:
    track, face = LandmarkTrack(FaceConfig(), max_missed=2), _face()
    rng = np.random.default_rng(4)
    track.update(face)
    jitter = [track.update(_plus(face, rng.normal(0, 0.5, face.shape)))[0] for _ in range(20)]
    assert np.abs(np.array(jitter) - face).mean() < 0.5 * np.sqrt(2 / np.pi) * 0.8  # below the raw jitter
    moved, jump = track.update(_plus(face, [20, 0, 0]))
    assert jump is None and np.allclose(moved, _plus(face, [20, 0, 0]))  # a real move is not lagged
    track.miss()
    assert track.update(_plus(face, [200, 0, 0]))[1] == "move"  # a short loss keeps the jump check
    for _ in range(3):
        track.miss()
    assert track.update(face)[1] is None  # a loss longer than max_missed forgets the face


def test_the_face_is_remembered_across_as_many_misses_as_a_window_tolerates() -> None:
    config, face = FaceConfig(), _face()
    assert [missing_allowance(frames, config) for frames in (8, 16, 32, 64)] == [1, 2, 4, 8]
    track = LandmarkTrack(config, max_missed=missing_allowance(32, config))
    track.update(face)
    for _ in range(4):
        track.miss()
    assert track.update(_plus(face, [200, 0, 0]))[1] == "move"
