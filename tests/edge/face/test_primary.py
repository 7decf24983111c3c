"""Primary face choice and its hysteresis, on landmark sets placed by hand (no mediapipe)."""

from __future__ import annotations

import numpy as np

from edge.face import FaceConfig, FaceLandmarks
from edge.face.primary import PrimaryFaceSelector, face_score


def _face(x0: float, y0: float, size: float) -> FaceLandmarks:
    grid = np.random.default_rng(0).random((478, 3)).astype(np.float32)
    grid[[0, 1], :2] = [[0, 0], [1, 1]]  # the box spans the whole size
    scale, offset = np.array([size, size, 0], dtype=np.float32), np.array([x0, y0, 0], dtype=np.float32)
    return FaceLandmarks(grid * scale + offset, "mesh")


def test_larger_and_more_central_faces_score_higher() -> None:
    assert face_score((270, 190, 370, 290), 640, 480) > face_score((0, 0, 100, 100), 640, 480)
    assert face_score((0, 0, 200, 200), 640, 480) > face_score((270, 190, 370, 290), 640, 480)


def test_the_primary_face_holds_until_a_clearly_better_face_persists() -> None:
    selector = PrimaryFaceSelector(FaceConfig(switch_ratio=1.5, switch_frames=3))
    small, big = _face(400, 150, 60), _face(60, 120, 110)
    assert selector.choose([small], 640, 480) == (0, False)
    # the bigger face arrives: the small one stays primary for two frames, then the big one takes over
    assert selector.choose([big, small], 640, 480) == (1, False)
    assert selector.choose([small, big], 640, 480) == (0, False)
    assert selector.choose([big, small], 640, 480) == (0, True)
    assert selector.choose([small, big], 640, 480) == (1, False)


def test_a_similar_face_never_takes_over_and_losing_the_face_is_not_a_switch() -> None:
    selector = PrimaryFaceSelector(FaceConfig())
    left, right = _face(100, 150, 100), _face(420, 150, 110)
    assert selector.choose([left, right], 640, 480) == (1, False)
    for _ in range(10):
        assert selector.choose([left, right], 640, 480) == (1, False)
    assert selector.choose([], 640, 480) == (None, False)
    assert selector.choose([left], 640, 480) == (0, False)
    assert selector.choose([right], 640, 480) == (0, True)  # the followed face is gone, another one is there


def test_a_small_face_near_the_primary_one_does_not_capture_it() -> None:
    """Regression (sample clip 0): a second face beside the primary one, its centre close, is another face."""
    selector = PrimaryFaceSelector(FaceConfig())
    big = FaceLandmarks(_face(78, 43, 131).points, "mesh")
    small = _face(199, 37, 62)
    assert selector.choose([big], 320, 240) == (0, False)
    assert selector.choose([small, big], 320, 240) == (1, False)


def test_the_primary_face_is_kept_across_frames_without_any_face() -> None:
    selector = PrimaryFaceSelector(FaceConfig())
    small, big = _face(400, 150, 60), _face(60, 120, 110)
    assert selector.choose([small], 640, 480) == (0, False)
    assert selector.choose([], 640, 480) == (None, False)
    assert selector.choose([big, small], 640, 480) == (1, False)  # the same face back, not the bigger one
    assert selector.choose([], 640, 480) == (None, False)
    assert selector.choose([big], 640, 480) == (0, False)  # another face after a gap: the landmark track judges
