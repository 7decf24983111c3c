"""The pipeline on the committed sample video with a no-face and a two-face stretch (``samples/``).

Per ``export/synthetic/README.md``, demo clip 0 shows no face from 4.0 to 5.5 s and a second, smaller face from
8.0 to 10.5 s.
"""

from __future__ import annotations

from pathlib import Path

from edge.bundle import InputSpec, Tile
from edge.face import FacePipeline, LandmarkDetector, iter_video_frames

SAMPLES = Path(__file__).resolve().parents[3] / "samples"
NO_FACE, TWO_FACES = (4.0, 5.5), (8.0, 10.5)


def test_sample_clip_with_no_face_and_two_faces(
    detector: LandmarkDetector, spec: InputSpec, tiles: tuple[Tile, ...]
) -> None:
    clips = sorted(SAMPLES.glob("clip_000_*.mp4"))
    assert clips, f"no sample clip 0 in {SAMPLES} (it is committed; python -m export sample-data --out samples/)"
    detector.reset()
    pipeline = FacePipeline(spec, tiles, landmarks=detector)
    frames, windows = [], []
    for frame, timestamp in iter_video_frames(clips[0]):
        result = pipeline.push(frame, timestamp)
        windows += result.windows
        if result.sampled:
            frames.append(result)
    span = (spec.frames - 1) / spec.sample_fps
    for result in frames:
        t, quality = result.timestamp, result.quality
        if NO_FACE[0] + 0.1 < t < NO_FACE[1] - 0.1:
            assert not quality.face_present
        elif not NO_FACE[0] - 0.1 <= t <= NO_FACE[1] + 0.1:
            assert quality.face_present and quality.jump is None, t
        if TWO_FACES[0] + 0.1 < t < TWO_FACES[1] - 0.1:
            assert quality.faces == 2
            assert result.landmarks is not None and result.landmarks[:, 0].mean() < 200  # the larger face, left
    for window in windows:
        clear = window.start + span < NO_FACE[0] or window.start > NO_FACE[1] + 0.2
        assert window.quality.passed == clear, (window.start, window.quality)
        if not clear:
            assert window.quality.reject_reason == "face_lost"
    assert sum(w.quality.passed for w in windows) >= 7
