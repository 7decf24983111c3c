"""The default mosaic on a real face: each tile shows its own region and little of its neighbours."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest
from face_frames import Frame

from edge.bundle import Tile
from edge.errors import BundleError
from edge.face import FaceConfig
from edge.face.align import align_to_eyes
from edge.face.landmarks import eye_centres
from edge.face.regions import RegionCropper, check_tiles
from edge.layout import default_regions_section

NOSE_TIP, UPPER_LIP_TOP, UPPER_LIP_INNER, LIP_CORNERS = 1, 0, 13, (61, 291)


def _inside(corners: np.ndarray, point: np.ndarray) -> bool:
    return cv2.pointPolygonTest(corners.astype(np.float32), (float(point[0]), float(point[1])), False) >= 0


def _boxes(detector: Any, astronaut: Frame, size: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    tiles = tuple(Tile(**tile) for tile in default_regions_section(size)["tiles"])
    detector.reset()
    (face,) = detector.detect(astronaut)
    points = face.points
    cropper = RegionCropper(tiles, size, size, FaceConfig())
    _, corners = cropper.crop(astronaut, points, align_to_eyes(*eye_centres(points)))
    return corners, points


def test_the_nose_tile_holds_no_lip_and_the_mouth_tile_no_nose_tip(detector: Any, astronaut: Frame) -> None:
    # the first layout's nose tile (44x64) reached down to the upper lip and its mouth tile (68x64) up to the
    # nose tip: a smile moved the nose tile, and explanations of a mouth-only signal fell on the nose
    for size in (112, 64):
        corners, points = _boxes(detector, astronaut, size)
        assert _inside(corners["nose"], points[NOSE_TIP, :2])
        assert not _inside(corners["nose"], points[UPPER_LIP_TOP, :2])
        assert not _inside(corners["nose"], points[UPPER_LIP_INNER, :2])
        assert all(_inside(corners["mouth"], points[i, :2]) for i in LIP_CORNERS)
        assert not _inside(corners["mouth"], points[NOSE_TIP, :2])


def test_the_nose_has_the_smallest_tile_at_every_size() -> None:
    # pooled attribution grows with a tile's pixels; the nose (no behaviour) must not be favoured by its size
    for size in (112, 96, 64, 48):
        areas = {t["region"]: t["width"] * t["height"] for t in default_regions_section(size)["tiles"]}
        assert min(areas, key=areas.__getitem__) == "nose", (size, areas)


def test_a_region_named_twice_is_refused() -> None:
    tiles = (Tile("mouth", 0, 0, 16, 16), Tile("nose", 16, 0, 16, 16), Tile("mouth", 0, 16, 32, 16))
    with pytest.raises(BundleError, match="name mouth more than once"):
        check_tiles(tiles, 32, 32)
    check_tiles(tiles[:2], 32, 32)
