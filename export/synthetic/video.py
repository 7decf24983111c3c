"""Render a synthetic talking-head clip frame by frame and write it as an mp4v MP4 (OpenCV)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edge.errors import InputError
from export.synthetic.behaviour import SIGNAL_REGIONS, Behaviour, Timeline, behaviour_for_score, make_timeline
from export.synthetic.expression import pose_face
from export.synthetic.identity import FRAME_SIZE, IdentitySpec, IdentityStill, render_identity
from export.synthetic.iris import IrisLayer
from export.synthetic.rig import FaceRig
from export.synthetic.warp import PiecewiseAffineWarp

# gain, left-to-right gradient, RGB tint, slow drift amplitude, sensor noise sd (grey levels)
LIGHTING_KINDS: dict[str, tuple[float, float, tuple[float, float, float], float, float]] = {
    "even": (1.0, 0.0, (1.0, 1.0, 1.0), 0.05, 1.5),
    "warm": (0.95, 0.1, (1.08, 1.0, 0.85), 0.08, 2.0),
    "dim": (0.62, 0.05, (1.0, 1.0, 1.0), 0.06, 3.5),
    "side": (0.9, 0.45, (1.0, 1.0, 1.0), 0.1, 2.0),
    "cool": (1.0, -0.15, (0.88, 1.0, 1.1), 0.1, 2.5),
}
SECOND_FACE_SCALE = 0.55


@dataclass(frozen=True)
class ClipSpec:
    """Everything that fixes a clip's frames: who, which latent score, which seed, light, length and events."""

    identity: IdentitySpec
    score: float
    seed: int
    lighting: str = "even"
    seconds: float = 10.0
    fps: float = 8.0
    no_face: tuple[tuple[float, float], ...] = ()  # (start, end) seconds with nobody in view
    two_faces: tuple[tuple[float, float], ...] = ()  # (start, end) seconds with a second, smaller face
    second_identity: IdentitySpec | None = None
    signal: tuple[str, ...] = SIGNAL_REGIONS  # regions whose behaviour follows the score (the others stay neutral)


def _inside(t: float, spans: tuple[tuple[float, float], ...]) -> bool:
    return any(start <= t < end for start, end in spans)


def _paste_second(frame: npt.NDArray[np.float32], second: IdentityStill) -> None:
    width, height = FRAME_SIZE
    small_w, small_h = int(width * SECOND_FACE_SCALE), int(height * SECOND_FACE_SCALE)
    face = cv2.resize(second.image, (small_w, small_h), interpolation=cv2.INTER_AREA).astype(np.float32)
    mask = cv2.resize(second.head_mask, (small_w, small_h), interpolation=cv2.INTER_AREA)[..., None]
    x0, y0 = width - small_w, int(height * 0.05)
    region = frame[y0 : y0 + small_h, x0 : x0 + small_w]
    region[:] = face * mask + region * (1.0 - mask)


def _lighting(spec: ClipSpec, rng: np.random.Generator) -> tuple[npt.NDArray[np.float32], float, float, float]:
    """A per-pixel gain image (gradient and tint), drift amplitude, drift frequency and noise sd."""
    if spec.lighting not in LIGHTING_KINDS:
        raise InputError(f"unknown lighting {spec.lighting!r}", fix=f"use one of {', '.join(LIGHTING_KINDS)}")
    gain, gradient, tint, drift, noise = LIGHTING_KINDS[spec.lighting]
    width, _ = FRAME_SIZE
    gain *= float(np.exp(rng.normal(0.0, 0.05)))
    ramp = 1.0 + gradient * np.linspace(-1.0, 1.0, width, dtype=np.float32)
    image = gain * ramp[None, :, None] * np.asarray(tint, dtype=np.float32)[None, None, :]
    return image.astype(np.float32), drift, float(rng.uniform(0.05, 0.2)), noise


def clip_timeline(spec: ClipSpec, rng: np.random.Generator | None = None) -> tuple[Behaviour, Timeline]:
    """The clip's behaviour and per-frame actions (the generator's ground truth; ``rng`` fresh from the seed)."""
    rng = rng if rng is not None else np.random.default_rng([spec.seed, 104729])
    behaviour = behaviour_for_score(spec.score, rng, spec.signal)
    return behaviour, make_timeline(behaviour, spec.seconds, spec.fps, rng)


def render_clip(spec: ClipSpec) -> Iterator[npt.NDArray[np.uint8]]:
    """The clip's frames, RGB uint8 ``(240, 320, 3)``; the same spec always gives the same frames."""
    rng = np.random.default_rng([spec.seed, 104729])
    still = render_identity(spec.identity)
    second = render_identity(spec.second_identity) if spec.second_identity and spec.two_faces else None
    _, timeline = clip_timeline(spec, rng)
    light, drift, drift_hz, noise = _lighting(spec, rng)
    phase = float(rng.uniform(0.0, 2.0 * np.pi))
    rig = FaceRig(still.landmarks)
    irises = IrisLayer.from_still(still.image, still.landmarks)
    warp = PiecewiseAffineWarp(still.landmarks, *FRAME_SIZE)
    for t, state in zip(timeline.times, timeline.states, strict=True):
        if _inside(float(t), spec.no_face):
            frame = still.empty_plate.astype(np.float32)
        else:
            posed, iris_centres = pose_face(rig, state)
            frame = warp(irises.bare, posed).astype(np.float32)
            irises.draw(frame, posed, iris_centres, state.scale)
        if second is not None and _inside(float(t), spec.two_faces):
            _paste_second(frame, second)
        frame *= light * np.float32(1.0 + drift * np.sin(2.0 * np.pi * drift_hz * t + phase))
        frame += rng.normal(0.0, noise, frame.shape).astype(np.float32)
        yield np.clip(frame + 0.5, 0, 255).astype(np.uint8)


def write_clip(spec: ClipSpec, path: Path) -> int:
    """Write the clip as an mp4v MP4 at ``spec.fps``; returns the frame count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), spec.fps, FRAME_SIZE)
    if not writer.isOpened():
        raise InputError(f"OpenCV cannot write {path}", fix="check the directory is writable and ends in .mp4")
    count = 0
    try:
        for frame in render_clip(spec):
            writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
            count += 1
    finally:
        writer.release()
    return count
