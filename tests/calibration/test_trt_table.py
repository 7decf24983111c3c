"""TensorRT calibration cache format: header, big-endian float32 hex scales, conversion from onnxruntime ranges."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from calibration.trt_table import (
    CalibrationTable,
    hex_to_scale,
    parse_table,
    read_table,
    scale_to_hex,
    table_from_ranges,
    version_code,
    write_table,
)
from edge.errors import BundleError


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
