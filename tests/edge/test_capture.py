"""Capture: source kinds, uniform sampling, bounded hand-over with counted drops, damaged files, lost cameras."""

from __future__ import annotations

import functools
import http.server
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from daemon_media import damage, face_video
from polling import wait_until

from edge.capture import Capture, Frame, _selector
from edge.errors import InputError
from edge.face.windows import Resampler
from edge.sources import SourceKind, classify_source


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return face_video(tmp_path_factory.mktemp("capture") / "face.mp4", seconds=2.0)


def drain(capture: Capture, *, pause: float = 0.0) -> list[Frame]:
    frames = []
    while not capture.finished:
        frame = capture.get(timeout=2.0)
        if frame is not None:
            frames.append(frame)
            time.sleep(pause)
    return frames


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        (0, SourceKind.DEVICE),
        ("2", SourceKind.DEVICE),
        ("/dev/video1", SourceKind.DEVICE),
        ("nvarguscamerasrc ! video/x-raw(memory:NVMM) ! nvvidconv ! appsink", SourceKind.GSTREAMER),
        ("rtsp://user:pw@cam.local:554/stream", SourceKind.URL),
        ("http://cam.local/mjpg", SourceKind.URL),
        ("samples/face.mp4", SourceKind.FILE),
        ("/srv/video 1.avi", SourceKind.FILE),
    ],
)
def test_sources_are_told_apart(source: str | int, kind: SourceKind) -> None:
    assert classify_source(source) is kind


@pytest.mark.parametrize("camera_fps", [30.0, 25.0, 15.0, 29.97])
def test_presampling_matches_the_face_pipelines_resampling(camera_fps: float) -> None:
    times = [i / camera_fps for i in range(int(10 * camera_fps))]
    full = Resampler(8.0, max_gap=0.5)
    grid_of_full = [full.due(t)[0] for t in times]
    keep = _selector(8.0, max_gap=0.5)
    kept = [t for t in times if keep(t)]
    assert kept == [t for t, grid in zip(times, grid_of_full, strict=True) if grid]
    # Fed only the kept frames, the pipeline's resampler gives each the grid point it had in the full stream.
    again = Resampler(8.0, max_gap=0.5)
    assert [again.due(t)[0] for t in kept] == [grid for grid in grid_of_full if grid]
    assert len(kept) == 80 and np.allclose(np.diff(kept), 1 / 8, atol=1 / camera_fps + 1e-9)


def test_fast_file_delivers_every_sampled_frame(video: Path) -> None:
    with Capture(str(video), realtime=False, sample_fps=8.0, queue_size=2) as capture:
        frames = drain(capture, pause=0.01)  # a slower consumer: fast mode waits for it, it never drops
        stats = capture.stats
    assert stats.state == "ended"
    assert (stats.captured, stats.sampled, stats.delivered, stats.dropped) == (60, 16, 16, 0)
    assert [f.index for f in frames][:5] == [0, 4, 7, 11, 15]  # 30 fps to 8 fps: the frame nearest each tick
    assert frames[0].image.shape == (480, 640, 3) and frames[0].image.dtype == np.uint8
    assert np.all(np.diff([f.t for f in frames]) > 0)


def test_realtime_file_with_a_slow_consumer_drops_oldest_and_counts(video: Path) -> None:
    with Capture(str(video), realtime=True, sample_fps=8.0, queue_size=2) as capture:
        frames = drain(capture, pause=0.4)
        stats = capture.stats
    assert stats.dropped > 0
    assert stats.delivered + stats.dropped == stats.sampled == 16
    assert len(frames) == stats.delivered
    assert np.all(np.diff([f.t for f in frames]) > 0)  # what arrives is still in order, on the grid


def test_realtime_file_plays_at_its_frame_rate(video: Path) -> None:
    start = time.monotonic()
    with Capture(str(video), realtime=True, sample_fps=8.0) as capture:
        frames = drain(capture)
    assert len(frames) == 16
    assert time.monotonic() - start >= frames[-1].t  # paced by the file's clock, not as fast as possible


def test_damaged_file_ends_cleanly_with_errors_counted(video: Path, tmp_path: Path) -> None:
    broken = damage(video, tmp_path / "broken.mp4", keep=1.0)  # garbled in the middle
    with Capture(str(broken), realtime=False, sample_fps=8.0) as capture:
        frames = drain(capture)
        stats = capture.stats
    assert stats.state == "ended"
    assert stats.decode_errors > 0
    assert 0 < len(frames) < 16


