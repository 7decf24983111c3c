"""The committed demo bundle: it verifies, says what it is, beats the baseline, ranks the sample clips by their
labels through the real face pipeline (FP32, ONNX Runtime) and its committed INT8 model stays close to FP32."""

from __future__ import annotations

import csv
from itertools import pairwise
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from edge.backends import create
from edge.bundle import Bundle, load_bundle
from edge.face import FacePipeline, windows_from_video
from edge.preprocess import batch_windows
from export.demo_bundle import main as demo_bundle_main

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "edge" / "assets" / "demo_bundle"
SAMPLES = REPO / "samples"
OUTPUT_RANGE = 63.0


@pytest.fixture(scope="module")
def bundle() -> Bundle:
    return load_bundle(BUNDLE)


@pytest.fixture(scope="module")
def clips(bundle: Bundle) -> list[tuple[float, npt.NDArray[np.float32]]]:
    """(label, batch of every quality-passed window) per sample clip, lowest label first: cut once per module."""
    with (SAMPLES / "labels.csv").open(newline="", encoding="utf-8") as handle:
        rows = sorted(csv.DictReader(handle), key=lambda row: float(row["score"]))
    out = []
    with FacePipeline(bundle.input, bundle.tiles) as pipeline:
        for row in rows:
            windows = windows_from_video(SAMPLES / row["video"], bundle.input, bundle.tiles, pipeline=pipeline)
            passed = [w.frames for w in windows if w.quality.passed]
            assert len(passed) >= 4, f"{row['video']}: only {len(passed)} windows passed the quality gate"
            out.append((float(row["score"]), batch_windows(passed, bundle.input)))
    return out


def _scores(bundle: Bundle, precision: str, clips: list[tuple[float, npt.NDArray[np.float32]]]) -> list[np.ndarray]:
    with create("onnxruntime", bundle, precision=precision) as backend:
        return [backend.infer(batch) for _, batch in clips]


def test_demo_bundle_card_says_synthetic_demonstration_only_and_beats_the_baseline(bundle: Bundle) -> None:
    card = bundle.manifest["model_card"]
    text = " ".join([card["intended_use"], card["training_data"], *card["limitations"]]).lower()
    for phrase in ("synthetic", "measures nothing clinical", "demonstration", "not a diagnostic device"):
        assert phrase in text
    assert card["not_a_diagnostic_device"] is True
    heldout = card["metrics"]["heldout"]
    assert heldout["videos"] >= 10 and heldout["mae"] <= 0.5 * heldout["baseline_mae"]
    assert sum(path.stat().st_size for path in BUNDLE.iterdir()) < 3_500_000


def test_fp32_model_ranks_the_sample_clips_in_the_order_of_their_labels(
    bundle: Bundle, clips: list[tuple[float, npt.NDArray[np.float32]]]
) -> None:
    labels = [label for label, _ in clips]
    assert labels == sorted(labels) and len(labels) == 3
    means = [float(scores.mean()) for scores in _scores(bundle, "fp32", clips)]
    # each clip of a higher label scores at least a point higher on average (measured: 11.9, 14.0, 55.2)
    assert all(later - earlier >= 1.0 for earlier, later in pairwise(means)), means


def test_committed_int8_model_stays_within_one_percent_of_fp32(
    bundle: Bundle, clips: list[tuple[float, npt.NDArray[np.float32]]]
) -> None:
    listed = {(a.path, a.kind, a.precision, a.target) for a in bundle.artifacts}
    assert ("model.int8.ort.onnx", "onnx", "int8", "onnxruntime-cpu") in listed
    assert ("model.int8.trt.onnx", "onnx", "int8", "tensorrt") in listed
    assert any(kind == "trt-calibration-table" and (BUNDLE / path).is_file() for path, kind, _, _ in listed)
    fp32 = np.concatenate(_scores(bundle, "fp32", clips))
    int8 = np.concatenate(_scores(bundle, "int8", clips))
    assert fp32.shape == int8.shape and not np.array_equal(fp32, int8)  # a different model really ran
    assert float(np.mean(np.abs(int8 - fp32))) <= 0.01 * OUTPUT_RANGE


def test_demo_bundle_command_names_a_run_without_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = demo_bundle_main(
        ["--run", str(tmp_path), "--heldout", str(tmp_path / "h.csv"), "--out", str(tmp_path / "b")]
    )
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("python -m export.demo_bundle: error:") and "Traceback" not in err
    assert f"run directory {tmp_path} has no report (report.json)" in err and "python -m export train" in err
    assert not (tmp_path / "b").exists()
