"""A scanner for traces of a face in bytes: images, raw pixels, landmarks and feature vectors, in any encoding.

:func:`face_traces` runs the real face pipeline on a video and keeps what it saw: the frames, the mosaics and the
landmarks (raw, smoothed, normalised, aligned). :class:`Scanner` looks for those in a file, a log or a payload:

- image files (JPEG, PNG, GIF, BMP, TIFF, WebP, .npy, zip/.npz) starting anywhere, not only at offset 0;
- raw pixels: any 63-byte run equal to part of a frame (BGR, RGB, grey), of a frame resized to the mosaic's size
  or of a mosaic (a 112x112 crop's row is 336 bytes). Reference images are hashed in 32-byte blocks every 32
  bytes; every 32-byte window of the scanned bytes is hashed and looked up, so one pass finds any such run;
- landmarks as binary float16/float32/float64 (little-endian, any alignment): 4 values in a row equal, at float16
  precision, to 4 consecutive values of one of the landmark arrays (C order, x/y only, or column by column);
- landmarks as decimal text: 4 numbers in a row, each with 3+ significant digits, equal to 4 consecutive landmark
  values up to the printed precision (JSON lists, ``%s`` of an array, ``%.3g``);
- long runs of plausible float32/float64 values (embeddings, model input);
- all of the above (but text) again inside every base64 run, decoded.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edge.bundle import Bundle
from edge.face import FacePipeline
from edge.face.align import align_to_eyes, apply
from edge.face.config import FaceConfig
from edge.face.landmarks import FaceLandmarks, LandmarkDetector, eye_centres

U8 = npt.NDArray[np.uint8]
U64 = npt.NDArray[np.uint64]
F64 = npt.NDArray[np.float64]

BLOCK = 32
"""Bytes per hashed block; reference blocks every BLOCK bytes, so any run of 2 x BLOCK - 1 bytes is caught."""
NGRAM = 4
"""Consecutive landmark values that make a match, binary or text."""
FLOAT_RUN = 64
"""Plausible float values in a row that make a feature vector."""

SIGNATURES = {
    "PNG": re.compile(rb"\x89PNG\r\n\x1a\n"),
    "GIF": re.compile(rb"GIF8[79]a"),
    "numpy .npy": re.compile(rb"\x93NUMPY"),
    "zip / .npz": re.compile(rb"PK\x03\x04"),
    "WebP": re.compile(rb"RIFF.{4}WEBP", re.DOTALL),
    "BMP": re.compile(rb"BM.{4}\x00{4}.{4}[\x0c\x28\x34\x38\x6c\x7c]\x00{3}", re.DOTALL),  # + DIB header size
}
WEAK_SIGNATURES = {  # short: a candidate counts only when OpenCV decodes an image from it
    "JPEG": re.compile(rb"\xff\xd8\xff[\xc0-\xfe]"),
    "TIFF": re.compile(rb"II\*\x00|MM\x00\*"),
}
BASE64_RUN = re.compile(rb"[A-Za-z0-9+/_-]{64,}")
SEPARATORS = rb"[\s,;:\[\]()]+"
NUMBER = rb"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
NUMBER_RUN = re.compile(NUMBER + rb"(?:" + SEPARATORS + NUMBER + rb"){%d,}" % (NGRAM - 1))


@dataclass
class FaceTraces:
    """What the face pipeline saw and computed on a video: the things that must never leave the daemon."""

    frames: list[U8] = field(default_factory=list)  # sampled BGR frames
    mosaics: list[U8] = field(default_factory=list)  # their RGB mosaics
    landmarks: list[npt.NDArray[np.float32]] = field(default_factory=list)  # raw and smoothed, (478, 3) pixels
    size: tuple[int, int] = (0, 0)  # frame width, height


class _Recorder(LandmarkDetector):
    """The real detector, keeping every face it returns."""

    def __init__(self, config: FaceConfig, seen: list[npt.NDArray[np.float32]]) -> None:
        super().__init__(config)
        self.seen = seen

    def detect(self, rgb: U8) -> list[FaceLandmarks]:
        faces = super().detect(rgb)
        self.seen.extend(face.points.copy() for face in faces)
        return faces


def face_traces(video: Path, bundle: Bundle) -> FaceTraces:
    """Run the daemon's face pipeline (same bundle, default settings) on ``video`` and keep what it produced."""
    traces = FaceTraces()
    detector = _Recorder(FaceConfig(), traces.landmarks)
    cap = cv2.VideoCapture(str(video))
    fps = cap.get(cv2.CAP_PROP_FPS)
    with FacePipeline(bundle.input, bundle.tiles, landmarks=detector) as pipeline:
        index = 0
        while (frame := cap.read()[1]) is not None:
            result = pipeline.push(frame, index / fps)
            index += 1
            if result.sampled:
                traces.frames.append(frame)
                traces.size = (frame.shape[1], frame.shape[0])
            if result.sampled and result.landmarks is not None and result.mosaic is not None:
                traces.landmarks.append(result.landmarks.copy())
                traces.mosaics.append(result.mosaic.copy())
    detector.close()
    cap.release()
    return traces


