"""Frame validation and colour conversion (no mediapipe)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from edge.errors import InputError
from edge.face import check_frame, to_rgb


def test_bgr_is_converted_and_rgb_is_kept() -> None:
    frame = np.zeros((40, 50, 3), dtype=np.uint8)
    frame[..., 0] = 10  # blue in BGR
    frame[..., 2] = 200  # red in BGR
    rgb = to_rgb(frame, "BGR", min_side=32)
    assert rgb[0, 0].tolist() == [200, 0, 10]
    assert to_rgb(frame, "RGB", min_side=32)[0, 0].tolist() == [10, 0, 200]


@pytest.mark.parametrize("shape", [(40, 50), (40, 50, 1)])
def test_grey_frames_are_converted_with_a_debug_log(shape: tuple[int, ...], caplog: pytest.LogCaptureFixture) -> None:
    grey = np.arange(np.prod(shape), dtype=np.uint32).reshape(shape).astype(np.uint8)
    with caplog.at_level(logging.DEBUG, logger="edge.face.frames"):
        rgb = to_rgb(grey, "BGR", min_side=32)
    assert rgb.shape == (40, 50, 3)
    assert np.array_equal(rgb[..., 0], grey.reshape(40, 50)) and np.array_equal(rgb[..., 1], rgb[..., 2])
    assert "grey frame" in caplog.text


@pytest.mark.parametrize(
    ("frame", "words"),
    [
        (np.zeros((40, 50, 3), dtype=np.float32), "dtype is float32"),
        (np.zeros((40, 50, 4), dtype=np.uint8), "alpha"),
        (np.zeros((2, 40, 50, 3), dtype=np.uint8), "shape (2, 40, 50, 3)"),
        (np.zeros((20, 50, 3), dtype=np.uint8), "too small"),
        ([[0, 1], [2, 3]], "numpy array"),
    ],
)
def test_unusable_frames_get_a_clear_error(frame: object, words: str) -> None:
    with pytest.raises(InputError) as caught:
        check_frame(frame, "BGR", min_side=32)
    assert words in str(caught.value)
    assert caught.value.fix


def test_unknown_colour_order_is_refused() -> None:
    with pytest.raises(InputError, match="color_order"):
        to_rgb(np.zeros((40, 50, 3), dtype=np.uint8), "YUV", min_side=32)
