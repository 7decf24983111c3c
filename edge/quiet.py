"""Native start-up noise off stderr: mediapipe's absl and TensorFlow Lite lines, filtered at the file descriptor.

mediapipe 0.10.21 logs through C++ absl before ``absl::InitializeLog()``, straight to file descriptor 2, so neither
Python's logging nor ``GLOG_minloglevel`` reaches it. While :func:`native_noise_filtered` is active, fd 2 is a pipe
that a child process copies to the real stderr line by line, leaving out only the known harmless lines
(:data:`NOISE`): absl INFO/WARNING records (``I0000 ...`` / ``W0000 ... file.cc:123] ...``), absl's "before
InitializeLog" notice and TensorFlow Lite's "Created ... delegate". absl errors (``E``/``F``), Python's own log
lines, tracebacks and progress bars pass unchanged. ``-vv`` (debug) leaves stderr alone.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

_RECORD = (
    rb"(?:[IW]\d{4} [\d:.]+\s+\d+ [\w.-]+\.(?:cc|h):\d+\] "
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|INFO: Created TensorFlow Lite \w+ delegate for \w+)"
)
NOISE = re.compile(rb"^\r?" + _RECORD)
"""A stderr line that is native start-up noise."""
_NOISE_INSIDE = re.compile(_RECORD)
_PARTIAL_WAIT_S = 0.1
"""A partial line (a progress bar redrawn with ``\\r``) is passed on after this long without more output."""


def _write(target: int, data: bytes) -> None:
    """Write to the real stderr; a failure (e.g. journald gone) drops the text but never stops the reading, so a
    full pipe can never block the daemon's logging."""
    with contextlib.suppress(OSError):
        os.write(target, data)


def _pump(source: int, target: int) -> None:
    """Copy ``source`` to ``target`` without the noise lines, until ``source`` is closed."""
    pending = b""
    while True:
        ready, _, _ = select.select([source], [], [], _PARTIAL_WAIT_S if pending else None)
        chunk = os.read(source, 65536) if ready else b""
        if ready and not chunk:  # closed
            _write(target, _kept(pending))
            return
        pending += chunk
        *complete, pending = re.split(rb"(?<=[\r\n])", pending)
        if not ready:  # nothing more came: pass the partial line on
            complete, pending = [*complete, pending], b""
        out = b"".join(_kept(line) for line in complete)
        if out:
            _write(target, out)


def _kept(line: bytes) -> bytes:
    """What of a line passes: nothing of a noise line, and of a progress bar's partial line that a noise record
    was read together with (a mediapipe line right after tqdm's last redraw) only the progress bar."""
    if NOISE.match(line):
        return b""
    found = _NOISE_INSIDE.search(line)
    return line if found is None else line[: found.start()]


def _serve() -> None:
    """The filter process: stdin (the pipe) to stdout (the real stderr) until every writer is gone. Signals meant
    for the command (Ctrl-C, systemd's SIGTERM to the whole unit) are left to it: this ends when it does."""
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    _pump(0, 1)


@contextlib.contextmanager
def native_noise_filtered(enabled: bool = True) -> Iterator[None]:
    """Filter :data:`NOISE` out of fd 2 while inside (nothing is held back when leaving).

    The filter is a child process, not a thread: when the command dies on a native abort (an absl ``F`` line, a
    CHECK failure, a segfault), a thread dies with it and the last lines, the cause, were lost (4 runs in 5); the
    child reads the pipe to its end."""
    os.environ.setdefault("GLOG_minloglevel", "2")  # glog-based builds read this when they start
    if not enabled:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (e.g. closed): nothing to filter
        yield
        return
    read_end, write_end = os.pipe()
    try:
        child = subprocess.Popen(
            [sys.executable, "-c", "from edge.quiet import _serve; _serve()"],
            stdin=read_end,
            stdout=saved,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},  # this very edge package
        )
    except OSError:  # cannot start a process (e.g. out of memory): unfiltered output beats none
        for fd in (read_end, write_end, saved):
            os.close(fd)
        yield
        return
    os.close(read_end)
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last write end here closes: the filter drains it and ends
        os.close(saved)
        with contextlib.suppress(subprocess.TimeoutExpired):  # a grandchild may still hold the pipe (demo's broker)
            child.wait(timeout=2.0)
