"""The offline occlusion gives the device's region values, and spreads them over frames for the curve."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.explain.occlusion import occluded_frames, occlusion_deltas
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


def test_region_totals_are_the_devices_and_frames_follow_the_per_frame_changes() -> None:
    window = (1.0 + np.random.default_rng(0).normal(0, 0.1, (1, 4, 3, 32, 32))).astype(np.float32)
    score, per_frame = Occlusion(SPEC, TILES, _infer).attribute(window)
    assert score == pytest.approx(float(_infer(window)[0]))
    frames = occlusion_deltas(_infer, window, TILES, range(4), layout="NTCHW")  # every frame, for the curve
    sampled = occlusion_deltas(_infer, window, TILES, occluded_frames(4), layout="NTCHW").sum(axis=1)
    np.testing.assert_allclose(per_frame.sum(axis=0), sampled, rtol=1e-5)  # what the device computes
    mouth = [t.region for t in TILES].index("mouth")
    np.testing.assert_allclose(per_frame[:, mouth] / per_frame[:, mouth].sum(), frames[mouth] / frames[mouth].sum())
    assert per_frame[:, [t.region for t in TILES].index("nose")].sum() == 0.0  # a tile the score never reads


def test_the_offline_shares_are_the_device_explainers_on_a_real_backend(exported_bundle_dir: Path) -> None:
    from edge.backends import create
    from edge.bundle import load_bundle
    from edge.explain import create as create_explainer

    backend = create("onnxruntime", load_bundle(exported_bundle_dir))
    shape = backend.bundle.input.shape
    window = np.random.default_rng(1).normal(0, 1, shape).astype(np.float32)
    (device,) = create_explainer("occlusion", backend).explain(window)
    _, per_frame = Occlusion(backend.bundle.input, backend.bundle.tiles, backend.infer).attribute(window)
    offline = dict(zip(device.raw, per_frame.sum(axis=0) / per_frame.sum(), strict=True))
    assert device.shares == pytest.approx(offline, rel=1e-4)
