"""Piecewise-affine image warp driven by landmarks: triangles between moved points, each mapped back affinely.

The triangulation is built once on the still's landmarks plus anchors along the frame border (which never move),
so a landmark displacement bends the face and the pixels around it while the frame edges stay put.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
from scipy.spatial import Delaunay

_SUBPIXEL_BITS = 4


def border_anchors(width: int, height: int, per_side: int = 6) -> npt.NDArray[np.float64]:
    """Fixed points along the frame border (corners included), slightly outside it so edges are covered."""
    xs = np.linspace(-1.0, width, per_side + 1)
    ys = np.linspace(-1.0, height, per_side + 1)
    top = np.stack([xs, np.full_like(xs, -1.0)], axis=1)
    bottom = np.stack([xs, np.full_like(xs, float(height))], axis=1)
    left = np.stack([np.full_like(ys[1:-1], -1.0), ys[1:-1]], axis=1)
    right = np.stack([np.full_like(ys[1:-1], float(width)), ys[1:-1]], axis=1)
    return np.concatenate([top, bottom, left, right])


class PiecewiseAffineWarp:
    """Warp images so that ``source`` points move to new positions; frame-border anchors stay fixed."""

    def __init__(self, source: npt.NDArray[np.float64], width: int, height: int) -> None:
        self.width, self.height = width, height
        self.anchors = border_anchors(width, height)
        self.source = np.concatenate([source[:, :2], self.anchors])
        self.triangles = Delaunay(self.source).simplices.astype(np.int64)
        grid_y, grid_x = np.mgrid[0:height, 0:width].astype(np.float32)
        self._grid_x, self._grid_y = grid_x.ravel(), grid_y.ravel()

    def maps(self, moved: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Backward maps (for ``cv2.remap``) that move the source points to ``moved`` (same order)."""
        dest = np.concatenate([moved[:, :2], self.anchors])
        tri_dst = dest[self.triangles]  # (T, 3, 2)
        tri_src = self.source[self.triangles]
        homogeneous = np.concatenate([tri_dst, np.ones((len(tri_dst), 3, 1))], axis=2)  # (T, 3, 3)
        det = np.linalg.det(homogeneous)
        safe = np.abs(det) > 1e-6
        affine = np.zeros((len(tri_dst), 3, 2))
        affine[safe] = np.linalg.solve(homogeneous[safe], tri_src[safe])  # dest (x, y, 1) @ affine = src
        ids = np.full((self.height, self.width), -1, dtype=np.int32)
        scale = float(1 << _SUBPIXEL_BITS)
        fixed = np.round(tri_dst * scale).astype(np.int32)
        for index in np.flatnonzero(safe):
            cv2.fillConvexPoly(ids, fixed[index], (int(index),), lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
        flat = ids.ravel()
        covered = flat >= 0
        map_x = self._grid_x.copy()
        map_y = self._grid_y.copy()
        coeff = affine[flat[covered]].astype(np.float32)  # (P, 3, 2)
        gx, gy = self._grid_x[covered], self._grid_y[covered]
        map_x[covered] = gx * coeff[:, 0, 0] + gy * coeff[:, 1, 0] + coeff[:, 2, 0]
        map_y[covered] = gx * coeff[:, 0, 1] + gy * coeff[:, 1, 1] + coeff[:, 2, 1]
        return map_x.reshape(self.height, self.width), map_y.reshape(self.height, self.width)

    def __call__(self, image: npt.NDArray[np.uint8], moved: npt.NDArray[np.float64]) -> npt.NDArray[np.uint8]:
        """``image`` (whose points sit at ``source``) warped so those points sit at ``moved``."""
        map_x, map_y = self.maps(moved)
        warped = cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        return np.asarray(warped, dtype=np.uint8)