def test_unreadable_and_missing_files_raise_input_error(video: Path, tmp_path: Path) -> None:
    truncated = damage(video, tmp_path / "cut.mp4", keep=0.5, garble=False)  # MP4 index (moov) lost
    with pytest.raises(InputError, match="cannot open file source") as error:
        Capture(str(truncated)).start()
    assert error.value.fix and "re-encode" in error.value.fix
    with pytest.raises(InputError, match="does not exist"):
        Capture(str(tmp_path / "nope.mp4")).start()


def test_lost_camera_is_reopened_with_capped_backoff() -> None:
    capture = Capture("/dev/video97", backoff=(0.05, 0.1)).start()
    try:
        assert wait_until(lambda: capture.stats.reopens >= 3, 5)
        stats = capture.stats
        assert stats.state == "camera_lost"
        assert stats.reopens >= 3
        assert "/dev/video97" in stats.error
        assert capture.get(timeout=0.05) is None and not capture.finished
    finally:
        capture.stop()
    assert capture.stats.state == "stopped" and capture.finished


def test_stop_interrupts_a_long_reopen_backoff() -> None:
    capture = Capture("/dev/video97", backoff=(60.0, 60.0)).start()
    try:
        assert wait_until(lambda: capture.stats.state == "camera_lost", 5)  # now waiting 60 s to retry
    finally:
        capture.stop()  # joins for at most 10 s: the thread ends only if the wait was cut short
    assert capture._thread is not None and not capture._thread.is_alive()
    assert capture.stats.state == "stopped"


def test_stream_credentials_stay_out_of_the_status_and_the_log(caplog: pytest.LogCaptureFixture) -> None:
    source = "rtsp://viewer:s3cret@127.0.0.1:1/stream"  # nothing listens on port 1: refused at once
    capture = Capture(source, backoff=(0.05, 0.1)).start()
    try:
        assert wait_until(lambda: capture.stats.reopens >= 1, 5)
        assert capture.stats.state == "camera_lost"
        assert "rtsp://***@127.0.0.1:1/stream" in capture.stats.error  # the status topic's detail
    finally:
        capture.stop()
    assert "s3cret" not in capture.stats.error and "s3cret" not in caplog.text and "***@" in caplog.text


@pytest.mark.skipif("GStreamer:                   YES" in cv2.getBuildInformation(), reason="OpenCV has GStreamer")
def test_gstreamer_source_without_gstreamer_says_how_to_fix() -> None:
    capture = Capture("videotestsrc ! appsink", backoff=(0.05, 0.05)).start()
    try:
        assert wait_until(lambda: capture.stats.state == "camera_lost", 5)
        assert "no GStreamer" in capture.stats.error
    finally:
        capture.stop()


@pytest.fixture
def http_video(tmp_path: Path) -> Iterator[str]:
    """A 1 s MJPG video served over HTTP on a free loopback port: a network stream that ends and comes back."""
    video = face_video(tmp_path / "stream.avi", seconds=1.0, fourcc="MJPG")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{video.name}"
    server.shutdown()
    thread.join()


def test_a_stream_that_ends_is_reported_lost_and_reopened(http_video: str) -> None:
    capture = Capture(http_video, sample_fps=8.0, backoff=(0.05, 0.1)).start()
    assert capture.live
    try:
        first = capture.get(timeout=10)
        assert first is not None and first.image.shape == (480, 640, 3)
        assert wait_until(lambda: capture.stats.reopens >= 1 and capture.get(timeout=0.1) is not None)
        stats = capture.stats
        assert stats.captured > 30  # the whole stream was read, then again after the reopen
        assert stats.decode_errors >= 5  # the failed reads that declared it lost
    finally:
        capture.stop()
    assert capture.stats.state == "stopped"


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A loopback HTTP 'camera' that accepts connections and never answers: OpenCV's open hangs on it."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/stream.mjpg"
    for connection in accepted:
        connection.close()  # the hanging open fails now and the capture thread can end
    listener.close()


def test_a_capture_hanging_in_open_is_reported_unresponsive(silent_server: str) -> None:
    capture = Capture(silent_server, backoff=(0.05, 0.1)).start()
    try:
        assert wait_until(lambda: not capture.responsive(0.5), 5)  # inside one open for more than 0.5 s
        assert capture.responsive(60.0)  # alive, and not yet past a generous limit
    finally:
        capture._stop.set()  # a join would wait for the hanging open; the fixture's close ends it
