"""TensorRT's INT8 calibration cache: the text format its calibrators read and write.

The file is plain text: a header line ``TRT-<version code>-<algorithm>`` (for example
``TRT-8601-EntropyCalibration2`` for TensorRT 8.6.1, ``TRT-100300-EntropyCalibration2`` for 10.3.0), then one line
``<tensor name>: <hex>`` per activation tensor, where ``<hex>`` is the quantization scale as a big-endian IEEE-754
float32 written as 8 lowercase hex digits. TensorRT's dynamic range is ``scale * 127`` (symmetric, zero point 0).

onnxruntime's ``write_calibration_table(cache, dir=D)`` writes something else: ``D/calibration.json`` (both ends of
every range), ``D/calibration.flatbuffers`` and ``D/calibration.cache`` (one ``name value`` line each, no header,
where the value is ``max(highest, lowest)``: the high end, not the absolute maximum). :func:`table_from_onnxruntime`
converts that directory from its JSON, since the other two lose a range whose negative end is the larger.
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import BundleError

INT8_MAX = 127.0
DEFAULT_ALGORITHM = "EntropyCalibration2"
ALGORITHMS = ("EntropyCalibration2", "EntropyCalibration", "MinMaxCalibration", "LegacyCalibration")
ORT_TABLE_JSON = "calibration.json"
"""The file of ``write_calibration_table``'s output that keeps both ends of each range."""
DEFAULT_VERSION = "8.6.1"
"""TensorRT version written into a table made off the device (JetPack 6's TensorRT 8.6); the engine builder
rewrites the header for the TensorRT it runs, so the number here only documents where the table was aimed."""

_HEADER = re.compile(r"^TRT-(?P<code>\d+)-(?P<algorithm>[A-Za-z0-9]+)$")
_LINE = re.compile(r"^(?P<name>.+): (?P<hex>[0-9a-fA-F]{8})$")


def version_code(version: str) -> str:
    """TensorRT's ``NV_TENSORRT_VERSION`` for ``major.minor.patch``: ``8.6.1 -> 8601``, ``10.3.0 -> 100300``."""
    parts = [int(p) for p in re.findall(r"\d+", version)[:3]]
    if len(parts) < 2:
        raise BundleError(f"cannot read TensorRT version {version!r}", fix="pass a version like 8.6.1 or 10.3.0")
    major, minor, patch = (*parts, 0)[:3]
    factor = 10000 if major >= 10 else 1000
    return str(major * factor + minor * 100 + patch)


def scale_to_hex(scale: float) -> str:
    """The 8 hex digits of ``scale`` as a big-endian float32 (``1.0 -> 3f800000``)."""
    return struct.pack(">f", scale).hex()


def hex_to_scale(text: str) -> float:
    """Inverse of :func:`scale_to_hex`."""
    return float(struct.unpack(">f", bytes.fromhex(text))[0])


def amax_to_scale(amax: float) -> float:
    """TensorRT's symmetric int8 scale for a tensor whose absolute maximum is ``amax``."""
    return float(amax) / INT8_MAX


@dataclass(frozen=True)
class CalibrationTable:
    """Per-tensor int8 scales with the header TensorRT checks (version code and algorithm)."""

    scales: dict[str, float]
    version: str = field(default_factory=lambda: version_code(DEFAULT_VERSION))
    algorithm: str = DEFAULT_ALGORITHM

    @property
    def header(self) -> str:
        """The first line of the cache file."""
        return f"TRT-{self.version}-{self.algorithm}"

    def amax(self, tensor: str) -> float:
        """Dynamic range (absolute maximum) of ``tensor``."""
        return self.scales[tensor] * INT8_MAX

    def retarget(self, *, version: str, algorithm: str) -> CalibrationTable:
        """The same scales under another header (TensorRT ignores a cache whose header is not its own)."""
        return CalibrationTable(dict(self.scales), version=version, algorithm=algorithm)

    def to_text(self) -> str:
        """The cache file's text, tensors sorted by name (the calibrator's order varies from run to run)."""
        lines = [self.header, *(f"{name}: {scale_to_hex(scale)}" for name, scale in sorted(self.scales.items()))]
        return "\n".join(lines) + "\n"


def table_from_amax(
    amax: Mapping[str, float], *, version: str | None = None, algorithm: str = DEFAULT_ALGORITHM
) -> CalibrationTable:
    """A table from absolute maxima per tensor (tensors with a zero or non-finite range are left out)."""
    if algorithm not in ALGORITHMS:
        raise BundleError(f"unknown TensorRT calibration algorithm {algorithm!r}", fix=f"use one of {ALGORITHMS}")
    scales = {name: amax_to_scale(value) for name, value in amax.items() if math.isfinite(value) and value > 0}
    return CalibrationTable(scales, version=version or version_code(DEFAULT_VERSION), algorithm=algorithm)


