"""TensorRT calibration cache format: header, big-endian float32 hex scales, conversion from onnxruntime's files."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData
from onnxruntime.quantization.quant_utils import write_calibration_table
from tiny_bundle import make_bundle, make_windows

from calibration.quantize import amax_of, calibrate_ranges, ranges_of
from calibration.trt_table import (
    CalibrationTable,
    hex_to_scale,
    parse_table,
    read_table,
    scale_to_hex,
    table_from_amax,
    table_from_onnxruntime,
    table_from_ranges,
    version_code,
    write_table,
)
from edge.errors import BundleError
from edge.preprocess import batch_windows


def test_known_values() -> None:
    assert scale_to_hex(1.0) == "3f800000"
    assert table_from_ranges({"x": (-3.0, 127.0)}).to_text().splitlines()[1] == "x: 3f800000"
    assert hex_to_scale("3c010a14") == pytest.approx(0.00787592, rel=1e-5)  # a real TensorRT 8.6 cache line
    assert hex_to_scale("3c010a14") == struct.unpack(">f", bytes.fromhex("3c010a14"))[0]  # big-endian, exactly
    assert scale_to_hex(5.5 / 127) == struct.pack(">f", 5.5 / 127).hex()


def test_version_codes_match_tensorrt() -> None:
    assert version_code("8.6.1") == "8601"
    assert version_code("8.5.2.2") == "8502"
    assert version_code("10.3.0") == "100300"


def test_round_trip_through_a_file(tmp_path: Path) -> None:
    table = table_from_ranges({"clip": (-2.1, 2.6), "r1": (0.0, 5.5), "dead": (0.0, 0.0)}, version="8601")
    assert "dead" not in table.scales  # a zero range has no scale: TensorRT keeps such a tensor in float
    text = write_table(tmp_path / "calib.cache", table).read_text()
    assert text.splitlines()[0] == "TRT-8601-EntropyCalibration2"
    back = read_table(tmp_path / "calib.cache")
    assert back.version == "8601" and back.algorithm == "EntropyCalibration2"
    assert back.amax("clip") == pytest.approx(2.6, rel=1e-6)
    assert back.amax("r1") == pytest.approx(5.5, rel=1e-6)
    # exactly what struct gives for the big-endian float32 of amax/127
    assert text.splitlines()[2] == "r1: " + struct.pack(">f", 5.5 / 127).hex()


def test_retarget_keeps_scales() -> None:
    table = CalibrationTable({"a": 0.5}, version="8601")
    moved = table.retarget(version="100300", algorithm="MinMaxCalibration")
    assert moved.header == "TRT-100300-MinMaxCalibration" and moved.scales == {"a": 0.5}


def test_onnxruntime_table_is_refused_with_a_pointer() -> None:
    with pytest.raises(BundleError, match="not a TensorRT header"):
        parse_table('{"clip": {"highest": 2.6}}')
    with pytest.raises(BundleError, match="line 2"):
        parse_table("TRT-8601-EntropyCalibration2\nclip 3f800000\n")


def _be_hex(amax: float) -> str:
    """Big-endian float32 hex of amax / 127, computed apart from the module under test."""
    return struct.pack(">f", amax / 127.0).hex()


def test_write_calibration_table_output_converts_with_both_ends_of_each_range(tmp_path: Path) -> None:
    f32 = np.float32
    ranges = TensorsData(
        CalibrationMethod.MinMax,
        {
            "relu_out": (np.array(0.0, f32), np.array(5.5, f32)),
            "negative_wins": (np.array(-6.35, f32), np.array(1.0, f32)),  # |low| > |high|
            "shape_1": TensorData(lowest=np.array([-2.0], f32), highest=np.array([1.5], f32)),  # JSON list form
            "dead": (np.array(0.0, f32), np.array(0.0, f32)),
        },
    )
    write_calibration_table(ranges.data, dir=str(tmp_path))  # onnxruntime's own writer
    # the plain-text cache it writes keeps the high end only: reading it would clip negative_wins to 1.0
    cache = dict(line.split(" ") for line in (tmp_path / "calibration.cache").read_text().splitlines())
    assert float(cache["negative_wins"]) == pytest.approx(1.0)
    table = table_from_onnxruntime(tmp_path, "10.3.0")
    assert table.header == "TRT-100300-EntropyCalibration2"
    lines = dict(line.split(": ") for line in table.to_text().splitlines()[1:])
    assert lines == {
        "relu_out": _be_hex(float(f32(5.5))),
        "negative_wins": _be_hex(float(f32(6.35))),
        "shape_1": _be_hex(2.0),
    }
    assert table.amax("negative_wins") == pytest.approx(6.35, rel=1e-6)


def test_real_calibrator_ranges_convert_to_the_table_calibration_writes(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "bundle")
    batch = batch_windows(make_windows(6), bundle.input)
    ranges = calibrate_ranges(bundle.root / "model.onnx", [batch])
    assert any(-low > high for low, high in ranges_of(ranges).values())  # some tensor's negative end dominates
    write_calibration_table(ranges.data, dir=str(tmp_path))
    converted = table_from_onnxruntime(tmp_path)
    assert converted.to_text() == table_from_amax(amax_of(ranges)).to_text()  # what `export calibrate` writes


def test_a_whole_tensors_data_object_written_converts_the_same(tmp_path: Path) -> None:
    ranges = TensorsData(CalibrationMethod.MinMax, {"x": (np.array(-4.0, np.float32), np.array(2.0, np.float32))})
    write_calibration_table(ranges, dir=str(tmp_path))  # TensorsData, not its .data: JSON nests it under "data"
    lines = table_from_onnxruntime(tmp_path).to_text().splitlines()
    assert lines == ["TRT-8601-EntropyCalibration2", "x: " + _be_hex(4.0)]


def test_onnxruntime_directory_without_its_json_is_refused(tmp_path: Path) -> None:
    (tmp_path / "calibration.cache").write_text("x 2.0\n")
    with pytest.raises(BundleError, match=r"no calibration\.json") as caught:
        table_from_onnxruntime(tmp_path)
    assert "high end" in str(caught.value.fix)
    (tmp_path / "calibration.json").write_text('{"x": {"highest": 2.0}}')
    with pytest.raises(BundleError, match="tensor 'x' has no"):
        table_from_onnxruntime(tmp_path)


def test_the_table_text_does_not_depend_on_the_order_ranges_came_in() -> None:
    forward = table_from_amax({"b": 1.0, "a": 2.0, "c": 3.0}).to_text()
    backward = table_from_amax({"c": 3.0, "a": 2.0, "b": 1.0}).to_text()
    assert forward == backward
    assert [line.split(":")[0] for line in forward.splitlines()[1:]] == ["a", "b", "c"]
