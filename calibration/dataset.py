"""Load a calibration set and feed it as normalised batches (through edge.preprocess, like the device)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from calibration.collect import SET_FORMAT, SUMMARY_FILE, WINDOWS_FILE
from edge.bundle import InputSpec, Tile
from edge.errors import InputError, UsageError
from edge.preprocess import batch_windows


@dataclass(frozen=True)
class CalibrationSet:
    """Windows ``(N, T, H, W, 3)`` uint8, the source index and label (NaN if none) of each, and the summary."""

    root: Path
    frames: npt.NDArray[np.uint8]
    source: npt.NDArray[np.int32]
    labels: npt.NDArray[np.float32]
    summary: dict[str, Any]

    def __len__(self) -> int:
        return len(self.frames)

    def check_fits(self, spec: InputSpec, tiles: Sequence[Tile]) -> None:
        """Refuse a set built for another window shape or mosaic than the bundle's."""
        expected = (spec.frames, spec.height, spec.width, spec.channels)
        held = tuple(self.frames.shape[1:])
        if held != expected:
            raise InputError(
                f"calibration set {self.root} holds windows {held}, the bundle wants {expected}",
                fix="collect a set for this bundle: python -m calibration collect VIDEOS --bundle BUNDLE --out SET",
            )
        held_fps = self.summary.get("input", {}).get("sample_fps")
        if held_fps is not None and float(held_fps) != spec.sample_fps:
            raise InputError(
                f"calibration set {self.root} was resampled at {held_fps} fps, "
                f"the bundle samples {spec.sample_fps} fps",
                fix="collect a set for this bundle: python -m calibration collect VIDEOS --bundle BUNDLE --out SET",
            )
        if self.summary.get("tiles") not in (None, [vars(tile) for tile in tiles]):
            raise InputError(
                f"calibration set {self.root} was built with another region mosaic than the bundle's",
                fix="collect a set for this bundle: python -m calibration collect VIDEOS --bundle BUNDLE --out SET",
            )

    def split(self, holdout_fraction: float) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
        """Indices ``(calibrate, hold out)``: the last windows of every source (about ``holdout_fraction`` of each,
        at least one) are held out, and the windows sharing frames with each source's first held-out window are
        left out of both, so no calibration window overlaps a held-out one. A source too small for that (fewer than
        :meth:`overlapping_windows` + 2 windows) goes wholly to calibration. Windows are in time order per source."""
        if not 0.0 < holdout_fraction < 1.0:
            raise UsageError(f"--holdout-fraction {holdout_fraction} is outside (0, 1)", fix="pass e.g. 0.25")
        gap = self.overlapping_windows()
        calibrate: list[npt.NDArray[np.intp]] = []
        held: list[npt.NDArray[np.intp]] = []
        for source in np.unique(self.source):
            windows = np.flatnonzero(self.source == source)
            if len(windows) < gap + 2:
                calibrate.append(windows)
                continue
            count = min(max(1, round(len(windows) * holdout_fraction)), len(windows) - gap - 1)
            held.append(windows[len(windows) - count :])
            calibrate.append(windows[: len(windows) - count - gap])
        if not held:
            raise InputError(
                f"calibration set {self.root} has {len(self)} windows: too few to hold some out (no source has the "
                f"{gap + 2} needed, {gap} of them sharing frames with the held-out window and left out of both)",
                fix=f"collect more windows from each video (at least {gap + 2}; a few dozen give a useful hold-out)",
            )
        return np.sort(np.concatenate(calibrate)), np.sort(np.concatenate(held))

    def overlapping_windows(self) -> int:
        """How many consecutive windows before a window share frames with it (from the window length and stride)."""
        spec = self.summary.get("input", {})
        frames, stride = int(spec.get("frames", self.frames.shape[1])), int(spec.get("window_stride", 0))
        return -(-frames // stride) - 1 if stride > 0 else 0

    def batches(
        self, indices: Sequence[int] | npt.NDArray[np.intp], spec: InputSpec, batch_size: int = 8
    ) -> Iterator[npt.NDArray[np.float32]]:
        """Normalised model-input batches of the windows at ``indices``."""
        order = list(indices)
        for start in range(0, len(order), batch_size):
            yield batch_windows([self.frames[i] for i in order[start : start + batch_size]], spec)


def load_set(path: str | Path) -> CalibrationSet:
    """Read a set written by ``python -m calibration collect``."""
    root = Path(path)
    windows, summary_path = root / WINDOWS_FILE, root / SUMMARY_FILE
    if not windows.is_file() or not summary_path.is_file():
        raise InputError(
            f"{root} is not a calibration set (needs {WINDOWS_FILE} and {SUMMARY_FILE})",
            fix="build one with: python -m calibration collect VIDEOS... --out SET",
        )
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    if summary.get("format") != SET_FORMAT:
        raise InputError(f"{summary_path} is not a calibration-set summary", fix="rebuild the set")
    with np.load(windows) as data:
        frames, source, labels = data["frames"], data["source"], data["labels"]
    if frames.dtype != np.uint8 or frames.ndim != 5 or len(frames) == 0:
        raise InputError(f"{windows} holds no uint8 windows (N, T, H, W, 3)", fix="rebuild the set")
    return CalibrationSet(root, frames, source.astype(np.int32), labels.astype(np.float32), summary)
