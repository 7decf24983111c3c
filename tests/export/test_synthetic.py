"""The synthetic talking-head generator: deterministic, real faces mediapipe finds, labels that move behaviour."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import cv2
import mediapipe as mp
import numpy as np
import numpy.typing as npt
import pytest

from edge.cli_support import run_cli
from edge.errors import UsageError
from export.synthetic import (
    ClipSpec,
    FrameState,
    behaviour_for_score,
    clip_specs,
    make_identity,
    make_timeline,
    render_clip,
)
from export.synthetic.behaviour import SIGNAL_REGIONS, Behaviour, Timeline
from export.synthetic.catalogue import CSV_COLUMNS
from export.synthetic.rig import LEFT_EYE, MOUTH_CORNERS, RIGHT_EYE, UPPER_INNER_LIP

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def mesh() -> Iterator[object]:
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True, max_num_faces=2) as m:
        yield m


def faces_in(mesh: object, frame: npt.NDArray[np.uint8]) -> list[npt.NDArray[np.float64]]:
    """Landmarks (pixels) of every face mediapipe finds in an RGB frame."""
    result = mesh.process(frame)  # type: ignore[attr-defined]
    height, width = frame.shape[:2]
    return [
        np.array([[p.x * width, p.y * height] for p in face.landmark]) for face in result.multi_face_landmarks or []
    ]


def test_same_seed_same_frames_other_seed_other_frames() -> None:
    spec = ClipSpec(identity=make_identity(3), score=20.0, seed=11, seconds=0.5, fps=8.0)
    first, again = np.stack(list(render_clip(spec))), np.stack(list(render_clip(spec)))
    assert first.shape == (4, 240, 320, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, again)
    other = np.stack(list(render_clip(ClipSpec(identity=make_identity(3), score=20.0, seed=12, seconds=0.5, fps=8.0))))
    assert np.abs(first.astype(int) - other.astype(int)).mean() > 0.5


def test_no_face_and_two_face_stretches_are_what_mediapipe_sees(mesh: object) -> None:
    spec = ClipSpec(
        identity=make_identity(4), score=10.0, seed=5, seconds=1.0, fps=4.0, no_face=((0.25, 0.5),),
        two_faces=((0.5, 1.0),), second_identity=make_identity(5),
    )  # fmt: skip
    counts = [len(faces_in(mesh, frame)) for frame in render_clip(spec)]
    assert counts == [1, 0, 2, 2]


def _eye_openness(points: npt.NDArray[np.float64]) -> float:
    """Mean lid gap over eye width, both eyes."""
    ratios = []
    for eye in (RIGHT_EYE, LEFT_EYE):
        pts = points[list(eye)]
        ratios.append(np.ptp(pts[:, 1]) / np.ptp(pts[:, 0]))
    return float(np.mean(ratios))


def _corner_drop(points: npt.NDArray[np.float64]) -> float:
    """How far the mouth corners sit below the upper inner lip, over mouth width (smaller = more smile)."""
    corners = points[list(MOUTH_CORNERS)]
    return float((corners[:, 1].mean() - points[UPPER_INNER_LIP, 1]) / np.ptp(corners[:, 0]))


def test_higher_score_gives_less_smiling_and_droopier_eyes_as_measured_by_mediapipe(mesh: object) -> None:
    measured = {}
    for score in (3.0, 60.0):
        spec = ClipSpec(identity=make_identity(8), score=score, seed=21, seconds=3.0, fps=3.0)
        faces = [faces_in(mesh, frame) for frame in render_clip(spec)]
        assert all(len(found) == 1 for found in faces), "mediapipe must find the face in every frame"
        points = [found[0] for found in faces]
        measured[score] = (np.mean([_eye_openness(p) for p in points]), np.mean([_corner_drop(p) for p in points]))
    assert measured[60.0][0] < measured[3.0][0] * 0.85  # eyes droop
    assert measured[60.0][1] > measured[3.0][1]  # mouth corners lower


def test_event_rates_follow_the_label_in_the_documented_direction() -> None:
    low = [make_timeline(behaviour_for_score(5.0, np.random.default_rng(s)), 60.0, 8.0, np.random.default_rng(s))
           for s in range(4)]  # fmt: skip
    high = [make_timeline(behaviour_for_score(58.0, np.random.default_rng(s)), 60.0, 8.0, np.random.default_rng(s))
            for s in range(4)]  # fmt: skip
    assert sum(t.smiles for t in low) > 2 * sum(t.smiles for t in high)
    assert sum(t.brow_raises for t in low) > 2 * sum(t.brow_raises for t in high)

    def mean_of(timelines: list[Timeline], name: str) -> float:
        return float(np.mean([getattr(s, name) for t in timelines for s in t.states]))

    assert mean_of(high, "eye_closure") > mean_of(low, "eye_closure") + 0.2
    assert mean_of(high, "brow") < mean_of(low, "brow") - 0.3
    assert np.std([s.yaw for t in high for s in t.states]) < np.std([s.yaw for t in low for s in t.states])


def test_a_planted_signal_moves_only_its_own_regions() -> None:
    def behaviours(score: float, signal: tuple[str, ...]) -> list[Behaviour]:
        return [behaviour_for_score(score, np.random.default_rng(s), signal) for s in range(4)]

    for signal in (("mouth",), ("eyes",)):
        low, high = behaviours(5.0, signal), behaviours(58.0, signal)
        moved = {
            name
            for name in Behaviour.__dataclass_fields__
            if not np.allclose([getattr(b, name) for b in low], [getattr(b, name) for b in high])
        }
        assert moved == ({"smile_rate", "smile_peak", "mouth_tone"} if signal == ("mouth",) else {
            "blink_seconds", "lid_droop", "gaze_down", "gaze_shift_rate", "gaze_range"})  # fmt: skip
    assert behaviour_for_score(5.0, np.random.default_rng(0), ("mouth",)).smile_narrows_eyes == 0.0  # eyes stay out
    default = behaviour_for_score(40.0, np.random.default_rng(3))
    assert default == behaviour_for_score(40.0, np.random.default_rng(3), SIGNAL_REGIONS)  # the old data unchanged
    with pytest.raises(UsageError, match="signal regions nose not known"):
        clip_specs("train", 2, signal=("nose",))


def test_neutral_state_leaves_the_still_unchanged() -> None:
    from export.synthetic.expression import pose_landmarks
    from export.synthetic.identity import render_identity
    from export.synthetic.rig import FaceRig

    still = render_identity(make_identity(2))
    np.testing.assert_allclose(pose_landmarks(FaceRig(still.landmarks), FrameState()), still.landmarks[:, :2])


def test_splits_share_no_identity_seed_or_lighting() -> None:
    train, held = clip_specs("train", 12), clip_specs("heldout", 6)
    assert not {s.identity.seed for s in train} & {s.identity.seed for s in held}
    assert not {s.seed for s in train} & {s.seed for s in held}
    assert not {s.lighting for s in train} & {s.lighting for s in held}
    scores = sorted(s.score for s in train)
    assert scores[0] < 6.0 and scores[-1] > 57.0


def test_sample_data_command_writes_videos_and_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_cli("python -m export", "", "export.commands",
                   ["sample-data", "--out", str(tmp_path), "--split", "heldout", "--count", "1", "--seconds", "0.5",
                    "--fps", "4", "--json"])  # fmt: skip
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    rows = list(csv.DictReader((tmp_path / "labels.csv").open()))
    assert len(rows) == 1 and tuple(rows[0]) == CSV_COLUMNS
    assert report["videos"] == [rows[0]["video"]] and report["bytes"] == (tmp_path / rows[0]["video"]).stat().st_size
    refused = ["sample-data", "--out", str(tmp_path / "none"), "--count", "0"]
    assert run_cli("python -m export", "", "export.commands", refused) == 2 and not (tmp_path / "none").exists()
    capture = cv2.VideoCapture(str(tmp_path / rows[0]["video"]))
    frames = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames += 1
        assert frame.shape == (240, 320, 3)
    assert frames == 2


def test_committed_samples_match_the_script() -> None:
    rows = list(csv.DictReader((REPO / "samples" / "labels.csv").open()))
    specs = clip_specs("demo", len(rows))
    assert [float(r["score"]) for r in rows] == [s.score for s in specs]
    assert [r["identity"] for r in rows] == [f"id{s.identity.seed}" for s in specs]
    assert all((REPO / "samples" / r["video"]).is_file() for r in rows)
    assert sum((REPO / "samples" / r["video"]).stat().st_size for r in rows) < 4_000_000


def _dark_centroid(image: npt.NDArray[np.uint8], box: tuple[int, int, int, int]) -> npt.NDArray[np.float64]:
    """Centroid of the darkest tenth of the pixels inside ``box`` (x0, y0, x1, y1): the pupil and iris."""
    x0, y0, x1, y1 = box
    grey = image[y0:y1, x0:x1].astype(np.float64).mean(axis=2)
    ys, xs = np.nonzero(grey <= np.quantile(grey, 0.1))
    return np.array([xs.mean() + x0, ys.mean() + y0])


def test_a_gaze_shift_moves_the_drawn_iris_as_far_as_its_landmarks_and_lids_cover_it() -> None:
    # the warp alone stretched the iris against the fixed eye contour: a 3 px landmark shift moved the dark iris
    # 0.3-1.1 px; the iris layer draws it where the gaze puts it
    from export.synthetic.expression import pose_face
    from export.synthetic.identity import FRAME_SIZE, render_identity
    from export.synthetic.iris import IrisLayer
    from export.synthetic.rig import RIGHT_IRIS, FaceRig
    from export.synthetic.warp import PiecewiseAffineWarp

    still = render_identity(make_identity(2))
    rig, layer = FaceRig(still.landmarks), IrisLayer.from_still(still.image, still.landmarks)
    warp = PiecewiseAffineWarp(still.landmarks, *FRAME_SIZE)
    eye = rig.xy[list(RIGHT_EYE)]
    box = (*np.floor(eye.min(axis=0)).astype(int), *np.ceil(eye.max(axis=0)).astype(int))

    def render(state: FrameState) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float64]]:
        posed, irises = pose_face(rig, state)
        frame = warp(layer.bare, posed).astype(np.float32)
        layer.draw(frame, posed, irises, state.scale)
        return np.clip(frame, 0, 255).astype(np.uint8), posed

    (left, left_pts), (right, right_pts) = render(FrameState(gaze_x=-1.0)), render(FrameState(gaze_x=1.0))
    moved = _dark_centroid(right, box)[0] - _dark_centroid(left, box)[0]
    expected = right_pts[RIGHT_IRIS[0], 0] - left_pts[RIGHT_IRIS[0], 0]
    assert expected > 4.0 and moved == pytest.approx(expected, rel=0.3)
    # the still's own iris is painted out: no dark disk left where it was
    assert layer.bare[box[1] : box[3], box[0] : box[2]].mean() > still.image[box[1] : box[3], box[0] : box[2]].mean()
    shut, _ = render(FrameState(eye_closure=0.93))
    opened, _ = render(FrameState())
    dark = np.quantile(opened[box[1] : box[3], box[0] : box[2]].mean(axis=2), 0.05)
    assert (shut[box[1] : box[3], box[0] : box[2]].mean(axis=2) <= dark).sum() < 3  # the lid hides the iris


def test_vertical_gaze_moves_within_a_clip_around_the_tonic_downward_gaze() -> None:
    rng = np.random.default_rng(5)
    for score in (5.0, 60.0):
        behaviour = behaviour_for_score(score, rng)
        gaze_y = np.array([s.gaze_y for s in make_timeline(behaviour, 120.0, 8.0, rng).states])
        assert np.ptp(gaze_y) > 0.3  # looks up and down, as it looks left and right
        assert np.mean(gaze_y) == pytest.approx(behaviour.gaze_down, abs=0.25)