def _hash_blocks(words: list[U64]) -> U64:
    """One 64-bit hash per 32-byte block given as its four little-endian words."""
    out = np.zeros_like(words[0])
    for word in words:
        out = out * np.uint64(0x9E3779B97F4A7C15) + word  # wraps modulo 2**64
    return out


def _pixel_images(traces: FaceTraces) -> Iterator[U8]:
    height, width = traces.mosaics[0].shape[:2]
    for frame in traces.frames:
        yield frame
        yield frame[:, :, ::-1]
        yield cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        for size in ((width, height), (width, round(width * frame.shape[0] / frame.shape[1]))):
            for interpolation in (cv2.INTER_LINEAR, cv2.INTER_AREA):
                small = cv2.resize(frame, size, interpolation=interpolation)
                yield small
                yield small[:, :, ::-1]
    for mosaic in traces.mosaics:
        yield mosaic
        yield mosaic[:, :, ::-1]


def _pixel_hashes(traces: FaceTraces) -> U64:
    """Hashes of the busy 32-byte blocks (12+ distinct byte values: no flat stretch) of every reference image."""
    hashes = []
    for image in _pixel_images(traces):
        data = np.ascontiguousarray(image).reshape(-1)
        blocks = data[: data.size // BLOCK * BLOCK].reshape(-1, BLOCK)
        ordered = np.sort(blocks, axis=1)
        busy = (np.diff(ordered.astype(np.int16), axis=1) != 0).sum(axis=1) + 1 >= 12
        words = blocks[busy].copy().view("<u8")
        hashes.append(_hash_blocks([words[:, i] for i in range(BLOCK // 8)]))
    return np.unique(np.concatenate(hashes))


def _landmark_sequences(traces: FaceTraces) -> Iterator[F64]:
    """Each landmark array in the orders and units it could be written in."""
    width, height = traces.size
    for points in traces.landmarks:
        normalised = points / np.array([width, height, width], dtype=np.float32)
        aligned = apply(align_to_eyes(*eye_centres(points)), points)
        for array in (points, normalised, aligned):
            yield from (array.ravel(), array[:, :2].ravel(), array.T.ravel())


def _ngram_keys(values: npt.NDArray[np.floating]) -> U64:
    """A 64-bit key per NGRAM consecutive values: their float16 bit patterns side by side."""
    with np.errstate(over="ignore", invalid="ignore"):
        bits = values.astype(np.float16).view(np.uint16).astype(np.uint64)
    if bits.size < NGRAM:
        return np.zeros(0, dtype=np.uint64)
    count = bits.size - NGRAM + 1
    return _combine([bits[i : i + count] << np.uint64(16 * i) for i in range(NGRAM)])


def _combine(parts: list[U64]) -> U64:
    out = parts[0].copy()
    for part in parts[1:]:
        out |= part
    return out


def _contains(sorted_keys: U64, keys: U64) -> npt.NDArray[np.bool_]:
    if not sorted_keys.size or not keys.size:
        return np.zeros(keys.size, dtype=bool)
    where = np.minimum(np.searchsorted(sorted_keys, keys), sorted_keys.size - 1)
    return np.asarray(sorted_keys[where] == keys)


def _longest_true_run(mask: npt.NDArray[np.bool_]) -> int:
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    return int((edges[1::2] - edges[::2]).max()) if edges.size else 0


def _decimal(token: bytes) -> tuple[float, float] | None:
    """A number's value and half its last printed digit, or None below 3 significant digits."""
    mantissa, _, exponent = token.lower().partition(b"e")
    digits = mantissa.lstrip(b"+-").replace(b".", b"").lstrip(b"0")
    if len(digits) < 3:
        return None
    decimals = len(mantissa.partition(b".")[2])
    return float(token), 0.5 * 10.0 ** (int(exponent or 0) - decimals)


class Scanner:
    """Finds traces of :class:`FaceTraces` in bytes; :meth:`scan` lists what it found, empty when clean."""

    def __init__(self, traces: FaceTraces) -> None:
        assert traces.landmarks and traces.mosaics, "the pipeline found no face in the reference video"
        self.pixels = _pixel_hashes(traces)
        sequences = list(_landmark_sequences(traces))
        keys = np.concatenate([_ngram_keys(s) for s in sequences])
        self.landmark_keys = np.unique(keys)
        # Decimal text: every sequence end to end, NaN between them so no match runs from one into the next.
        self.values = np.concatenate([v for s in sequences for v in (s.astype(np.float64), [np.nan])])
        self.order = np.argsort(self.values)[: int(np.isfinite(self.values).sum())]
        self.sorted_values = self.values[self.order]

    def scan(self, data: bytes, where: str) -> list[str]:
        """Every trace of a face in ``data`` (a file, a log, a payload), each as a line naming ``where``."""
        found = [f"{where}: {problem}" for problem in self._binary(data)]
        found += [f"{where}: {problem}" for problem in self._text(data)]
        for run in BASE64_RUN.finditer(data):
            found += [f"{where}: base64 at byte {run.start()} holds {p}" for p in self._binary(_unbase64(run[0]))]
        return found

    def _binary(self, data: bytes) -> list[str]:
        found = [f"a {kind} image at byte {m.start()}" for kind, sig in SIGNATURES.items() for m in sig.finditer(data)]
        buffer = np.frombuffer(data, dtype=np.uint8)
        for kind, sig in WEAK_SIGNATURES.items():
            for m in sig.finditer(data):
                if cv2.imdecode(buffer[m.start() :], cv2.IMREAD_UNCHANGED) is not None:
                    found.append(f"a {kind} image at byte {m.start()}")
        if (offset := self._pixel_match(data)) is not None:
            found.append(f"raw pixels of the video at byte {offset}")
        for dtype in ("<f2", "<f4", "<f8"):
            size = np.dtype(dtype).itemsize
            for alignment in range(min(size, len(data) // size)):
                values = np.frombuffer(data, dtype=dtype, offset=alignment, count=(len(data) - alignment) // size)
                hits = np.flatnonzero(_contains(self.landmark_keys, _ngram_keys(values)))
                if hits.size:
                    found.append(f"landmarks as {dtype} at byte {alignment + hits[0] * values.itemsize}")
                if dtype != "<f2" and _longest_true_run(_plausible(values)) >= FLOAT_RUN:
                    found.append(f"a run of {FLOAT_RUN}+ {dtype} values (features, model input?) at {alignment=}")
        return found

    def _pixel_match(self, data: bytes) -> int | None:
        for alignment in range(min(8, len(data) - BLOCK + 1)):
            words = np.frombuffer(data, dtype="<u8", offset=alignment, count=(len(data) - alignment) // 8)
            count = words.size - BLOCK // 8 + 1
            hits = np.flatnonzero(_contains(self.pixels, _hash_blocks([words[i : i + count] for i in range(4)])))
            if hits.size:
                return alignment + 8 * int(hits[0])
        return None

    def _text(self, data: bytes) -> list[str]:
        found = []
        for run in NUMBER_RUN.finditer(data):
            numbers = [_decimal(token) for token in re.findall(NUMBER, run[0])]
            for start in range(len(numbers) - NGRAM + 1):
                if self._landmarks_at(numbers[start : start + NGRAM]):
                    found.append(f"landmarks as text at byte {run.start()}: {run[0][:60]!r}")
                    break
        return found

    def _landmarks_at(self, numbers: list[tuple[float, float] | None]) -> bool:
        """Whether these printed numbers are consecutive landmark values, each up to its printed precision."""
        bounds = [(number[0], number[1] + 1e-6 * abs(number[0])) for number in numbers if number is not None]
        if len(bounds) < len(numbers):
            return False
        first, tolerance = bounds[0]
        low = np.searchsorted(self.sorted_values, first - tolerance, side="left")
        high = np.searchsorted(self.sorted_values, first + tolerance, side="right")
        candidates = self.order[low:high]
        for step, (value, tolerance) in enumerate(bounds[1:], start=1):
            candidates = candidates[candidates + step < self.values.size]
            candidates = candidates[np.abs(self.values[candidates + step] - value) <= tolerance]
        return bool(candidates.size)


def _plausible(values: npt.NDArray[np.floating]) -> npt.NDArray[np.bool_]:
    """Finite, 1e-3 <= |x| <= 1e4: coordinates or features; text and random bytes rarely make long runs of it."""
    with np.errstate(invalid="ignore", over="ignore"):
        magnitude = np.abs(values.astype(np.float64))
    return np.asarray(np.isfinite(magnitude) & (magnitude >= 1e-3) & (magnitude <= 1e4))


def _unbase64(run: bytes) -> bytes:
    """A base64 run decoded at each of its 4 possible starts, the results joined."""
    standard = run.replace(b"-", b"+").replace(b"_", b"/")
    decoded = []
    for start in range(4):
        body = standard[start:]
        try:
            decoded.append(base64.b64decode(body[: len(body) // 4 * 4]))
        except binascii.Error:
            continue
    return bytes(8).join(decoded)
