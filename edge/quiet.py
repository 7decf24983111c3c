"""Native start-up noise off stderr: mediapipe's absl and TensorFlow Lite lines, filtered at the file descriptor.

mediapipe 0.10.21 logs through C++ absl before ``absl::InitializeLog()``, straight to file descriptor 2, so neither
Python's logging nor ``GLOG_minloglevel`` reaches it. While :func:`native_noise_filtered` is active, fd 2 is a pipe
that a thread copies to the real stderr line by line, leaving out only the known harmless lines
(:data:`NOISE`): absl INFO/WARNING records (``I0000 ...`` / ``W0000 ... file.cc:123] ...``), absl's "before
InitializeLog" notice and TensorFlow Lite's "Created ... delegate". absl errors (``E``/``F``), Python's own log
lines, tracebacks and progress bars pass unchanged. ``-vv`` (debug) leaves stderr alone.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import sys
import threading
from collections.abc import Iterator

NOISE = re.compile(
    rb"^\r?(?:[IW]\d{4} [\d:.]+\s+\d+ [\w.-]+\.(?:cc|h):\d+\] "
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|INFO: Created TensorFlow Lite \w+ delegate for \w+)"
)
"""A stderr line that is native start-up noise."""
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
            if pending and not NOISE.match(pending):
                _write(target, pending)
            return
        pending += chunk
        *complete, pending = re.split(rb"(?<=[\r\n])", pending)
        if not ready:  # nothing more came: pass the partial line on
            complete, pending = [*complete, pending], b""
        out = b"".join(line for line in complete if line and not NOISE.match(line))
        if out:
            _write(target, out)


@contextlib.contextmanager
def native_noise_filtered(enabled: bool = True) -> Iterator[None]:
    """Filter :data:`NOISE` out of fd 2 while inside (nothing is held back when leaving)."""
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
    os.dup2(write_end, 2)
    os.close(write_end)
    pump = threading.Thread(target=_pump, args=(read_end, saved), name="stderr-filter", daemon=True)
    pump.start()
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last write end here closes: the pump drains it and stops
        pump.join(timeout=2.0)
        os.close(read_end)
        os.close(saved)
