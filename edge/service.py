"""Service integration: sd_notify READY/STATUS/WATCHDOG, SIGTERM/SIGINT as a clean stop request, and no
core dumps (the process holds camera frames in memory).

The watchdog is fed only while the daemon makes progress: frames were processed since the last ping, or the daemon
is idle on purpose (paused, waiting for consent, reconnecting a lost camera with its capture thread alive and not
stuck in one OpenCV call). A loop stuck in inference or a dead or stuck capture thread stops the pings, and systemd
restarts the service.
"""

from __future__ import annotations

import ctypes
import logging
import os
import resource
import signal
import sys
import threading
import time
from types import FrameType

import sdnotify

log = logging.getLogger(__name__)

PR_SET_DUMPABLE = 4  # <linux/prctl.h>


def watchdog_interval() -> float | None:
    """Seconds between watchdog pings (half of systemd's ``WatchdogSec=``), or ``None`` when none is asked for."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) <= 0 or (pid.isdigit() and int(pid) != os.getpid()):
        return None
    return int(usec) / 2e6


def forbid_core_dumps() -> None:
    """No core dump of this process: its memory holds camera frames. A zero core limit, and on Linux the
    process marked not dumpable (which also covers a core pattern piped to systemd-coredump or apport)."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if not sys.platform.startswith("linux"):
        return
    try:
        failed = ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0
    except (OSError, AttributeError) as error:  # e.g. a statically linked Python: the zero core limit stays
        log.warning("could not mark the process not dumpable (%s); core dumps stay off by RLIMIT_CORE", error)
        return
    if failed:
        log.warning("could not mark the process not dumpable (errno %d)", ctypes.get_errno())


class Notifier:
    """Talks to systemd's notification socket; does nothing when the process does not run under systemd."""

    def __init__(self) -> None:
        self._notifier = sdnotify.SystemdNotifier()
        self.interval = watchdog_interval()
        self._last_ping = time.monotonic()
        self._last_progress = -1
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET"))

    def send(self, *lines: str) -> None:
        """Send ``KEY=value`` lines in one datagram."""
        if self.enabled:
            self._notifier.notify("\n".join(lines))

    def ready(self, status: str) -> None:
        """Tell systemd that start-up (bundle checks, backend warm-up) is over."""
        self.send("READY=1", f"STATUS={status}")
        log.info("ready: %s", status)

    def status(self, status: str) -> None:
        """One line for ``systemctl status``."""
        self.send(f"STATUS={status}")

    def stopping(self, status: str) -> None:
        """Tell systemd the daemon is shutting down."""
        self.send("STOPPING=1", f"STATUS={status}")

    def feed(self, progress: int, *, idle_ok: bool = False) -> bool:
        """Ping the watchdog if it is due and ``progress`` (a frame counter) moved or the daemon is idle on purpose.

        Returns whether a ping was sent.
        """
        now = time.monotonic()
        if self.interval is None or now - self._last_ping < self.interval:
            return False
        if progress == self._last_progress and not idle_ok:
            return False
        self._last_ping, self._last_progress = now, progress
        self.send("WATCHDOG=1")
        return True


class StopRequest:
    """Turns SIGTERM and SIGINT into a flag the daemon loop checks; a second signal is handled the same way."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal_name = ""

    def install(self) -> StopRequest:
        """Install the handlers (main thread only)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signal_name = signal.Signals(signum).name
        self.event.set()

    @property
    def requested(self) -> bool:
        """Whether a stop was asked for."""
        return self.event.is_set()
