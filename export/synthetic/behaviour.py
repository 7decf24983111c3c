"""From a latent BDI-II score (0-63) to behaviour: event rates, intensities and a per-frame action timeline.

The mapping (u = score / 63) is the one documented in ``export/synthetic/README.md``; each clip jitters every
parameter a little (log-normal, sd 0.1) so no single cue gives the label away exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from export.synthetic.expression import FrameState

SCORE_MAX = 63.0


@dataclass(frozen=True)
class Behaviour:
    """Rates (events per minute), durations (s) and tonic levels that a score sets."""

    smile_rate: float
    smile_peak: float
    mouth_tone: float
    blink_rate: float
    blink_seconds: float
    lid_droop: float
    brow_raise_rate: float
    brow_tone: float
    gaze_down: float
    gaze_shift_rate: float
    gaze_range: float
    head_motion: float
    head_pitch: float
    smile_narrows_eyes: float = 0.15
    """Eye closure added per unit of smile (a Duchenne cue); 0 when the label is planted in the mouth alone, so
    that the eyes carry none of it."""


SIGNAL_REGIONS = ("mouth", "eyes", "eyebrows", "head")
"""Where the label can be planted (README table): the mouth's smiles and tone; the eyes' lids, blinks and gaze; the
brows' raises and tone; the head's motion and pitch."""
NEUTRAL_U = 0.5
"""The behaviour level of a region that carries no signal: that of a mid-range score, whatever the label."""


def behaviour_for_score(score: float, rng: np.random.Generator, signal: tuple[str, ...] = SIGNAL_REGIONS) -> Behaviour:
    """The behaviour of someone with ``score``, jittered by ``rng``; regions outside ``signal`` behave as a mid-range
    score would, whatever ``score`` is (the label is planted in ``signal`` only)."""
    level = float(np.clip(score / SCORE_MAX, 0.0, 1.0))
    mouth, eyes, brows, head = (level if region in signal else NEUTRAL_U for region in SIGNAL_REGIONS)

    def jitter(value: float) -> float:
        return float(value * np.exp(rng.normal(0.0, 0.1)))

    def shift(value: float) -> float:
        return float(value + rng.normal(0.0, 0.04))

    return Behaviour(
        smile_rate=jitter(2.0 + 16.0 * (1.0 - mouth)),
        smile_peak=jitter(0.35 + 0.6 * (1.0 - mouth)),
        mouth_tone=shift(0.3 - 0.8 * mouth),
        blink_rate=jitter(16.0),
        blink_seconds=jitter(0.2 + 0.45 * eyes),
        lid_droop=max(0.0, shift(0.05 + 0.35 * eyes)),
        brow_raise_rate=jitter(1.0 + 9.0 * (1.0 - brows)),
        brow_tone=shift(0.2 - 0.8 * brows),
        gaze_down=max(0.0, shift(0.7 * eyes)),
        gaze_shift_rate=jitter(30.0 - 20.0 * eyes),
        gaze_range=jitter(1.0 - 0.6 * eyes),
        head_motion=jitter(1.0 - 0.7 * head),
        head_pitch=shift(6.0 * head),
        smile_narrows_eyes=0.15 if "eyes" in signal or "mouth" not in signal else 0.0,
    )


def _event_onsets(rate_per_min: float, seconds: float, rng: np.random.Generator) -> list[float]:
    onsets, t = [], float(rng.exponential(60.0 / rate_per_min)) * 0.5
    while t < seconds:
        onsets.append(t)
        t += float(rng.exponential(60.0 / rate_per_min))
    return onsets


def _envelope(
    times: npt.NDArray[np.float64], onset: float, rise: float, hold: float, fall: float
) -> npt.NDArray[np.float64]:
    """0 before ``onset``, a raised-cosine rise to 1, a hold, a raised-cosine fall back to 0."""
    t = times - onset
    up = 0.5 - 0.5 * np.cos(np.pi * np.clip(t / rise, 0.0, 1.0))
    down = 0.5 + 0.5 * np.cos(np.pi * np.clip((t - rise - hold) / fall, 0.0, 1.0))
    return np.asarray(np.where(t < rise + hold, up, down) * (t >= 0))


def _smooth_noise(times: npt.NDArray[np.float64], rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """A slow random wobble in [-1, 1]: three sinusoids of 0.05-0.5 Hz."""
    total = np.zeros_like(times)
    for _ in range(3):
        total += np.sin(2 * np.pi * rng.uniform(0.05, 0.5) * times + rng.uniform(0, 2 * np.pi))
    return total / 3.0


@dataclass(frozen=True)
class Timeline:
    """Per-frame actions of one clip, and the events that made them (for checks and documentation)."""

    times: npt.NDArray[np.float64]
    states: tuple[FrameState, ...]
    blinks: int
    smiles: int
    brow_raises: int


def make_timeline(behaviour: Behaviour, seconds: float, fps: float, rng: np.random.Generator) -> Timeline:
    """Lay out blinks, smiles, brow raises, gaze shifts, speech and head motion over a clip."""
    times = np.arange(round(seconds * fps)) / fps
    closure = np.full_like(times, behaviour.lid_droop)
    blinks = _event_onsets(behaviour.blink_rate, seconds, rng)
    for onset in blinks:
        hold = max(behaviour.blink_seconds - 0.15, 0.0)
        closure = np.maximum(closure, _envelope(times, onset, 0.07, hold, 0.1))
    smile = np.full_like(times, behaviour.mouth_tone)
    smiles = _event_onsets(behaviour.smile_rate, seconds, rng)
    for onset in smiles:
        peak = behaviour.smile_peak * rng.uniform(0.7, 1.0)
        smile += peak * _envelope(times, onset, rng.uniform(0.3, 0.6), rng.uniform(0.8, 2.5), rng.uniform(0.4, 0.8))
    brow = np.full_like(times, behaviour.brow_tone)
    raises = _event_onsets(behaviour.brow_raise_rate, seconds, rng)
    for onset in raises:
        brow += 0.9 * _envelope(times, onset, 0.15, rng.uniform(0.3, 1.0), 0.25)
    gaze_x = np.zeros_like(times)
    gaze_y = np.full_like(times, behaviour.gaze_down)
    for onset in _event_onsets(behaviour.gaze_shift_rate, seconds, rng):
        gaze_x[times >= onset] = rng.uniform(-1.0, 1.0) * behaviour.gaze_range
        gaze_y[times >= onset] = behaviour.gaze_down + rng.uniform(-1.0, 1.0) * behaviour.gaze_range
    speech = np.zeros_like(times)
    for onset in _event_onsets(6.0, seconds, rng):
        speech = np.maximum(speech, _envelope(times, onset, 0.2, rng.uniform(1.0, 3.0), 0.2))
    jaw = speech * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(3.0, 5.0) * times)) * 0.7
    eye = np.clip(closure + 0.3 * gaze_y + behaviour.smile_narrows_eyes * np.clip(smile, 0, None), 0.0, 1.0)
    motion = behaviour.head_motion
    yaw, pitch, roll = (_smooth_noise(times, rng) for _ in range(3))
    drift_x, drift_y = (_smooth_noise(times, rng) for _ in range(2))
    states = tuple(
        FrameState(
            eye_closure=float(eye[i]),
            smile=float(np.clip(smile[i], -1.0, 1.0)),
            brow=float(np.clip(brow[i], -1.0, 1.0)),
            gaze_x=float(gaze_x[i]),
            gaze_y=float(np.clip(gaze_y[i], -1.0, 1.0)),
            jaw=float(jaw[i]),
            yaw=float(9.0 * motion * yaw[i]),
            pitch=float(behaviour.head_pitch + 5.0 * motion * pitch[i]),
            roll=float(4.0 * motion * roll[i]),
            shift_x=float(6.0 * motion * drift_x[i]),
            shift_y=float(4.0 * motion * drift_y[i]),
            scale=1.0,
        )
        for i in range(len(times))
    )
    return Timeline(times=times, states=states, blinks=len(blinks), smiles=len(smiles), brow_raises=len(raises))
