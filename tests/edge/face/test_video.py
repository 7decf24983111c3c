"""Frames and windows from real video files, and the bench-pipeline command on one."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from face_frames import Frame, shifted

from edge.bundle import InputSpec, Tile
from edge.cli import main
from edge.errors import InputError
from edge.face import iter_video_frames, windows_from_video

FPS = 15.0


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory, astronaut: Frame) -> Path:
    """Two seconds at 15 fps of the astronaut moving a little (MP4, mp4v)."""
    path = tmp_path_factory.mktemp("video") / "astronaut.mp4"
    resized = cv2.resize(astronaut, (320, 320), interpolation=cv2.INTER_AREA)
    small = np.asarray(cv2.cvtColor(resized, cv2.COLOR_RGB2BGR), dtype=np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), FPS, (320, 320))
    for index in range(int(2 * FPS)):
        writer.write(shifted(small, 3 * np.sin(index / 5)))
    writer.release()
    return path


def test_frames_come_as_bgr_with_steady_timestamps(video: Path, astronaut: Frame) -> None:
    frames = list(iter_video_frames(video))
    assert len(frames) == 30
    assert [t for _, t in frames[:3]] == [0.0, 1 / FPS, 2 / FPS]
    first = frames[0][0]
    assert first.shape == (320, 320, 3) and first.dtype == np.uint8
    reference = cv2.resize(astronaut, (320, 320), interpolation=cv2.INTER_AREA)[..., ::-1]  # BGR
    assert np.abs(first.astype(int) - reference).mean() < 8
    assert len(list(iter_video_frames(video, max_frames=5))) == 5


def test_unreadable_videos_raise_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        next(iter_video_frames(tmp_path / "missing.mp4"))
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(InputError, match=str(garbage)):
        next(iter_video_frames(garbage))


def test_windows_from_video(video: Path, short_spec: InputSpec, tiles: tuple[Tile, ...]) -> None:
    windows = list(windows_from_video(video, short_spec, tiles))
    assert [w.start for w in windows] == [pytest.approx(t, abs=0.5 / FPS) for t in (0.0, 0.5, 1.0)]
    assert all(w.quality.passed and w.frames.shape == (8, 112, 112, 3) for w in windows)


def test_bench_pipeline_reports_every_stage(video: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench-pipeline", str(video), "--threads", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    [run] = report["runs"]
    assert run["threads"] == 1 and len(run["cpu_cores"]) == 1
    assert run["frames"] == 30 and run["sampled_frames"] == 16 and run["face_share"] == 1.0
    assert set(run["ms_per_frame"]) == {"decode", "convert", "mediapipe", "crops", "window"}
    assert run["ms_per_frame"]["mediapipe"] > 0 and run["windows"] == 1


def test_bench_pipeline_refuses_bad_thread_lists(video: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for threads in ("0", "1,x"):
        assert main(["bench-pipeline", str(video), "--threads", threads]) == 2
        out, err = capsys.readouterr()
        assert f"--threads {threads!r} is not a list of positive integers" in err and "fix:" in err
        assert out == ""  # refused before any frame was decoded: no report
