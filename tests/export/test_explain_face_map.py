"""Region shares on the canonical face: each region where it belongs, the hottest where the share is largest."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.bundle import Tile
from edge.face.regions import REGION_LANDMARKS
from export.dataset import default_spec
from export.explain.face_map import canonical_face, face_heatmap, region_outlines

_, TILES = default_spec("NTCHW", frames=16, size=64)


def _inside(hull: np.ndarray, point: np.ndarray) -> bool:
    return cv2.pointPolygonTest(hull.astype(np.float32), (float(point[0]), float(point[1])), False) >= 0


def test_the_canonical_face_is_eye_aligned_and_each_region_outline_holds_its_own_landmarks_only() -> None:
    face = canonical_face()
    assert face.shape == (478, 2)
    assert face[[33, 133], 0].mean() < face[[263, 362], 0].mean()  # the subject's right eye on the image's left
    outlines = region_outlines(TILES, face)
    assert set(outlines) == {t.region for t in TILES}
    centres = {region: face[list(REGION_LANDMARKS[region])].mean(axis=0) for region in outlines}
    for region, hull in outlines.items():
        assert _inside(hull, centres[region])
        assert not any(_inside(hull, centres[other]) for other in outlines if other != region), region


def test_a_whole_face_tile_is_drawn_first_under_the_small_regions() -> None:
    tiles = (Tile("mouth", 0, 0, 32, 16), Tile("face", 0, 16, 32, 16))
    assert list(region_outlines(tiles, canonical_face())) == ["face", "mouth"]


def test_the_largest_share_is_drawn_hottest_where_its_region_lies(tmp_path: Path) -> None:
    def dark_rows(hot: str) -> np.ndarray:
        shares = {t.region: (0.9 if t.region == hot else 0.02) for t in TILES}
        image = cv2.imread(str(face_heatmap(shares, TILES, tmp_path / f"{hot}.png", hot)))
        assert image is not None and image.std() > 10
        rows, _ = np.nonzero(image.max(axis=2) < 90)  # magma's dark end: only the hottest fill (and the title text)
        return rows

    mouth, nose, brow = dark_rows("mouth"), dark_rows("nose"), dark_rows("left_eyebrow")
    assert len(mouth) > 200 and len(nose) > 200 and len(brow) > 50
    assert np.median(brow) < np.median(nose) < np.median(mouth)  # brows above the nose above the mouth
