"""Synthetic identities: one real photo re-framed, mirrored, re-shaped, re-toned and put on a new background.

An :class:`IdentitySpec` is drawn from a seed; :func:`render_identity` turns it into a still frame, its 478
landmarks (x, y in pixels, z relative depth) and an empty plate (the same scene with no face) for no-face stretches.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge.errors import InputError
from export.synthetic.photos import PHOTO_NAMES, FacePhoto, detect_landmarks, load_photo
from export.synthetic.rig import FaceRig
from export.synthetic.warp import PiecewiseAffineWarp

BACKGROUNDS = ("photo", "plain", "brick", "gravel", "grass")
FRAME_SIZE = (320, 240)  # width, height


@dataclass(frozen=True)
class IdentitySpec:
    """How one synthetic person looks; every field is drawn from ``seed`` by :func:`make_identity`."""

    seed: int
    photo: str
    mirror: bool
    face_width: float  # face oval width as a share of the frame width
    offset: tuple[float, float]  # face centre offset from the frame centre, share of the frame size
    skin_tone: float  # -1 lighter ... +1 darker (a shift in CIELAB lightness and warmth on the face)
    eye_size: float
    eye_spacing: float
    mouth_width: float
    nose_length: float
    face_aspect: float  # >1 a longer, narrower face
    background: str
    background_rgb: tuple[int, int, int]

    @property
    def tone_band(self) -> str:
        """The skin-tone group used in label CSVs."""
        return "lighter" if self.skin_tone < -0.33 else "darker" if self.skin_tone > 0.33 else "medium"

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return asdict(self)


def make_identity(seed: int, photo: str | None = None) -> IdentitySpec:
    """Draw an identity from ``seed`` (the photo alternates with the seed unless given)."""
    rng = np.random.default_rng([seed, 7919])
    return IdentitySpec(
        seed=seed,
        photo=photo or PHOTO_NAMES[seed % len(PHOTO_NAMES)],
        mirror=bool(rng.integers(2)),
        face_width=float(rng.uniform(0.30, 0.40)),
        offset=(float(rng.uniform(-0.06, 0.06)), float(rng.uniform(-0.05, 0.05))),
        skin_tone=float(rng.uniform(-1.0, 1.0)),
        eye_size=float(rng.uniform(0.9, 1.12)),
        eye_spacing=float(rng.uniform(0.93, 1.07)),
        mouth_width=float(rng.uniform(0.9, 1.1)),
        nose_length=float(rng.uniform(0.92, 1.08)),
        face_aspect=float(rng.uniform(0.94, 1.06)),
        background=BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))],
        background_rgb=(int(rng.integers(40, 220)), int(rng.integers(40, 220)), int(rng.integers(40, 220))),
    )


@dataclass(frozen=True)
class IdentityStill:
    """A rendered identity: still frame, landmarks, the head mask and the empty plate (all RGB, frame-sized)."""

    spec: IdentitySpec
    image: npt.NDArray[np.uint8]
    landmarks: npt.NDArray[np.float64]
    head_mask: npt.NDArray[np.float32]
    empty_plate: npt.NDArray[np.uint8]


@cache
def _mirrored_photo(name: str) -> FacePhoto:
    photo = load_photo(name)
    image = np.ascontiguousarray(photo.image[:, ::-1])
    landmarks = detect_landmarks(image)
    if landmarks is None:
        raise InputError(f"mediapipe found no face in the mirrored {name} photo", fix="check the mediapipe install")
    return FacePhoto(name=name, image=image, landmarks=np.round(landmarks, 2))


def _frame_photo(photo: FacePhoto, spec: IdentitySpec) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float64]]:
    """Scale and place the photo so the face oval spans ``face_width`` of the frame around the offset centre."""
    width, height = FRAME_SIZE
    rig = FaceRig(photo.landmarks)
    scale = spec.face_width * width / rig.face_width
    centre = photo.landmarks[:, :2].mean(axis=0)
    target = np.array([width * (0.5 + spec.offset[0]), height * (0.48 + spec.offset[1])])
    matrix = np.array([[scale, 0.0, target[0] - scale * centre[0]], [0.0, scale, target[1] - scale * centre[1]]])
    image = cv2.warpAffine(photo.image, matrix, (width, height), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
    landmarks = photo.landmarks * scale
    landmarks[:, :2] += matrix[:, 2]
    return np.asarray(image, dtype=np.uint8), landmarks


def _skin_tone(image: npt.NDArray[np.uint8], mask: npt.NDArray[np.float32], tone: float) -> npt.NDArray[np.uint8]:
    lab = np.asarray(cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB), dtype=np.float32)
    lab[..., 0] -= 24.0 * tone * mask
    lab[..., 1] += 3.0 * tone * mask
    lab[..., 2] += 7.0 * tone * mask
    rgb = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def background_plate(spec: IdentitySpec, fallback: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """The scene behind the head: the photo's own surroundings, a plain gradient or a tinted texture."""
    width, height = FRAME_SIZE
    colour = np.asarray(spec.background_rgb, dtype=np.float32)
    if spec.background == "photo":
        return fallback
    ramp = np.linspace(0.75, 1.15, height, dtype=np.float32)[:, None, None]
    if spec.background == "plain":
        shade = np.ones((height, width, 1), dtype=np.float32)
    else:
        import skimage.data

        texture = getattr(skimage.data, spec.background)().astype(np.float32) / 255.0
        shade = cv2.resize(texture, (width, height), interpolation=cv2.INTER_AREA)[..., None] * 0.6 + 0.5
    return np.clip(colour * ramp * shade, 0, 255).astype(np.uint8)


def render_identity(spec: IdentitySpec) -> IdentityStill:
    """Render the still of ``spec``: framed, re-shaped by a landmark warp, re-toned, on its background."""
    photo = _mirrored_photo(spec.photo) if spec.mirror else load_photo(spec.photo)
    framed, landmarks = _frame_photo(photo, spec)
    rig = FaceRig(landmarks)
    shaped = rig.reshape(
        eye_size=spec.eye_size,
        eye_spacing=spec.eye_spacing,
        mouth_width=spec.mouth_width,
        nose_length=spec.nose_length,
        face_aspect=spec.face_aspect,
    )
    width, height = FRAME_SIZE
    image = PiecewiseAffineWarp(landmarks, width, height)(framed, shaped)
    rig = FaceRig(shaped)
    image = _skin_tone(image, rig.skin_mask(width, height), spec.skin_tone)
    head = rig.head_mask(width, height)
    empty = cv2.inpaint(image, (head > 0.05).astype(np.uint8), 5, cv2.INPAINT_TELEA)
    empty = cv2.GaussianBlur(empty, (0, 0), 6.0)
    plate = background_plate(spec, np.asarray(empty, dtype=np.uint8))
    composed = image * head[..., None] + plate * (1.0 - head[..., None])
    return IdentityStill(
        spec=spec,
        image=np.clip(composed + 0.5, 0, 255).astype(np.uint8),
        landmarks=shaped,
        head_mask=head,
        empty_plate=plate,
    )
