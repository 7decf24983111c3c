"""Occlusion through a real ONNX Runtime backend on hand-built models whose answer is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from region_models import FRAMES, SIZE, energy_bundle

from edge.backends import create
from edge.backends.base import Backend
from edge.errors import InputError, UsageError
from edge.explain import create as create_explainer
from edge.explain import registry, to_shares
from edge.explain.occlusion import occluded_frames, occlusion_deltas
from edge.explain.settings import EvenSampler

REGIONS = ("right_eyebrow", "left_eyebrow", "right_eye", "left_eye", "nose", "mouth")


def batch(count: int, value: float = 1.5, seed: int = 0) -> np.ndarray:
    """Normalised windows: ``value`` everywhere plus small noise (so every tile holds energy)."""
    rng = np.random.default_rng(seed)
    return (value + rng.normal(0, 0.01, (count, FRAMES, 3, SIZE, SIZE))).astype(np.float32)


class CountingBackend:
    """Wraps a real backend to record the batch sizes it is asked to run."""

    def __init__(self, backend: Backend) -> None:
        self.backend, self.bundle, self.batches = backend, backend.bundle, []

    def infer_outputs(self, clips: np.ndarray) -> np.ndarray:
        self.batches.append(clips.shape[0])
        return self.backend.infer_outputs(clips)


def test_a_model_that_reads_only_the_mouth_is_explained_by_the_mouth(tmp_path: Path) -> None:
    backend = create("onnxruntime", energy_bundle(tmp_path, {"mouth": 10.0}))
    explainer = create_explainer("occlusion", backend)
    assert explainer.regions == REGIONS
    (found,) = explainer.explain(batch(1))
    assert found.shares == pytest.approx({**dict.fromkeys(REGIONS, 0.0), "mouth": 1.0})
    assert found.raw["mouth"] == pytest.approx(10.0 * 1.5**2, rel=0.02)  # occluding the mouth removes its term


def test_shares_follow_the_weights_of_two_regions(tmp_path: Path) -> None:
    backend = create("onnxruntime", energy_bundle(tmp_path, {"left_eye": 1.0, "mouth": 3.0}))
    found = create_explainer("occlusion", backend).explain(batch(3))
    for attribution in found:
        assert attribution.shares is not None
        assert attribution.shares["left_eye"] == pytest.approx(0.25, abs=0.01)
        assert attribution.shares["mouth"] == pytest.approx(0.75, abs=0.01)
        assert attribution.shares["nose"] == pytest.approx(0.0, abs=1e-6)  # float summation order only
    assert "0.75" not in repr(found[0])  # single-window values stay out of log lines


def test_one_batch_of_n_by_f_copies_plus_the_window_and_without_it_when_the_score_is_known(tmp_path: Path) -> None:
    backend = CountingBackend(create("onnxruntime", energy_bundle(tmp_path, {"nose": 2.0})))
    explainer = create_explainer("occlusion", backend)  # type: ignore[arg-type]
    clips = batch(2)
    copies = len(REGIONS) * len(occluded_frames(FRAMES))
    without = explainer.explain(clips)
    assert backend.batches == [copies + 1] * 2
    backend.batches.clear()
    scores = backend.backend.infer(clips)
    with_scores = explainer.explain(clips, scores)
    assert backend.batches == [copies] * 2
    for known, fresh in zip(with_scores, without, strict=True):
        assert known.shares == pytest.approx(fresh.shares)
    with pytest.raises(InputError, match="3 scores for 2 windows"):
        explainer.explain(clips, np.zeros(3, dtype=np.float32))


def test_per_frame_occlusion_finds_the_one_frame_the_model_reads(tmp_path: Path) -> None:
    backend = create("onnxruntime", energy_bundle(tmp_path, {"right_eye": 4.0}, frame=1))
    deltas = occlusion_deltas(backend.infer, batch(1), backend.bundle.tiles, range(FRAMES), layout="NTCHW")
    assert deltas.shape == (len(REGIONS), FRAMES)
    eye = REGIONS.index("right_eye")
    assert deltas[eye, 1] == pytest.approx(4.0 * 1.5**2, rel=0.02)
    assert np.count_nonzero(deltas > 1e-4) == 1


def test_a_model_blind_to_every_tile_has_no_shares(tmp_path: Path) -> None:
    backend = create("onnxruntime", energy_bundle(tmp_path, {"mouth": 0.0}))
    (found,) = create_explainer("occlusion", backend).explain(batch(1))
    assert found.shares is None and to_shares({"a": float("nan")}) is None


def test_methods_are_found_by_key_and_an_unknown_one_lists_the_valid_ones(tmp_path: Path) -> None:
    assert "occlusion" in registry()
    backend = create("onnxruntime", energy_bundle(tmp_path, {"mouth": 1.0}))
    with pytest.raises(UsageError, match="choose one of: occlusion"):
        create_explainer("gradcam", backend)


@pytest.mark.parametrize("share", [0.1, 0.25, 0.5, 1.0])
def test_the_sampler_takes_its_share_evenly_from_the_first_item(share: float) -> None:
    sampler = EvenSampler(share)
    taken = [sampler.take() for _ in range(400)]
    assert taken[0] and sum(taken) == round(400 * share)
    gaps = np.diff(np.flatnonzero(taken))
    assert gaps.max() - gaps.min() <= 1  # evenly spread, no bursts


def test_the_occluded_frames_spread_over_the_window() -> None:
    assert occluded_frames(16) == (2, 6, 10, 14)
    assert occluded_frames(64) == (8, 24, 40, 56)
    assert occluded_frames(2) == (0, 1)  # a short window: every frame
