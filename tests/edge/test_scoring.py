"""Window scoring on the worker thread: order kept, only passed windows scored, bounded waiting, real ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest
from daemon_media import tiny_bundle

from edge.backends import create
from edge.face import Window, WindowQuality
from edge.preprocess import window_to_input
from edge.scoring import WindowScorer, window_quality_figures


def window(bundle_frames: int, start: float, *, passed: bool, level: int) -> Window:
    quality = WindowQuality(
        passed=passed,
        reject_reason=None if passed else "face_lost",
        face_fraction=1.0 if passed else 0.2,
        passed_fraction=1.0 if passed else 0.0,
        mean_abs_yaw=5.0 if passed else None,
        mean_abs_pitch=3.0 if passed else None,
        mean_brightness=120.0 if passed else None,
        mean_contrast=40.0 if passed else None,
        mean_blur=300.0 if passed else None,
    )
    times = start + np.arange(bundle_frames) / 8
    return Window(
        frames=np.full((bundle_frames, 112, 112, 3), level, dtype=np.uint8),
        start=float(times[0]),
        end=float(times[-1]),
        quality=quality,
        sample_times=times,
        grid_times=times,
        tiles=(),
        region_corners={},
        length=bundle_frames,
    )


@pytest.fixture(scope="module")
def scorer_parts(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, object]:
    bundle = tiny_bundle(tmp_path_factory.mktemp("scoring") / "bundle", frames=8)
    return bundle, create("onnxruntime", bundle, threads=1)


def test_outcomes_keep_order_and_only_passed_windows_are_scored(scorer_parts: tuple[object, object]) -> None:
    bundle, backend = scorer_parts
    scorer = WindowScorer(backend, origin=1000.0, max_pending=2)  # type: ignore[arg-type]
    windows = [window(8, i, passed=i % 3 != 2, level=40 * i) for i in range(6)]
    for w in windows:
        scorer.submit([w])
    outcomes = scorer.ready(wait=True)
    scorer.close()
    assert [o.start for o in outcomes] == [1000.0 + i for i in range(6)]
    for w, o in zip(windows, outcomes, strict=True):
        if w.quality.passed:
            expected = backend.infer(window_to_input(w.frames, bundle.input))[0]  # type: ignore[attr-defined]
            assert o.score == pytest.approx(float(expected)) and o.reject_reason is None
        else:
            assert o.score is None and o.reject_reason == "face_lost"
    assert (scorer.scored, scorer.rejected) == (4, 2) and scorer.seconds > 0
    assert "abs_yaw" in outcomes[0].quality and "abs_yaw" not in outcomes[2].quality


def test_waiting_windows_are_bounded(scorer_parts: tuple[object, object]) -> None:
    _, backend = scorer_parts
    scorer = WindowScorer(backend, origin=0.0, max_pending=2)  # type: ignore[arg-type]
    for i in range(5):
        scorer.submit([window(8, i, passed=True, level=i)])
        assert sum(not f.done() for f in scorer._pending) <= 2  # frames of at most 2 batches held in memory
    assert len(scorer.ready(wait=True)) == 5
    scorer.discard()
    assert scorer.ready() == []
    scorer.close()


def test_quality_figures_leave_out_what_was_not_measured() -> None:
    figures = window_quality_figures(window(8, 0, passed=False, level=0).quality)
    assert figures == {"face_fraction": 0.2, "passed_fraction": 0.0}
    # a measured window reports every figure, each under its own name (no field paired with another's value)
    measured = window_quality_figures(window(8, 0, passed=True, level=0).quality)
    assert measured == {
        "face_fraction": 1.0, "passed_fraction": 1.0, "abs_yaw": 5.0, "abs_pitch": 3.0,
        "brightness": 120.0, "contrast": 40.0, "blur": 300.0,
    }  # fmt: skip
    assert all(type(value) is float for value in measured.values())
