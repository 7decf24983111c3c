"""Frames and windows from real video files, and the bench-pipeline command on one."""

from __future__ import annotations

import json
import os
import struct
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from face_frames import Frame, shifted

from edge.bundle import InputSpec, Tile
from edge.capture import Capture
from edge.cli import main
from edge.commands.bench_pipeline import worker_error
from edge.errors import InputError
from edge.face import iter_video_frames, windows_from_video
from edge.face.video import FrameClock

FPS = 15.0
MP4_PARENTS = (b"moov", b"trak", b"mdia", b"minf", b"stbl")  # boxes on the way to the sample table


def _retimed_mp4(data: bytes, ticks: list[int]) -> bytes:
    """An MP4 with its frames' durations (``stts``, in the track's time units) replaced by ``ticks``.

    The ancestors' sizes are rewritten; the frame offsets stay valid because OpenCV puts ``moov`` after ``mdat``.
    """
    assert data.index(b"moov") > data.index(b"mdat")

    def rewrite(boxes: bytes) -> bytes:
        out, offset = b"", 0
        while offset < len(boxes):
            size, kind = struct.unpack(">I4s", boxes[offset : offset + 8])
            body = boxes[offset + 8 : offset + size]
            if kind in MP4_PARENTS:
                body = rewrite(body)
            elif kind == b"stts":
                body = struct.pack(">II", 0, len(ticks)) + b"".join(struct.pack(">II", 1, tick) for tick in ticks)
            out += struct.pack(">I4s", 8 + len(body), kind) + body
            offset += size
        return out

    return rewrite(data)


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


def test_a_variable_frame_rate_file_is_timed_by_its_container(
    video: Path, tmp_path: Path, short_spec: InputSpec, tiles: tuple[Tile, ...]
) -> None:
    """Frames 1/30 s and 1/10 s apart in turn (OpenCV's mp4v track counts 15360 units a second, 1024 a frame)."""
    uneven = tmp_path / "uneven.mp4"
    uneven.write_bytes(_retimed_mp4(video.read_bytes(), [512, 1536] * 15))
    times = [t for _, t in iter_video_frames(uneven)]
    expected = [k // 2 * 2 / FPS + k % 2 / 30 for k in range(30)]  # 0, 1/30, 4/30, 5/30, ...
    assert times == pytest.approx(expected)
    assert times[3] != pytest.approx(3 / FPS)  # not frame index / fps
    windows = list(windows_from_video(uneven, short_spec, tiles))
    assert len(windows) == 3 and all(w.quality.passed for w in windows)
    for window in windows:
        assert np.allclose(np.diff(window.grid_times), 1 / 8)
        assert all(min(abs(t - e) for e in expected) < 1e-9 for t in window.sample_times)
        assert np.abs(window.sample_times - window.grid_times).max() < 0.1  # within the longer frame interval


def test_the_capture_thread_times_a_file_as_training_does(video: Path, tmp_path: Path) -> None:
    uneven = tmp_path / "uneven.mp4"
    uneven.write_bytes(_retimed_mp4(video.read_bytes(), [512, 1536] * 15))
    container = [t for _, t in iter_video_frames(uneven)]
    with Capture(str(uneven), realtime=False, sample_fps=30.0) as capture:  # every frame kept
        frames = []
        while not capture.finished:
            frame = capture.get(timeout=2)
            if frame is not None:
                frames.append(frame)
    assert len(frames) >= 10
    assert all(frame.t == pytest.approx(container[frame.index]) for frame in frames)
    assert any(frame.t != pytest.approx(frame.index / FPS) for frame in frames)  # not frame index / fps


def test_the_clock_falls_back_to_counting_frames_once_the_container_times_fail() -> None:
    clock = FrameClock(10.0)
    assert [clock(t) for t in (0.0, 0.05, 0.3, 0.3, 0.9, float("nan"))] == pytest.approx([0, 0.05, 0.3, 0.4, 0.5, 0.6])
    silent = FrameClock(10.0)  # a backend that reports no time: frame index / fps
    assert [silent(0.0) for _ in range(4)] == pytest.approx([0.0, 0.1, 0.2, 0.3])
    broken = FrameClock(10.0)
    assert [broken(t) for t in (-1.0, 5.0, 6.0)] == pytest.approx([0.0, 0.1, 0.2])


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
    # the figures the README tells operators to check against their camera, with the gate's thresholds
    figures = run["figures"]
    assert set(figures) == {"brightness", "blur", "yaw", "pitch"}
    assert all(
        f["frames"] == 16 and f["min"] <= f["p5"] <= f["median"] <= f["p95"] <= f["max"] for f in figures.values()
    )
    assert figures["brightness"]["threshold"] == {"min": 40.0, "max": 235.0, "of": "value"}
    assert figures["yaw"]["threshold"]["of"] == "|value|" and 0 <= figures["blur"]["outside_share"] <= 1
    assert 0 < figures["brightness"]["median"] < 255 and abs(figures["yaw"]["median"]) < 30


def test_bench_pipeline_refuses_bad_thread_lists(video: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for threads in ("0", "1,x"):
        assert main(["bench-pipeline", str(video), "--threads", threads]) == 2
        out, err = capsys.readouterr()
        assert f"--threads {threads!r} is not a list of positive integers" in err and "fix:" in err
        assert out == ""  # refused before any frame was decoded: no report


def test_bench_pipeline_refuses_more_threads_than_cores(video: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cores = len(os.sched_getaffinity(0))
    assert main(["bench-pipeline", str(video), "--threads", f"1,{cores + 1}"]) == 2
    out, err = capsys.readouterr()
    assert f"asks for {cores + 1} threads but this process may use only {cores} CPU core(s)" in err
    assert "fix: pass --threads 1)" in err and out == ""


@pytest.mark.parametrize("frames", ["0", "-5"])
def test_bench_pipeline_refuses_a_max_frames_below_one(
    video: Path, capsys: pytest.CaptureFixture[str], frames: str
) -> None:
    assert main(["bench-pipeline", str(video), "--threads", "1", "--max-frames", frames]) == 2
    out, err = capsys.readouterr()
    assert f"--max-frames must be at least 1, got {frames}" in err and out == ""


def test_bench_pipeline_refuses_a_file_that_is_no_video(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    assert main(["bench-pipeline", str(text), "--threads", "1"]) == InputError.exit_code == 6
    out, err = capsys.readouterr()
    assert err.count("error:") == 1 and str(text) in err and "fix:" in err and "-v" not in err and out == ""


def test_bench_pipeline_passes_a_worker_error_and_its_exit_code_through() -> None:
    failed = subprocess.CompletedProcess(
        ["w"], 6, "", "python -m edge: error: video v.mp4 is odd (fix: re-encode it)\n"
    )
    error = worker_error(2, ["python", "-m", "edge", "bench-pipeline", "v.mp4", "--worker", "2"], failed)
    assert error.exit_code == 6 and error.fix is None
    assert str(error) == "benchmark worker with 2 thread(s) failed: video v.mp4 is odd (fix: re-encode it)"
    crashed = subprocess.CompletedProcess(["w"], 1, "", "Traceback (most recent call last):\nValueError: boom\n")
    error = worker_error(1, ["python", "-m", "edge", "bench-pipeline", "v.mp4", "--worker", "1"], crashed)
    assert error.exit_code == 1 and "failed: ValueError: boom" in str(error)
    assert error.fix == "run `python -m edge bench-pipeline v.mp4 --worker 1` to see its whole output"
