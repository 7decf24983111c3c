"""`python -m export calibrate` end to end on a tiny bundle: manifest records, gate, the INT8 model on ORT."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tiny_bundle import make_bundle, make_windows

from calibration.collect import Collected, collect_from_windows, write_set
from calibration.dataset import load_set
from calibration.pipeline import INT8_ORT, INT8_TRT, TABLE, calibrate_bundle, run_scores
from calibration.trt_table import read_table
from edge.backends import create
from edge.bundle import Bundle, load_bundle
from edge.cli_support import run_cli
from edge.errors import AccuracyGateError

pytestmark = pytest.mark.filterwarnings("ignore")


LABELS = {"clip_a.mp4": 17.0, "clip_b.mp4": 24.0}
WINDOWS_PER_SOURCE = 12
HOLDOUT = 0.25  # the command's default --holdout-fraction


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Bundle, Path]:
    tmp = tmp_path_factory.mktemp("pipeline")
    bundle = make_bundle(tmp / "bundle")
    collected = Collected()
    for name, label in LABELS.items():
        index = collected.add_source(name)
        for frames in make_windows(WINDOWS_PER_SOURCE, seed=index + 1):
            collected.add(frames, index, label)
    write_set(tmp / "set", collected, bundle.input, bundle.tiles)
    code = run_cli(
        "python -m export", "", "export.commands", ["calibrate", str(bundle.root), "--calib", str(tmp / "set")]
    )
    assert code == 0
    return load_bundle(bundle.root), tmp / "set"


def test_manifest_records_every_new_file_with_its_hash(calibrated: tuple[Bundle, Path]) -> None:
    bundle, calib_set = calibrated
    kinds = {(a.path, a.kind, a.precision, a.target) for a in bundle.artifacts}
    assert (INT8_ORT, "onnx", "int8", "onnxruntime-cpu") in kinds
    assert (INT8_TRT, "onnx", "int8", "tensorrt") in kinds
    assert (TABLE, "trt-calibration-table", None, "tensorrt") in kinds
    assert {a.path for a in bundle.artifacts if a.kind == "report"} == {
        "calibration_report.json",
        "calibration_report.html",
    }
    section = bundle.manifest["calibration"]
    gap = load_set(calib_set).overlapping_windows()  # windows sharing frames with the held-out ones: in neither
    held = round(WINDOWS_PER_SOURCE * HOLDOUT) * len(LABELS)  # the last windows of each video
    calibration = (WINDOWS_PER_SOURCE - gap) * len(LABELS) - held
    assert section["method"] == "minmax" and section["windows"] == {"calibration": calibration, "held_out": held}
    assert section["sources"] == len(LABELS)
    assert section["max_delta"] == pytest.approx(0.63)
    assert 0 <= section["measured_delta"] <= section["max_delta"]
    # the set itself never enters the bundle
    assert not any(p.suffix == ".npz" for p in bundle.root.iterdir())
    assert read_table(bundle.root / TABLE).algorithm == "EntropyCalibration2"
    report = json.loads((bundle.root / "calibration_report.json").read_text())
    assert report["accuracy"]["against_labels"]["windows"] == held
    assert report["layers"] and "sqnr_db" in report["layers"][0]
    assert "not a diagnostic device" in (bundle.root / "calibration_report.html").read_text()
    assert "not a diagnostic device" in report["disclaimer"]


def test_onnxruntime_backend_runs_the_int8_model_close_to_fp32(calibrated: tuple[Bundle, Path]) -> None:
    bundle, set_path = calibrated
    cset = load_set(set_path)
    batch = next(cset.batches(range(4), bundle.input, batch_size=4))
    with create("onnxruntime", bundle, precision="int8") as backend:
        assert backend.describe()["model_file"] == INT8_ORT
        int8 = backend.infer(batch)
    fp32 = run_scores(bundle.root / "model.onnx", [batch])
    assert int8.shape == (4,)
    assert np.abs(int8 - fp32).max() < 0.63
    assert create("onnxruntime", bundle).precision == "int8"  # auto prefers INT8 once it is there


def test_gate_fails_with_a_clear_message_and_leaves_the_bundle_alone(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "bundle")
    write_set(tmp_path / "set", collect_from_windows(make_windows(12)), bundle.input, bundle.tiles)
    before = (bundle.root / "manifest.json").read_bytes()
    with pytest.raises(AccuracyGateError, match=r"more than --max-delta 0\.000.*not changed") as caught:
        calibrate_bundle(bundle, load_set(tmp_path / "set"), max_delta=1e-7)
    assert "--method percentile" in str(caught.value.fix)
    assert (bundle.root / "manifest.json").read_bytes() == before
    assert sorted(p.name for p in bundle.root.iterdir()) == ["manifest.json", "model.onnx"]


def test_gate_failure_is_exit_code_7(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = make_bundle(tmp_path / "bundle")
    write_set(tmp_path / "set", collect_from_windows(make_windows(8)), bundle.input, bundle.tiles)
    argv = ["calibrate", str(bundle.root), "--calib", str(tmp_path / "set"), "--max-delta", "0"]
    assert run_cli("python -m export", "", "export.commands", argv) == 7
    assert "INT8 drifts" in capsys.readouterr().err


def test_bench_section_compares_fp32_int8_and_the_default_baseline(calibrated: tuple[Bundle, Path]) -> None:
    from calibration.bench import NO_BASELINE, int8_section, render_int8_section

    bundle, set_path = calibrated
    results = [
        {"backend": "onnxruntime", "precision": p, "threads": t, "median_ms_per_window": ms, "gmac_per_s": g}
        for p, t, ms, g in (("fp32", 1, 9.0, 1.0), ("int8", 1, 4.0, 2.0), ("fp32", 2, 6.0, 1.5), ("int8", 2, 2.0, 4.5))
    ]
    batch = next(load_set(set_path).batches([0], bundle.input))
    section = int8_section(bundle, results, batch, calib=set_path, runs=2, peak_int8_gmacs=9.0, peak_cores=2)
    assert section is not None
    one, two = section["by_threads"]
    assert (one["threads"], one["speedup"], one["speedup_met"]) == (1, pytest.approx(2.25), False)
    assert (two["threads"], two["speedup"], two["speedup_met"]) == (2, pytest.approx(3.0), True)
    assert section["targets"]["speedup_met"] is False  # not met at every thread count
    assert one["int8_peak_gmac_per_s"] == pytest.approx(4.5) and one["int8_share_of_peak"] == pytest.approx(2.0 / 4.5)
    assert two["int8_share_of_peak"] == pytest.approx(0.5)
    accuracy = section["accuracy"]
    assert accuracy["held_out_windows"] == len(load_set(set_path).split(0.25)[1])
    assert accuracy["held_out_sources"] == len(LABELS)  # every video contributes held-out windows
    assert set(accuracy["output_std"]) == {"fp32", "int8", "quantize_static_defaults"}
    assert isinstance(accuracy["baseline_collapsed"], bool)
    assert all(row["median_ms_per_window"]["quantize_static_defaults"] > 0 for row in (one, two))
    assert section["targets"]["delta_met"] is True
    text = render_int8_section(section)
    assert "quantize_static defaults MAE" in text and "1 thread(s)" in text and "2.25x" in text
    assert "NOT met" in text and "of the INT8 peak of 1 of 2 cores (4 GMAC/s)" in text
    recorded = int8_section(bundle, results, batch)
    assert recorded is not None
    assert recorded["accuracy"]["int8"]["mae"] == bundle.manifest["calibration"]["measured_delta"]
    assert recorded["accuracy"]["quantize_static_defaults"] is None
    assert NO_BASELINE in render_int8_section(recorded) and "--calib SET" in NO_BASELINE
    assert int8_section(bundle, results[:1], batch) is None
