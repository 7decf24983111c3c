"""Synthetic talking-head videos whose facial behaviour follows a latent BDI-II label (0-63).

Real face photos shipped with scikit-image and matplotlib are re-shaped into identities and animated with
landmark-driven piecewise-affine warps: blinks, smiles, brow raises, gaze, speech, head motion, lighting drift
and noise. Higher scores give fewer and smaller smiles, mouth corners turned down, drooping lids and longer eye
closures, lowered brows with fewer raises, downward gaze and less head motion; the nose carries no signal. The
full table (which mosaic region carries which cue, and by how much) is in ``export/synthetic/README.md``.
The behaviour is invented: models trained on it measure nothing clinical.
"""

from export.synthetic.behaviour import SCORE_MAX, Behaviour, behaviour_for_score, make_timeline
from export.synthetic.catalogue import SPLITS, clip_specs, write_split
from export.synthetic.expression import FrameState, pose_landmarks
from export.synthetic.identity import IdentitySpec, make_identity, render_identity
from export.synthetic.video import ClipSpec, render_clip, write_clip

__all__ = [
    "SCORE_MAX",
    "SPLITS",
    "Behaviour",
    "ClipSpec",
    "FrameState",
    "IdentitySpec",
    "behaviour_for_score",
    "clip_specs",
    "make_identity",
    "make_timeline",
    "pose_landmarks",
    "render_clip",
    "render_identity",
    "write_clip",
    "write_split",
]
