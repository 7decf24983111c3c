"""Similarity alignment on the eye centres: the face's own frame of reference for crops and quality.

The aligned face space is ``ALIGNED_SIZE`` pixels square with the subject's right eye centre at
``(0.35, 0.40)`` and the left one at ``(0.65, 0.40)`` of its side (the subject's right eye is on the image's
left for an unmirrored camera), so the eye distance there is ``0.3 x ALIGNED_SIZE``. Roll, scale and position
of the head are undone; yaw and pitch are not (they are quality figures instead).
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

ALIGNED_SIZE = 256
RIGHT_EYE_AT = (0.35, 0.40)
LEFT_EYE_AT = (0.65, 0.40)

Matrix = npt.NDArray[np.float64]


def align_to_eyes(right_eye: npt.ArrayLike, left_eye: npt.ArrayLike, size: float = ALIGNED_SIZE) -> Matrix:
    """The 2x3 similarity matrix taking frame pixels to the aligned face space of side ``size``."""
    src_r, src_l = np.asarray(right_eye, dtype=np.float64), np.asarray(left_eye, dtype=np.float64)
    dst_r, dst_l = np.array(RIGHT_EYE_AT) * size, np.array(LEFT_EYE_AT) * size
    src_v, dst_v = src_l - src_r, dst_l - dst_r
    norm = float(src_v @ src_v)
    if norm < 1e-6:
        raise ValueError("the eye centres coincide; no alignment is possible")
    # Complex-number view: dst_v = z * src_v with z = a + ib.
    a = (src_v[0] * dst_v[0] + src_v[1] * dst_v[1]) / norm
    b = (src_v[0] * dst_v[1] - src_v[1] * dst_v[0]) / norm
    rotation = np.array([[a, -b], [b, a]])
    shift = dst_r - rotation @ src_r
    return np.hstack([rotation, shift[:, None]])


def apply(matrix: Matrix, points: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    """Map ``(N, 2+)`` points (x, y first) through a 2x3 affine matrix."""
    xy = np.asarray(points, dtype=np.float64)[:, :2]
    return xy @ matrix[:, :2].T + matrix[:, 2]


def invert(matrix: Matrix) -> Matrix:
    """Inverse of a 2x3 affine matrix."""
    return np.asarray(cv2.invertAffineTransform(matrix), dtype=np.float64)


def compose(outer: Matrix, inner: Matrix) -> Matrix:
    """The affine matrix of ``outer`` applied after ``inner``."""
    return np.hstack([outer[:, :2] @ inner[:, :2], (outer[:, :2] @ inner[:, 2] + outer[:, 2])[:, None]])
