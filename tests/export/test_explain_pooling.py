"""Region pooling on hand-built attribution maps, descriptors on hand-placed landmarks, Spearman's edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from edge.bundle import Tile
from edge.face.descriptors import DESCRIPTORS, add_blinks, finish_video, frame_descriptors
from edge.layout import default_regions_section
from edge.scale import BDI_II
from export.explain.correlate import mean_correlations, spearman, window_correlations
from export.explain.pooling import frame_maps, pool_video, pool_window, tile_sums, top_region
from export.explain.report import render_html
from export.explain.summary import ERROR_TOLERANCE_SHARE, band_of, document
from export.explain.video import VideoResult, WindowResult

TILES = tuple(Tile(**t) for t in default_regions_section(32)["tiles"])
REGIONS = tuple(t.region for t in TILES)


def tile(region: str) -> Tile:
    return next(t for t in TILES if t.region == region)


def paint(maps: np.ndarray, frame: int, region: str, value: float) -> int:
    """Fill ``region``'s tile of ``frame`` with ``value``; returns the tile's pixel count."""
    t = tile(region)
    maps[frame, t.y : t.y + t.height, t.x : t.x + t.width] = value
    return t.width * t.height


def test_tile_sums_pool_each_region_per_frame_and_over_time() -> None:
    maps = np.zeros((3, 32, 32))
    mouth = paint(maps, 0, "mouth", 2.0)
    eye = paint(maps, 1, "left_eye", 1.0)
    paint(maps, 2, "nose", 0.5)
    nose = tile("nose").width * tile("nose").height
    per_frame = tile_sums(maps, TILES)
    assert per_frame.shape == (3, len(TILES))
    assert per_frame[0, REGIONS.index("mouth")] == pytest.approx(2.0 * mouth)
    assert per_frame[1, REGIONS.index("left_eye")] == pytest.approx(eye)
    assert np.count_nonzero(per_frame) == 3
    pooled = pool_window(per_frame)
    total = 2.0 * mouth + eye + 0.5 * nose
    assert pooled.raw[REGIONS.index("mouth")] == pytest.approx(2.0 * mouth)
    assert pooled.shares.sum() == pytest.approx(1.0)
    assert pooled.shares[REGIONS.index("left_eye")] == pytest.approx(eye / total)
    assert pooled.curve == pytest.approx([2.0 * mouth, eye, 0.5 * nose])
    assert top_region(pooled.shares, REGIONS) == "mouth"


def test_frame_maps_take_absolute_values_summed_over_colour_in_either_layout() -> None:
    rng = np.random.default_rng(0)
    ntchw = rng.normal(size=(1, 4, 3, 32, 32))
    expected = np.abs(ntchw[0]).sum(axis=1)
    assert frame_maps(ntchw, "NTCHW") == pytest.approx(expected)
    nctwh = np.ascontiguousarray(ntchw.transpose(0, 2, 1, 3, 4))  # the same window laid out NCTHW
    assert frame_maps(nctwh, "NCTHW") == pytest.approx(expected)
    assert (frame_maps(-np.ones((1, 4, 3, 32, 32)), "NTCHW") == 3.0).all()  # negative evidence counts too


def test_a_video_averages_its_windows_shares_each_window_once() -> None:
    loud, quiet = np.zeros((2, 32, 32)), np.zeros((2, 32, 32))
    paint(loud, 0, "mouth", 100.0)  # a window with large attribution, all on the mouth
    paint(quiet, 0, "nose", 0.01)  # a window with tiny attribution, all on the nose
    raw, shares = pool_video([pool_window(tile_sums(m, TILES)) for m in (loud, quiet)])
    assert shares[REGIONS.index("mouth")] == pytest.approx(0.5) and shares[REGIONS.index("nose")] == pytest.approx(0.5)
    assert raw[REGIONS.index("mouth")] > 1000 * raw[REGIONS.index("nose")]


def test_all_zero_attribution_has_zero_shares_not_nan() -> None:
    pooled = pool_window(np.zeros((4, len(TILES))))
    assert (pooled.shares == 0).all()


def face() -> np.ndarray:
    """478 hand-placed landmarks (pixels, y down) with eyes, lids, brows, lips, irises and nose tip set."""
    points = np.zeros((478, 3), dtype=np.float32)
    put = {
        33: (100, 100), 133: (130, 100), 263: (200, 100), 362: (170, 100),  # eye corners (outer, inner)
        158: (110, 95), 159: (115, 94), 160: (120, 95), 153: (110, 105), 145: (115, 106), 144: (120, 105),
        385: (180, 95), 386: (185, 94), 387: (190, 95), 380: (180, 105), 374: (185, 106), 373: (190, 105),
        468: (115, 100), 473: (185, 100),  # irises
        70: (95, 80), 63: (105, 76), 105: (115, 75), 66: (125, 76), 107: (133, 80),  # right brow, upper edge
        300: (205, 80), 293: (195, 76), 334: (185, 75), 296: (175, 76), 336: (167, 80),  # left brow
        55: (135, 85), 285: (165, 85),  # inner brow ends
        61: (125, 170), 291: (175, 170), 13: (150, 165), 14: (150, 172), 1: (150, 130),  # lips, nose tip
        82: (140, 166), 87: (140, 171), 312: (160, 166), 317: (160, 171), 0: (150, 160), 17: (150, 178),  # lip pairs
    }  # fmt: skip
    for index, (x, y) in put.items():
        points[index, :2] = (x, y)
    return points


def moved(points: np.ndarray, changes: dict[int, tuple[float, float]]) -> np.ndarray:
    out = points.copy()
    for index, (dx, dy) in changes.items():
        out[index, :2] += (dx, dy)
    return out


def similar(points: np.ndarray, angle: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    out = points.copy()
    out[:, :2] = points[:, :2] @ (scale * np.array([[c, s], [-s, c]])) + shift
    return out


def test_descriptors_follow_the_actions_they_stand_in_for() -> None:
    base = frame_descriptors(face())
    closed = frame_descriptors(moved(face(), {158: (0, 4), 159: (0, 5), 160: (0, 4), 385: (0, 4), 386: (0, 5)}))
    raised = frame_descriptors(moved(face(), {105: (0, -6), 334: (0, -6)}))
    knit = frame_descriptors(moved(face(), {55: (4, 5), 285: (-4, 5)}))
    smile = frame_descriptors(moved(face(), {61: (-3, -6), 291: (3, -6)}))
    open_mouth = frame_descriptors(moved(face(), {14: (0, 10), 87: (0, 9), 317: (0, 9), 17: (0, 12)}))
    jaw_drop = frame_descriptors(moved(face(), {17: (0, 10), 87: (0, 4), 317: (0, 4)}))  # inner centre still shut
    looking_right = frame_descriptors(moved(face(), {468: (5, 0), 473: (5, 0)}))
    assert closed["eye_openness"] < 0.7 * base["eye_openness"]
    assert raised["brow_raise"] > base["brow_raise"] and raised["brow_lowering"] == pytest.approx(base["brow_lowering"])
    assert knit["brow_lowering"] > base["brow_lowering"]
    assert smile["lip_corner_pull"] > base["lip_corner_pull"] + 0.05
    assert open_mouth["mouth_opening"] > base["mouth_opening"] + 0.1
    assert jaw_drop["mouth_opening"] > base["mouth_opening"] + 0.05
    assert looking_right["gaze_x"] > base["gaze_x"] + 0.1 and looking_right["gaze_y"] == pytest.approx(base["gaze_y"])
    assert np.isnan(base["head_motion"])
    assert frame_descriptors(moved(face(), {1: (7, 0)}), face())["head_motion"] == pytest.approx(0.1)


def test_descriptors_ignore_head_roll_scale_and_position() -> None:
    base = frame_descriptors(face())
    turned = frame_descriptors(similar(face(), 0.3, 1.7, (40.0, -25.0)))
    for name in DESCRIPTORS:
        if name not in ("blink", "head_motion"):
            assert turned[name] == pytest.approx(base[name], abs=1e-4), name


def test_blinks_are_frames_well_below_the_videos_usual_eye_openness() -> None:
    series = np.full((6, len(DESCRIPTORS)), np.nan)
    series[:, DESCRIPTORS.index("eye_openness")] = [0.30, 0.31, 0.05, 0.29, np.nan, 0.30]
    blink = add_blinks(series)[:, DESCRIPTORS.index("blink")]
    assert blink[:4].tolist() == [0.0, 0.0, 1.0, 0.0] and np.isnan(blink[4])


def test_gaze_is_dropped_on_blinks_and_a_one_frame_jitter_is_removed_while_a_gaze_shift_stays_a_step() -> None:
    series = np.full((9, len(DESCRIPTORS)), np.nan)
    series[:, DESCRIPTORS.index("eye_openness")] = [0.3, 0.3, 0.3, 0.3, 0.3, 0.05, 0.3, 0.3, 0.3]
    gaze = np.array([0.0, 0.0, 0.4, 0.0, 0.0, -1.0, 1.0, 1.0, 1.0])  # a jitter at 2, a blink at 5, a shift at 6
    series[:, DESCRIPTORS.index("gaze_x")] = gaze
    series[:, DESCRIPTORS.index("gaze_y")] = gaze / 2
    truth = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    assert np.corrcoef(gaze, truth)[0, 1] < 0.6
    finish_video(series)
    for column, scale in (("gaze_x", 1.0), ("gaze_y", 0.5)):
        settled = series[:, DESCRIPTORS.index(column)]
        assert np.isnan(settled[5])  # the lids covered the iris
        np.testing.assert_allclose(np.delete(settled, 5), np.delete(truth, 5) * scale)
    assert series[5, DESCRIPTORS.index("blink")] == 1.0


def test_spearman_needs_enough_varying_frames() -> None:
    a = np.arange(8.0)
    assert spearman(a, a**3) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert np.isnan(spearman(a, np.ones(8)))
    assert np.isnan(spearman(a[:4], a[:4]))  # too few frames
    with_gaps = np.where(a % 3 == 0, np.nan, a)
    assert spearman(a, with_gaps) == pytest.approx(1.0)
    rows = np.column_stack([a] * len(DESCRIPTORS))
    found = window_correlations(a, rows)
    assert set(found) == set(DESCRIPTORS) and all(v == pytest.approx(1.0) for v in found.values())
    pooled = mean_correlations([found, {**found, "blink": float("nan"), "gaze_x": -1.0}])
    assert pooled["gaze_x"] == pytest.approx(0.0) and pooled["blink"] == pytest.approx(1.0)


@pytest.mark.parametrize(("score", "band"), [(0.0, "minimal"), (13.4, "minimal"), (13.5, "mild"), (63.0, "severe")])
def test_bands_are_the_devices_bdi_ii_bands(score: float, band: str) -> None:
    assert band_of(score) == band


def labelled_video(name: str, score: float, label: float | None, top: str) -> VideoResult:
    """A one-window video whose attribution lies wholly on ``top``."""
    per_frame = np.zeros((4, len(TILES)))
    per_frame[:, REGIONS.index(top)] = 1.0
    window = WindowResult(0.0, 2.0, score, pool_window(per_frame), np.arange(4.0), {})
    return VideoResult(name, REGIONS, [window], np.arange(4.0), np.zeros((4, len(DESCRIPTORS))), label)


def test_labelled_videos_are_split_into_correct_under_and_over_estimated() -> None:
    videos = [
        labelled_video(
            "right.mp4", 30.0, 30.0 + ERROR_TOLERANCE_SHARE * BDI_II.span, "mouth"
        ),  # on the edge: still correct
        labelled_video("low.mp4", 10.0, 40.0, "left_eye"),
        labelled_video("low2.mp4", 20.0, 30.0, "right_eye"),
        labelled_video("high.mp4", 40.0, 20.0, "nose"),
    ]
    doc = document(videos, method="occlusion", model="m", per_window=False)
    assert [v["prediction"] for v in doc["videos"]] == ["correct", "under", "under", "over"]
    groups = doc["predictions"]
    assert {g: groups[g]["videos"] for g in groups} == {"correct": 1, "under": 2, "over": 1}
    assert groups["under"]["regions"]["left_eye"] == pytest.approx(0.5)
    assert groups["under"]["regions"]["right_eye"] == pytest.approx(0.5)
    assert groups["over"]["regions"]["nose"] == pytest.approx(1.0)
    assert "<td>under</td><td>2</td>" in render_html(doc, {})
    unlabelled = document([labelled_video("x.mp4", 30.0, None, "mouth")], method="m", model="m", per_window=False)
    assert unlabelled["predictions"] is None and "prediction" not in unlabelled["videos"][0]
    assert "Per prediction" not in render_html(unlabelled, {})
