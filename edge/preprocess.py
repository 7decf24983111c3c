"""Turn mosaic frames into model input: the one normalisation used by the device, calibration and training."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from edge.bundle.manifest import InputSpec
from edge.errors import InputError


def window_to_input(frames: npt.NDArray[np.uint8], spec: InputSpec) -> npt.NDArray[np.float32]:
    """Normalise one window of RGB mosaic frames ``(T, H, W, 3)`` uint8 into a batch of one in ``spec.layout``."""
    expected = (spec.frames, spec.height, spec.width, spec.channels)
    if frames.shape != expected:
        raise InputError(
            f"window has shape {frames.shape}, the model wants {expected} (frames, height, width, channels)",
            fix="build windows with edge's window buffer for this bundle's manifest",
        )
    if frames.dtype != np.uint8:
        raise InputError(f"window frames are {frames.dtype}, expected uint8 RGB", fix="pass raw 8-bit RGB frames")
    mean = np.asarray(spec.mean, dtype=np.float32)
    inv_std = 1.0 / np.asarray(spec.std, dtype=np.float32)
    scaled = (frames.astype(np.float32) * np.float32(spec.scale) - mean) * inv_std  # (T, H, W, C)
    axes = (0, 3, 1, 2) if spec.layout == "NTCHW" else (3, 0, 1, 2)
    return np.ascontiguousarray(scaled.transpose(axes))[None]


def batch_windows(windows: list[npt.NDArray[np.uint8]], spec: InputSpec) -> npt.NDArray[np.float32]:
    """Normalise several windows into one batch."""
    if not windows:
        raise InputError("no windows to batch", fix="pass at least one window")
    return np.concatenate([window_to_input(window, spec) for window in windows], axis=0)
