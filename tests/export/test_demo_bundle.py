"""The committed demo bundle: it verifies, says what it is, beats the baseline and scores a sample video (ORT)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.backends import create
from edge.bundle import load_bundle
from edge.face import FacePipeline, iter_video_frames
from edge.preprocess import batch_windows

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "edge" / "assets" / "demo_bundle"


def test_demo_bundle_card_says_synthetic_demonstration_only_and_beats_the_baseline() -> None:
    bundle = load_bundle(BUNDLE)
    card = bundle.manifest["model_card"]
    text = " ".join([card["intended_use"], card["training_data"], *card["limitations"]]).lower()
    for phrase in ("synthetic", "measures nothing clinical", "demonstration", "not a diagnostic device"):
        assert phrase in text
    assert card["not_a_diagnostic_device"] is True
    heldout = card["metrics"]["heldout"]
    assert heldout["videos"] >= 10 and heldout["mae"] <= 0.5 * heldout["baseline_mae"]
    assert sum(path.stat().st_size for path in BUNDLE.iterdir()) < 3_500_000


def test_demo_bundle_scores_windows_of_a_sample_video() -> None:
    bundle = load_bundle(BUNDLE)
    windows = []
    with FacePipeline(bundle.input, bundle.tiles) as pipeline:
        for frame, timestamp in iter_video_frames(REPO / "samples" / "clip_001_score28.6.mp4", max_frames=45):
            windows += [w.frames for w in pipeline.push(frame, timestamp).windows if w.quality.passed]
    assert len(windows) >= 2
    with create("onnxruntime", bundle, precision="fp32") as backend:
        scores = backend.infer(batch_windows(windows, bundle.input))
    assert scores.shape == (len(windows),) and np.all((scores >= 0.0) & (scores <= 63.0))
