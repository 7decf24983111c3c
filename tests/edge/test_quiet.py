"""mediapipe/absl start-up noise is kept off stderr by every command; what matters still gets through."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge.quiet import NOISE, native_noise_filtered

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "clip_000_score04.3.mp4"
NOISE_MARKS = ("absl::InitializeLog", "inference_feedback_manager", "XNNPACK delegate", "NORM_RECT", "W0000 ")


def edge_command(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "edge", *argv], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["replay", str(SAMPLE), "--fast", "--json"],  # the daemon's own start-up, as `run` does it
        ["bench-pipeline", str(SAMPLE), "--threads", "1", "--max-frames", "40", "--json"],
    ],
    ids=["replay", "bench-pipeline"],
)
def test_commands_that_load_mediapipe_print_none_of_its_start_up_lines(argv: list[str]) -> None:
    done = edge_command(*argv)
    assert done.returncode == 0, done.stderr[-2000:]
    noise = [line for line in done.stderr.splitlines() if any(mark in line for mark in NOISE_MARKS)]
    assert noise == []
    if argv[0] == "replay":
        assert "INFO edge.daemon: started" in done.stderr  # our own log lines still arrive


def test_the_filter_keeps_errors_python_output_and_progress_bars(capfd: pytest.CaptureFixture[str]) -> None:
    lines = [
        b"W0000 00:00:1796590449.899106   31054 inference_feedback_manager.cc:114] Feedback manager ...\n",
        b"I0000 00:00:1796590449.899106   31054 gl_context.cc:357] GL version ...\n",
        b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
        b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n",
        b"E0000 00:00:1796590449.899106   31054 calculator_graph.cc:887] a real error\n",
        b"INFO edge.daemon: started\n",
        b"\rreplay:  33%|###       | 59/180",
    ]
    with native_noise_filtered():
        for line in lines:
            os.write(2, line)
    err = capfd.readouterr().err
    assert err == "E0000 00:00:1796590449.899106   31054 calculator_graph.cc:887] a real error\n" + (
        "INFO edge.daemon: started\n\rreplay:  33%|###       | 59/180"
    )
    assert [bool(NOISE.match(line)) for line in lines] == [True] * 4 + [False] * 3


def test_a_broken_stderr_never_blocks_the_writer() -> None:
    import threading

    from edge.quiet import _pump

    source_r, source_w = os.pipe()
    target_r, target_w = os.pipe()
    os.close(target_r)  # the real stderr is gone (e.g. journald restarted): writes to it fail with EPIPE
    pump = threading.Thread(target=_pump, args=(source_r, target_w), daemon=True)
    pump.start()

    def log_a_lot() -> None:  # 1 MiB, far more than a pipe holds: it would block if the pump stopped reading
        for _ in range(64):
            os.write(source_w, b"INFO edge.daemon: a line\n" * 640)

    writer = threading.Thread(target=log_a_lot, daemon=True)
    writer.start()
    writer.join(10)
    assert not writer.is_alive()  # the daemon's logging went on
    os.close(source_w)
    pump.join(5)
    assert not pump.is_alive()
    os.close(source_r)
    os.close(target_w)


def test_the_last_lines_before_a_native_abort_reach_stderr() -> None:
    # the filter was a thread: it died with the process and the cause of a crash (absl's F line) was lost 4 times
    # in 5; a child process reads the pipe to its end
    code = (
        "import os\n"
        "from edge.quiet import native_noise_filtered\n"
        "with native_noise_filtered():\n"
        "    os.write(2, b'W0000 00:00:00.1 1 x.cc:1] noise\\n')\n"
        "    os.write(2, b'F0000 00:00:00.1 1 graph.cc:9] Check failed: the cause\\n')\n"
        "    os.abort()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for _ in range(5):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=30)
        assert done.returncode != 0
        assert done.stderr == "F0000 00:00:00.1 1 graph.cc:9] Check failed: the cause\n"


def test_a_noise_line_read_together_with_a_progress_bar_is_still_left_out() -> None:
    # tqdm's last redraw has no newline: a mediapipe line read in the same chunk was glued to it and passed
    from edge.quiet import _pump

    source_r, source_w = os.pipe()
    target_r, target_w = os.pipe()
    os.write(source_w, b"\rreplay: 100%|###| 180/180 [00:02<00:00]W0000 00:00:1.6 2260 feedback.cc:114] noise\nend\n")
    os.close(source_w)
    _pump(source_r, target_w)
    os.close(target_w)
    assert os.read(target_r, 4096) == b"\rreplay: 100%|###| 180/180 [00:02<00:00]end\n"
    os.close(source_r)
    os.close(target_r)
