"""Calibration sets: windows built by the device's own face pipeline, stored compactly on the engineer's machine.

A set is a directory with ``windows.npz`` (compressed uint8 RGB mosaics ``(N, T, H, W, 3)``, the source index of
each window and optional BDI-II labels) and ``summary.json`` (counts only). It holds face crops: it must stay on
the engineer's machine and never goes into a bundle; a bundle records only the summary.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from edge.bundle import Bundle, InputSpec, Tile
from edge.errors import InputError, UsageError
from edge.layout import default_input_section, default_regions_section

SET_FORMAT = "expresso-edge-calibration-set"
SET_VERSION = 1
WINDOWS_FILE = "windows.npz"
SUMMARY_FILE = "summary.json"
PRIVACY_NOTE = (
    "This calibration set holds face crops (mosaics of eyes, brows, nose and mouth). It must stay on the "
    "engineer's machine: never copy it into a model bundle, a repository or a device."
)


@dataclass
class Collected:
    """Windows gathered in memory, with where each came from and why others were rejected."""

    frames: list[npt.NDArray[np.uint8]] = field(default_factory=list)
    source_of: list[int] = field(default_factory=list)
    labels: list[float] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)

    def add_source(self, name: str) -> int:
        """Register a source (video or camera) and return its index."""
        self.sources.append(name)
        return len(self.sources) - 1

    def add(self, frames: npt.NDArray[np.uint8], source: int, label: float | None = None) -> None:
        """Keep one window that passed the quality checks."""
        self.frames.append(np.ascontiguousarray(frames, dtype=np.uint8))
        self.source_of.append(source)
        self.labels.append(math.nan if label is None else float(label))


def spec_and_tiles(bundle: Bundle | None) -> tuple[InputSpec, tuple[Tile, ...]]:
    """The window spec and mosaic of ``bundle``, or the defaults a new bundle gets."""
    if bundle is not None:
        return bundle.input, bundle.tiles
    spec = InputSpec.from_manifest(default_input_section(layout="NTCHW"))
    tiles = tuple(Tile(**tile) for tile in default_regions_section()["tiles"])
    return spec, tiles


def manifest_digest(bundle: Bundle | None) -> str | None:
    """SHA-256 of the bundle's manifest the set was built for."""
    return None if bundle is None else bundle.identity["manifest_sha256"]


def collect_videos(
    videos: Sequence[Path],
    spec: InputSpec,
    tiles: Sequence[Tile],
    *,
    max_windows: int,
    labels: Mapping[str, float] | None = None,
) -> Collected:
    """Run each video through ``edge.face`` and keep up to ``max_windows`` passing windows, spread over videos."""
    from edge.face import FacePipeline, windows_from_video

    if not videos:
        raise UsageError("no videos given", fix="pass one or more video files")
    missing = [str(video) for video in videos if not video.is_file()]
    if missing:
        raise InputError(f"video {missing[0]} does not exist", fix="check the path")
    per_video = max(1, math.ceil(max_windows / len(videos)))
    collected = Collected()
    pipeline = FacePipeline(spec, tuple(tiles))
    try:
        for video in tqdm(videos, desc="videos", unit="video"):
            source = collected.add_source(video.name)
            label = (labels or {}).get(video.name)
            kept = 0
            for window in windows_from_video(video, spec, tuple(tiles), pipeline=pipeline):
                if not window.quality.passed:
                    collected.rejected[window.quality.reject_reason or "rejected"] += 1
                    continue
                collected.add(window.frames, source, label)
                kept += 1
                if kept >= per_video or len(collected.frames) >= max_windows:
                    break
    finally:
        pipeline.close()
    return collected


def collect_live(
    source: str | int,
    spec: InputSpec,
    tiles: Sequence[Tile],
    *,
    seconds: float,
    max_windows: int,
    realtime: bool = True,
) -> Collected:
    """Capture ``source`` (camera index or device, GStreamer pipeline, stream URL, or a file) for ``seconds``.

    Frames come through the daemon's own capture thread, sampled at the bundle's rate, then ``edge.face``; up
    to ``max_windows`` passing windows are kept. ``realtime=False`` reads a file as fast as it decodes.
    """
    from edge.capture import Capture
    from edge.face import FacePipeline
    from edge.sources import display_source

    if seconds <= 0:
        raise UsageError(f"--seconds {seconds} must be positive", fix="pass e.g. --seconds 120")
    collected = Collected()
    index = collected.add_source(display_source(source))
    with (
        Capture(source, realtime=realtime, sample_fps=spec.sample_fps) as capture,
        FacePipeline(spec, tuple(tiles)) as pipeline,
        tqdm(total=max_windows, desc="windows", unit="window") as progress,
    ):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and len(collected.frames) < max_windows and not capture.finished:
            frame = capture.get(timeout=0.5)
            if frame is None:
                continue
            for window in pipeline.push(frame.image, frame.t, color_order="BGR").windows:
                if window.quality.passed:
                    collected.add(window.frames, index)
                    progress.update(1)
                else:
                    collected.rejected[window.quality.reject_reason or "rejected"] += 1
    if capture.stats.state == "failed":
        raise InputError(f"capture of {display_source(source)} failed: {capture.stats.error}", fix="check the source")
    return collected


def collect_from_windows(
    windows: Iterable[npt.NDArray[np.uint8]], *, source: str = "in-memory", label: float | None = None
) -> Collected:
    """A :class:`Collected` from windows already in memory (tests, notebooks)."""
    collected = Collected()
    index = collected.add_source(source)
    for frames in windows:
        collected.add(frames, index, label)
    return collected


def write_set(
    out: Path,
    collected: Collected,
    spec: InputSpec,
    tiles: Sequence[Tile],
    *,
    manifest_sha256: str | None = None,
) -> dict[str, Any]:
    """Store ``collected`` as a calibration set in ``out`` and return its summary."""
    if not collected.frames:
        reasons = ", ".join(f"{k}: {v}" for k, v in collected.rejected.most_common()) or "no windows at all"
        raise InputError(
            f"no window passed the quality checks ({reasons})",
            fix="use videos with one well-lit, frontal face of at least a few seconds",
        )
    expected = (spec.frames, spec.height, spec.width, spec.channels)
    bad = [f.shape for f in collected.frames if f.shape != expected]
    if bad:
        raise InputError(f"windows of shape {bad[0]} do not fit the model's {expected}", fix="build them for this spec")
    out.mkdir(parents=True, exist_ok=True)
    frames = np.stack(collected.frames)
    labels = np.asarray(collected.labels, dtype=np.float32)
    np.savez_compressed(
        out / WINDOWS_FILE, frames=frames, source=np.asarray(collected.source_of, dtype=np.int32), labels=labels
    )
    summary = {
        "format": SET_FORMAT,
        "version": SET_VERSION,
        "privacy": PRIVACY_NOTE,
        "created_at": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "windows": len(frames),
        "windows_seen": len(frames) + sum(collected.rejected.values()),
        "passed": len(frames),
        "rejected": dict(collected.rejected.most_common()),
        "sources": len(collected.sources),
        "source_names": collected.sources,
        "labelled_windows": int(np.isfinite(labels).sum()),
        "input": {
            "frames": spec.frames,
            "height": spec.height,
            "width": spec.width,
            "sample_fps": spec.sample_fps,
            "window_stride": spec.window_stride,
        },
        "tiles": [vars(tile) for tile in tiles],
        "manifest_sha256": manifest_sha256,
        "windows_sha256": hashlib.sha256((out / WINDOWS_FILE).read_bytes()).hexdigest(),
    }
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary
