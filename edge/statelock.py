"""One daemon per state directory: an exclusive ``fcntl`` lock on ``daemon.lock`` held for the daemon's life.

Two daemons on one state directory share a device secret and so an MQTT client id: the broker kept taking the
connection from one to give it to the other (42 takeovers in 45 s, 44 false ``offline``s). The second one now
exits with code 3 naming the holder's pid. The lock goes with the process (also on ``kill -9``); the file stays,
holding the last holder's pid, and an erase keeps it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from edge.errors import ConfigError

LOCK_NAME = "daemon.lock"


class StateDirLock:
    """Holds the state directory's lock until :meth:`release` (or the process ends)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> StateDirLock:
        """Take the lock and write our pid into it; :class:`ConfigError` (exit 3) naming the holder when taken."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            raise ConfigError(
                f"device.state_dir lock {self.path} cannot be opened ({error.strerror})",
                fix="point device.state_dir at a directory the daemon may write",
            ) from error
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _pid_in(fd)
            os.close(fd)
            raise ConfigError(
                f"device.state_dir {self.path.parent} is in use by another expresso-edge daemon (pid {holder})",
                fix="stop that daemon (systemctl stop expresso-edge) or give this one its own device.state_dir",
            ) from None
        with contextlib.suppress(OSError):  # a full disk: the lock holds all the same, only the pid goes unnamed
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def holder(self) -> str | None:
        """The pid of the daemon that holds the lock now, else None; takes nothing and creates nothing."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:  # no lock file yet (no daemon ever ran here) or not ours to read
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _pid_in(fd)
        finally:
            os.close(fd)  # also lets go of the shared lock
        return None

    def release(self) -> None:
        """Let go of the lock (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _pid_in(fd: int) -> str:
    """The pid the holder wrote into the lock file."""
    return os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
