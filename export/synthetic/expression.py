"""Move landmarks for one frame: eyelids, mouth corners, jaw, brows, irises, then the head pose.

Every action is a smooth displacement of landmark groups with a fall-off, chosen so triangles never fold for the
ranges :mod:`export.synthetic.behaviour` produces; the piecewise-affine warp then moves the pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from export.synthetic.rig import (
    LEFT_BROW,
    LEFT_EYE,
    LEFT_IRIS,
    LOWER_INNER_LIP,
    MOUTH_CORNERS,
    RIGHT_BROW,
    RIGHT_EYE,
    RIGHT_IRIS,
    UPPER_INNER_LIP,
    FaceRig,
)

MAX_CLOSURE = 0.93


@dataclass(frozen=True)
class FrameState:
    """The face's actions in one frame (all 0 is the neutral still)."""

    eye_closure: float = 0.0  # 0 open ... 1 shut (both eyes)
    smile: float = 0.0  # -1 corners down and in ... +1 broad smile
    brow: float = 0.0  # -1 lowered and drawn together ... +1 raised
    gaze_x: float = 0.0  # -1 ... +1 share of the iris travel, image left to right
    gaze_y: float = 0.0  # -1 up ... +1 down
    jaw: float = 0.0  # 0 closed ... 1 open (speech)
    yaw: float = 0.0  # degrees
    pitch: float = 0.0  # degrees, positive nods down
    roll: float = 0.0  # degrees
    shift_x: float = 0.0  # pixels
    shift_y: float = 0.0  # pixels
    scale: float = 1.0


def _close_eye(out: npt.NDArray[np.float64], rig: FaceRig, eye: tuple[int, ...], closure: float) -> None:
    """Squash each point between the lids toward the lower lid; the skin above follows with an exponential fall-off."""
    upper, lower = rig.eyelids(eye)
    x = out[:, 0]
    inside = (x > upper[0, 0]) & (x < upper[-1, 0])
    up_y = np.interp(x, upper[:, 0], upper[:, 1])
    low_y = np.interp(x, lower[:, 0], lower[:, 1])
    gap = np.where(inside, np.maximum(low_y - up_y, 0.0), 0.0)
    y = out[:, 1]
    decay = 1.5 * max(float(gap.max()), 1e-3)
    between = (y >= up_y) & (y <= low_y)
    above = y < up_y
    shift = np.zeros_like(y)
    shift[between] = closure * (low_y - y)[between]
    shift[above] = closure * gap[above] * np.exp(-(up_y - y)[above] / decay)
    out[:, 1] = y + np.where(inside, shift, 0.0)


def _gaussian(
    points: npt.NDArray[np.float64], centre: npt.NDArray[np.float64], sigma: float
) -> npt.NDArray[np.float64]:
    return np.asarray(np.exp(-np.sum((points - centre) ** 2, axis=1) / (2.0 * sigma * sigma)))


def _smile(out: npt.NDArray[np.float64], rig: FaceRig, amount: float) -> None:
    centre = (rig.xy[MOUTH_CORNERS[0]] + rig.xy[MOUTH_CORNERS[1]]) / 2.0
    width = rig.mouth_width
    for corner in MOUTH_CORNERS:
        outward = (rig.xy[corner] - centre) / max(np.linalg.norm(rig.xy[corner] - centre), 1e-6)
        move = amount * width * (0.10 * outward + np.array([0.0, -0.09]))
        out[:, :2] += _gaussian(rig.xy, rig.xy[corner], 0.3 * width)[:, None] * move


def _jaw(out: npt.NDArray[np.float64], rig: FaceRig, amount: float) -> None:
    lip_mid = (rig.xy[UPPER_INNER_LIP, 1] + rig.xy[LOWER_INNER_LIP, 1]) / 2.0
    below = rig.xy[:, 1] > lip_mid
    weight = _gaussian(rig.xy, rig.xy[LOWER_INNER_LIP], 0.9 * rig.mouth_width) * below
    out[:, 1] += weight * amount * 0.16 * rig.mouth_width


def _brows(out: npt.NDArray[np.float64], rig: FaceRig, amount: float) -> None:
    mid_x = (rig.centre(RIGHT_EYE)[0] + rig.centre(LEFT_EYE)[0]) / 2.0
    for brow, eye in ((RIGHT_BROW, RIGHT_EYE), (LEFT_BROW, LEFT_EYE)):
        centre = rig.centre(brow)
        span = float(np.ptp(rig.xy[list(brow), 0]))
        lid_top = float(rig.xy[list(eye), 1].min())
        height = max(lid_top - centre[1], 1.0)
        y = rig.xy[:, 1]
        vertical = np.where(
            y < centre[1], np.exp(-(((centre[1] - y) / height) ** 2) / 2.0), np.clip((lid_top - y) / height, 0, 1)
        )
        horizontal = np.exp(-(((rig.xy[:, 0] - centre[0]) / (0.7 * span)) ** 2) / 2.0)
        weight = vertical * horizontal
        inward = np.sign(mid_x - centre[0]) * 0.06 * span * max(-amount, 0.0)
        out[:, 0] += weight * inward
        out[:, 1] -= weight * amount * 0.35 * height


def _gaze(out: npt.NDArray[np.float64], rig: FaceRig, gaze_x: float, gaze_y: float) -> None:
    travel = rig.eye_width
    for iris in (RIGHT_IRIS, LEFT_IRIS):
        out[list(iris), 0] += gaze_x * 0.14 * travel
        out[list(iris), 1] += gaze_y * 0.15 * travel


def _head_pose(
    points: npt.NDArray[np.float64], state: FrameState, centre: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    yaw, pitch, roll = np.radians([state.yaw, state.pitch, state.roll])
    ry = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    rx = np.array([[1, 0, 0], [0, np.cos(pitch), np.sin(pitch)], [0, -np.sin(pitch), np.cos(pitch)]])
    rz = np.array([[np.cos(roll), -np.sin(roll), 0], [np.sin(roll), np.cos(roll), 0], [0, 0, 1]])
    rotated = (points - centre) @ (rz @ rx @ ry).T
    return np.asarray(rotated[:, :2] * state.scale + centre[:2] + np.array([state.shift_x, state.shift_y]))


def pose_landmarks(rig: FaceRig, state: FrameState) -> npt.NDArray[np.float64]:
    """Where the still's landmarks sit in a frame with ``state``: ``(478, 2)`` pixels."""
    return pose_face(rig, state)[0]


def pose_face(rig: FaceRig, state: FrameState) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The posed landmarks ``(478, 2)`` and where the two iris centres (subject's right, left) sit ``(2, 2)``:
    where the gaze puts them, before the lids close (a closing lid covers the iris; the landmark model's iris
    points slide down with it, the eye does not)."""
    out = rig.landmarks.copy()
    _smile(out, rig, state.smile)
    _jaw(out, rig, state.jaw)
    _brows(out, rig, state.brow)
    _gaze(out, rig, state.gaze_x, state.gaze_y)
    irises = out[[RIGHT_IRIS[0], LEFT_IRIS[0]]].copy()
    closure = min(max(state.eye_closure, 0.0), MAX_CLOSURE)
    if closure > 0.0:
        moved = FaceRig(out)
        for eye in (RIGHT_EYE, LEFT_EYE):
            _close_eye(out, moved, eye, closure)
    centre = out.mean(axis=0)
    return _head_pose(out, state, centre), _head_pose(irises, state, centre)
