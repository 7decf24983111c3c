"""Check camera frames and bring them to RGB, explicitly: nothing is guessed silently.

- ``(H, W, 3)`` uint8 is taken as ``color_order`` says ("BGR" from OpenCV, "RGB" from most other sources).
- Grey frames, ``(H, W)`` or ``(H, W, 1)`` uint8 (infrared and monochrome cameras), are converted to RGB by
  repeating the grey level, logged at debug level: grey carries no colour order to misread, and a model
  trained on colour faces sees grey faces as it would see a grey-toned colour face.
- Four channels (BGRA/RGBA: which alpha convention is ambiguous), any other channel count or number of
  dimensions, a dtype other than uint8 (a float frame in 0-1 or 0-255 would be misread either way), and frames
  under ``min_side`` pixels raise :class:`edge.errors.InputError` naming the shape and the fix.
"""

from __future__ import annotations

import logging
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from edge.errors import InputError

LOG = logging.getLogger(__name__)
ColorOrder = Literal["BGR", "RGB"]


def check_frame(frame: object, color_order: str, *, min_side: int) -> npt.NDArray[np.uint8]:
    """Validate a frame (cheap, no copy); returns it as ``(H, W)`` grey or ``(H, W, 3)`` colour."""
    if color_order not in ("BGR", "RGB"):
        raise InputError(f"color_order {color_order!r} is not supported", fix='pass color_order="BGR" or "RGB"')
    if not isinstance(frame, np.ndarray):
        raise InputError(
            f"a frame must be a numpy array, got {type(frame).__name__}", fix="pass an (H, W, 3) uint8 array"
        )
    if frame.dtype != np.uint8:
        raise InputError(
            f"frame dtype is {frame.dtype}, expected uint8",
            fix="pass 8-bit frames as the camera delivers them (e.g. np.clip(x, 0, 255).astype(np.uint8))",
        )
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim != 2 and (frame.ndim != 3 or frame.shape[2] != 3):
        raise InputError(
            f"frame has shape {frame.shape}; expected (H, W, 3) colour or (H, W) grey",
            fix="drop the alpha channel (cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)) or pass one image, not a batch",
        )
    if min(frame.shape[0], frame.shape[1]) < min_side:
        raise InputError(
            f"frame of {frame.shape[1]}x{frame.shape[0]} pixels is too small (under {min_side} px on a side)",
            fix="set the camera to 320x240 or more",
        )
    return frame


def to_rgb(frame: object, color_order: str, *, min_side: int) -> npt.NDArray[np.uint8]:
    """The frame as a contiguous ``(H, W, 3)`` RGB uint8 array (may share memory with ``frame`` if it is RGB)."""
    frame = check_frame(frame, color_order, min_side=min_side)
    if frame.ndim == 2:
        LOG.debug("grey frame %s converted to RGB by repeating the grey level", frame.shape)
        return np.asarray(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_GRAY2RGB), dtype=np.uint8)
    if color_order == "BGR":
        return np.asarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), dtype=np.uint8)
    return np.ascontiguousarray(frame)
