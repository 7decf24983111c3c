"""``python -m export evaluate``: per-video means, baselines, bands, groups; one run through the real pipeline."""

from __future__ import annotations

import csv
import json
import stat
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edge.bundle import Bundle, load_bundle
from edge.cli_support import run_cli
from export.dataset import LabelledVideo, WindowSet
from export.evaluate import report_of, training_mean

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "edge" / "assets" / "demo_bundle"
SAMPLES = REPO / "samples"


def window_set(labels: list[float], owners: list[int], groups: list[str]) -> WindowSet:
    videos = tuple(
        LabelledVideo(Path(f"v{i}.mp4"), score, {"site": group})
        for i, (score, group) in enumerate(zip(labels, groups, strict=True))
    )
    count = len(owners)
    return WindowSet(
        windows=np.zeros((count, 1, 1, 1, 3), dtype=np.uint8),
        scores=np.array([labels[o] for o in owners], dtype=np.float32),
        video_index=np.array(owners, dtype=np.int64),
        videos=videos,
        rejected=2,
        starts=np.arange(count, dtype=np.float64),
        rejections=((0, 9.0, "blur"), (1, 9.0, "face_lost")),
    )


@pytest.fixture(scope="module")
def bundle() -> Bundle:
    return load_bundle(BUNDLE)


def test_report_scores_a_video_by_the_mean_of_its_windows_against_the_recorded_training_mean(bundle: Bundle) -> None:
    data = window_set([5.0, 25.0, 40.0, 60.0], [0, 0, 1, 2, 2, 3], ["a", "a", "b", "b"])
    scores = np.array([4.0, 10.0, 25.0, 30.0, 40.0, 50.0])  # video means 7, 25, 35, 50
    report, truth, predicted = report_of(bundle, data, scores, resamples=200)
    assert predicted.tolist() == [7.0, 25.0, 35.0, 50.0] and truth.tolist() == [5.0, 25.0, 40.0, 60.0]
    model = report["model_metrics"]
    assert model["mae"] == pytest.approx((2 + 0 + 5 + 10) / 4) and model["bias"] == pytest.approx(-13 / 4)
    recorded, where = training_mean(bundle.manifest)
    assert recorded == report["baseline"]["value"] and where in report["baseline"]["source"]
    assert report["baseline"]["mae"] == pytest.approx(np.mean(np.abs(recorded - truth)))
    assert report["beats_baseline"] is True
    assert report["windows"]["rejected_by_reason"] == {"blur": 1, "face_lost": 1}
    bands = report["bands"]  # BDI-II bands of the true score: 5 minimal, 25 moderate, 40 and 60 severe
    assert list(bands) == ["minimal", "moderate", "severe"]
    assert bands["severe"]["videos"] == 2 and bands["severe"]["bias"] == pytest.approx(-7.5)
    site = report["groups"]["site"]
    assert site["values"]["a"]["mae"] == pytest.approx(1.0) and site["values"]["b"]["mae"] == pytest.approx(7.5)
    assert site["mae_gap"] == pytest.approx(6.5)
    assert report["caution"] and "not a diagnostic device" in report["notice"].lower()


def test_without_a_recorded_training_mean_the_baseline_is_the_labels_mean_and_says_so(bundle: Bundle) -> None:
    manifest = json.loads(json.dumps(bundle.manifest))
    del manifest["model_card"]["metrics"]
    bare = replace(bundle, manifest=manifest)
    data = window_set([10.0, 20.0, 60.0], [0, 1, 2], ["a", "b", "b"])
    report, _, _ = report_of(bare, data, np.array([30.0, 30.0, 30.0]), resamples=200)
    assert report["baseline"]["value"] == pytest.approx(30.0) and "mean of these labels" in report["baseline"]["source"]
    assert report["beats_baseline"] is False  # a constant model equal to the baseline does not beat it


def test_evaluate_runs_the_device_pipeline_on_a_sample_video_and_writes_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = tmp_path / "labels.csv"
    with labels.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["video", "score"], [str(SAMPLES / "clip_002_score55.4.mp4"), "55.4"]])
    out = tmp_path / "eval"
    argv = ["evaluate", str(BUNDLE), "--labels", str(labels), "--json", "--out", str(out)]
    assert (
        run_cli("python -m export", "", "export.commands", [*argv, "--per-window-csv", "clip_002_score55.4.mp4"]) == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["videos"] == {"labelled": 1, "scored": 1} and report["windows"]["scored"] >= 4
    assert report["model_metrics"]["n"] == 1 and report["model_metrics"]["mae"] < 20  # the demo model got it
    assert report["backend"]["precision"] == "fp32"
    page = (out / "evaluation.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "not a diagnostic device" in page.lower()
    rows = list(csv.DictReader((out / "windows_clip_002_score55.4.csv").open()))
    assert len(rows) == report["windows"]["scored"] + report["windows"]["rejected"]
    scored = [float(row["score"]) for row in rows if row["passed"] == "yes"]
    assert np.mean(scored) == pytest.approx(55.4 + report["model_metrics"]["bias"], abs=1e-3)  # video = window mean
    assert stat.S_IMODE((out / "windows_clip_002_score55.4.csv").stat().st_mode) == 0o600


def test_per_window_csv_needs_out_and_a_video_of_the_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["evaluate", str(BUNDLE), "--labels", str(SAMPLES / "labels.csv"), "--per-window-csv"]
    assert run_cli("python -m export", "", "export.commands", [*argv, "clip_000_score04.3.mp4"]) == 2
    assert "--per-window-csv needs --out" in capsys.readouterr().err
    code = run_cli("python -m export", "", "export.commands", [*argv, "other.mp4", "--out", str(tmp_path)])
    assert code == 2 and "clip_000_score04.3.mp4" in capsys.readouterr().err  # the names it could be, at once
    assert not any(tmp_path.iterdir())
