"""The offline occlusion gives the device's region values, and spreads them over frames for the curve."""

from __future__ import annotations

import numpy as np
import pytest

from edge.explain.occlusion import occlusion_deltas
from export.dataset import default_spec
from export.explain.methods import Occlusion

SPEC, TILES = default_spec("NTCHW", frames=4, size=32)


def _infer(batch: np.ndarray) -> np.ndarray:
    """A score that is not additive over frames: the square of the energy of mouth and right eye together."""
    energy = np.zeros(len(batch))
    for tile, weight in ((TILES[5], 1.0), (TILES[2], 0.5)):
        energy += (
            weight
            * (batch[:, :, :, tile.y : tile.y + tile.height, tile.x : tile.x + tile.width] ** 2).mean(axis=(2, 3, 4))
            @ np.array([0.1, 0.2, 0.3, 0.4])
        )
    return (energy**2).astype(np.float32)


def test_region_totals_are_the_devices_whole_window_occlusion_and_frames_follow_the_per_frame_changes() -> None:
    assert [t.region for t in TILES][2::3] == ["right_eye", "mouth"]
    window = (1.0 + np.random.default_rng(0).normal(0, 0.1, (1, 4, 3, 32, 32))).astype(np.float32)
    score, per_frame = Occlusion(SPEC, TILES, _infer).attribute(window)
    assert score == pytest.approx(float(_infer(window)[0]))
    device = occlusion_deltas(_infer, window, TILES, layout="NTCHW")
    np.testing.assert_allclose(per_frame.sum(axis=0), device, rtol=1e-5)
    frames = occlusion_deltas(_infer, window, TILES, layout="NTCHW", per_frame=True)
    assert not np.allclose(frames.sum(axis=1), device, rtol=0.05)  # summing one-frame occlusions is another answer
    mouth = [t.region for t in TILES].index("mouth")
    np.testing.assert_allclose(per_frame[:, mouth] / per_frame[:, mouth].sum(), frames[mouth] / frames[mouth].sum())
    assert per_frame[:, [t.region for t in TILES].index("nose")].sum() == 0.0  # a tile the score never reads
