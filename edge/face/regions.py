"""Expresso-AI region crops cut from landmark hulls of the aligned face, tiled into the manifest's mosaic.

Regions (subject's own left/right, as mediapipe names them; mediapipe FaceMesh index sets):

| region          | landmarks                        | margin (x eye distance) |
|-----------------|----------------------------------|-------------------------|
| ``right_eye``   | ``FACEMESH_RIGHT_EYE`` (33...)   | 0.12                    |
| ``left_eye``    | ``FACEMESH_LEFT_EYE`` (263...)   | 0.12                    |
| ``right_eyebrow`` | ``FACEMESH_RIGHT_EYEBROW``     | 0.08                    |
| ``left_eyebrow``  | ``FACEMESH_LEFT_EYEBROW``      | 0.08                    |
| ``nose``        | ``FACEMESH_NOSE``                | 0.08                    |
| ``mouth``       | ``FACEMESH_LIPS``                | 0.15                    |
| ``face``        | ``FACEMESH_FACE_OVAL`` (whole aligned face) | 0.05         |

Each region's box is the bounding box of its landmarks in the aligned face space (:mod:`edge.face.align`),
widened by its margin and then to the tile's aspect ratio, so the tile is never stretched. The box follows its
hull slowly (``box_alpha`` per sampled frame): a blink or an open mouth shows as movement inside a steady tile
instead of being rescaled away. One ``cv2.warpAffine`` per region maps frame pixels straight into the tile
(alignment, crop and resize composed). Pixels outside the frame are black.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from edge.bundle.manifest import Tile
from edge.errors import BundleError
from edge.face.align import ALIGNED_SIZE, LEFT_EYE_AT, RIGHT_EYE_AT, Matrix, apply, compose, invert
from edge.face.config import FaceConfig
from edge.face.landmarks import Landmarks


def _indices(name: str) -> tuple[int, ...]:
    from mediapipe.python.solutions import face_mesh_connections as connections

    return tuple(sorted({i for edge in getattr(connections, name) for i in edge}))


REGION_LANDMARKS: dict[str, tuple[int, ...]] = {
    "right_eye": _indices("FACEMESH_RIGHT_EYE"),
    "left_eye": _indices("FACEMESH_LEFT_EYE"),
    "right_eyebrow": _indices("FACEMESH_RIGHT_EYEBROW"),
    "left_eyebrow": _indices("FACEMESH_LEFT_EYEBROW"),
    "nose": _indices("FACEMESH_NOSE"),
    "mouth": _indices("FACEMESH_LIPS"),
    "face": _indices("FACEMESH_FACE_OVAL"),
}
REGION_MARGINS = {
    "right_eye": 0.12,
    "left_eye": 0.12,
    "right_eyebrow": 0.08,
    "left_eyebrow": 0.08,
    "nose": 0.08,
    "mouth": 0.15,
    "face": 0.05,
}
ALIGNED_EYE_DISTANCE = (LEFT_EYE_AT[0] - RIGHT_EYE_AT[0]) * ALIGNED_SIZE


def check_tiles(tiles: Sequence[Tile], height: int, width: int) -> None:
    """Refuse tiles naming an unknown region or one region twice, or lying outside the ``height`` x ``width``
    mosaic."""
    if not tiles:
        raise BundleError("the manifest's region layout has no tiles", fix="re-export the bundle with a region layout")
    names = [tile.region for tile in tiles]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:  # explanations and summaries key shares by region: a repeated name would merge two tiles' shares
        raise BundleError(
            f"the manifest's regions.tiles name {', '.join(repeated)} more than once",
            fix="give every tile its own region (one tile per region) in the bundle's regions.tiles",
        )
    for tile in tiles:
        if tile.region not in REGION_LANDMARKS:
            raise BundleError(
                f"the manifest's tile region {tile.region!r} is unknown",
                fix=f"use one of {', '.join(REGION_LANDMARKS)} in the bundle's regions.tiles",
            )
        if (
            tile.width < 1
            or tile.height < 1
            or tile.x < 0
            or tile.y < 0
            or tile.x + tile.width > width
            or (tile.y + tile.height > height)
        ):
            raise BundleError(
                f"tile {tile} does not fit the {width}x{height} mosaic",
                fix="fix regions.tiles in the manifest so every tile lies inside input.width x input.height",
            )


def _fit_box(points: npt.NDArray[np.float64], margin: float, aspect: float) -> npt.NDArray[np.float64]:
    """``(cx, cy, w, h)`` of the points' bounding box, widened by ``margin`` and to width/height ``aspect``."""
    low, high = points.min(axis=0), points.max(axis=0)
    pad = margin * ALIGNED_EYE_DISTANCE
    w, h = high[0] - low[0] + 2 * pad, high[1] - low[1] + 2 * pad
    w, h = max(w, h * aspect), max(h, w / aspect)
    return np.array([(low[0] + high[0]) / 2, (low[1] + high[1]) / 2, w, h])


class RegionCropper:
    """Cuts the manifest's tiles out of frames; keeps each region's slowly moving box."""

    def __init__(self, tiles: Sequence[Tile], height: int, width: int, config: FaceConfig) -> None:
        check_tiles(tiles, height, width)
        self.tiles = tuple(tiles)
        self._shape = (height, width, 3)
        self._alpha = config.box_alpha
        self._boxes: dict[str, npt.NDArray[np.float64]] = {}

    def crop(
        self, rgb: npt.NDArray[np.uint8], points: Landmarks, to_aligned: Matrix
    ) -> tuple[npt.NDArray[np.uint8], dict[str, npt.NDArray[np.float32]]]:
        """The RGB mosaic of one frame and, per region, its box corners ``(4, 2)`` in frame pixels."""
        mosaic = np.zeros(self._shape, dtype=np.uint8)
        aligned = apply(to_aligned, points)
        to_frame = invert(to_aligned)
        corners: dict[str, npt.NDArray[np.float32]] = {}
        for tile in self.tiles:
            target = _fit_box(
                aligned[list(REGION_LANDMARKS[tile.region])], REGION_MARGINS[tile.region], tile.width / tile.height
            )
            box = self._boxes.get(tile.region)
            box = target if box is None else self._alpha * target + (1.0 - self._alpha) * box
            self._boxes[tile.region] = box
            cx, cy, w, h = box
            sx, sy = tile.width / w, tile.height / h
            to_tile = np.array([[sx, 0.0, -(cx - w / 2) * sx], [0.0, sy, -(cy - h / 2) * sy]])
            mosaic[tile.y : tile.y + tile.height, tile.x : tile.x + tile.width] = cv2.warpAffine(
                rgb, compose(to_tile, to_aligned), (tile.width, tile.height), flags=cv2.INTER_LINEAR
            )
            quad = np.array(
                [[cx - w / 2, cy - h / 2], [cx + w / 2, cy - h / 2], [cx + w / 2, cy + h / 2], [cx - w / 2, cy + h / 2]]
            )
            corners[tile.region] = apply(to_frame, quad).astype(np.float32)
        return mosaic, corners

    def reset(self) -> None:
        """Forget the region boxes (a new face)."""
        self._boxes.clear()