def table_from_ranges(
    ranges: Mapping[str, tuple[float, float]], *, version: str | None = None, algorithm: str = DEFAULT_ALGORITHM
) -> CalibrationTable:
    """A table from ``(low, high)`` ranges, e.g. onnxruntime's calibrated ranges (amax = max(|low|, |high|))."""
    amax = {name: max(abs(low), abs(high)) for name, (low, high) in ranges.items()}
    return table_from_amax(amax, version=version, algorithm=algorithm)


def _range_end(value: Any) -> Any:
    """One end of a range as onnxruntime's JSON encoder writes it: a number, a list, or a ``numpy.array`` record."""
    return value.get("data") if isinstance(value, dict) else value


def _range_of(name: str, entry: Any, source: str) -> tuple[float, float]:
    """``(low, high)`` of one ``calibration.json`` entry: ``{"lowest", "highest"}`` or an older ``[low, high]``."""
    ends = (entry.get("lowest"), entry.get("highest")) if isinstance(entry, dict) else entry
    try:
        low, high = (np.asarray(_range_end(end), dtype=np.float64) for end in ends if end is not None)
    except (TypeError, ValueError):  # not a pair of ends, or an end that is not numbers
        low = high = np.empty(0)
    if low.size and high.size:
        return float(low.min()), float(high.max())
    raise BundleError(
        f"{source}: tensor {name!r} has no (lowest, highest) range: {str(entry)[:80]}",
        fix="pass the directory written by onnxruntime.quantization's write_calibration_table",
    )


def table_from_onnxruntime(
    directory: str | Path, version: str = DEFAULT_VERSION, *, algorithm: str = DEFAULT_ALGORITHM
) -> CalibrationTable:
    """A TensorRT table from what ``write_calibration_table(cache, dir=directory)`` wrote, for TensorRT ``version``
    (``8.6.1``): amax = max(|lowest|, |highest|) from ``calibration.json``, scale = amax / 127."""
    path = Path(directory) / ORT_TABLE_JSON
    if not path.is_file():
        raise BundleError(
            f"{directory} has no {ORT_TABLE_JSON} (write_calibration_table writes it beside calibration.cache)",
            fix="pass the dir given to write_calibration_table; its calibration.cache holds only the high end of "
            "each range, too little to convert",
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path} is not JSON: {exc}", fix="rewrite it with write_calibration_table") from exc
    if isinstance(data, dict) and data.get("CLS") == "TensorsData":  # a whole TensorsData object was passed
        data = data.get("data")
    if not isinstance(data, dict) or not data:
        raise BundleError(f"{path} holds no tensor ranges", fix="rewrite it with write_calibration_table")
    ranges = {name: _range_of(name, entry, str(path)) for name, entry in data.items()}
    return table_from_ranges(ranges, version=version_code(version), algorithm=algorithm)


def parse_table(text: str, *, source: str = "calibration table") -> CalibrationTable:
    """Read a TensorRT calibration cache; a malformed line is an error naming the line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise BundleError(f"{source} is empty", fix="rebuild it with `python -m export calibrate`")
    header = _HEADER.match(lines[0])
    if header is None:
        raise BundleError(
            f"{source} starts with {lines[0][:60]!r}, not a TensorRT header like 'TRT-8601-EntropyCalibration2' "
            "(an onnxruntime calibration.json/flatbuffers file is not a TensorRT cache)",
            fix="convert write_calibration_table's directory with calibration.trt_table.table_from_onnxruntime",
        )
    scales: dict[str, float] = {}
    for number, line in enumerate(lines[1:], start=2):
        match = _LINE.match(line)
        if match is None:
            raise BundleError(
                f"{source} line {number} is {line[:60]!r}, expected 'tensor_name: <8 hex digits>'",
                fix="rebuild the table with `python -m export calibrate`",
            )
        scales[match["name"]] = hex_to_scale(match["hex"])
    return CalibrationTable(scales, version=header["code"], algorithm=header["algorithm"])


def write_table(path: Path, table: CalibrationTable) -> Path:
    """Write ``table`` to ``path``."""
    path.write_text(table.to_text(), encoding="ascii")
    return path


def read_table(path: Path) -> CalibrationTable:
    """Read a table written by TensorRT or by :func:`write_table`."""
    return parse_table(path.read_text(encoding="ascii"), source=str(path))
