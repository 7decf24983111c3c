"""The device's pseudonym: a keyed hash (HMAC-SHA256) of a random local secret, never a hardware serial.

The secret is created on first start in the state directory with mode 0600 and never leaves the device; the
pseudonym names the device in topics and payloads. It names the device, not the person in front of it, so an
on-device erase keeps it (the integrator still needs to reach the device to see the erase acknowledged).
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import logging
import os
import secrets
import shutil
import stat
import tempfile
from pathlib import Path

from edge.errors import ConfigError

log = logging.getLogger(__name__)

SECRET_NAME = "device.secret"
SECRET_BYTES = 32
_CONTEXT = b"expresso-edge/device-pseudonym/v1"
PSEUDONYM_HEX_CHARS = 20


def load_or_create_secret(state_dir: Path) -> bytes:
    """The local secret, created on first call; a group/other-readable file is tightened.

    It is written whole into a 0600 temporary file and then hard-linked into place (``link`` fails when the name
    exists), so a crash never leaves a short secret behind and two starts never create two secrets.
    """
    path = state_dir / SECRET_NAME
    if path.exists():
        return _read_secret(path)
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)  # as the preflight makes it for the daemon
        fd, tmp = tempfile.mkstemp(prefix=f".{SECRET_NAME}.", dir=state_dir)  # mode 0600 from the start
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(SECRET_BYTES))
                handle.flush()
                os.fsync(handle.fileno())
            os.link(tmp, path)
        finally:
            Path(tmp).unlink()
    except FileExistsError:
        return _read_secret(path)
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _full(state_dir) from error
        raise ConfigError(
            f"state directory {state_dir} is not writable ({error})",
            fix="create it owned by the daemon's user (systemd: StateDirectory=) or pass another state directory",
        ) from error
    log.info("created a new device secret in %s", state_dir)
    return _read_secret(path)


def pseudonym_from_secret(secret: bytes) -> str:
    """The pseudonym of a secret: the first 20 hex digits (80 bits) of HMAC-SHA256(secret, context)."""
    return hmac.new(secret, _CONTEXT, hashlib.sha256).hexdigest()[:PSEUDONYM_HEX_CHARS]


def device_pseudonym(state_dir: Path) -> str:
    """The stable pseudonym of this device (creating its secret on first start)."""
    return pseudonym_from_secret(load_or_create_secret(state_dir))


def check_secret(state_dir: Path) -> bool:
    """An existing device secret reads and is whole (ConfigError otherwise, as at start); False when there is none
    yet. Changes nothing."""
    path = state_dir / SECRET_NAME
    if not path.exists():
        if state_dir.is_dir() and shutil.disk_usage(state_dir).free == 0:
            raise _full(state_dir)
        return False
    _read_secret(path, tighten=False)
    return True


def _full(state_dir: Path) -> ConfigError:
    return ConfigError(
        f"state directory {state_dir} is full: the device secret cannot be created",
        fix="free space in its file system (df, journalctl --vacuum-size=...), then start again",
    )


def _read_secret(path: Path, *, tighten: bool = True) -> bytes:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if tighten and mode & 0o077:
            log.warning("device secret %s had mode %o; tightening to 0600", path, mode)
            path.chmod(0o600)
        data = path.read_bytes()
    except OSError as error:  # e.g. a directory, or owned by another user: a traceback and exit 1 before
        raise ConfigError(
            f"device secret {path} cannot be read ({error.strerror})",
            fix="make it a file readable by the daemon's user, or delete it to create a new device pseudonym "
            "(integrators will see a new device)",
        ) from error
    if len(data) < SECRET_BYTES:
        raise ConfigError(
            f"device secret {path} holds {len(data)} bytes, expected {SECRET_BYTES}",
            fix="delete the file to create a new device pseudonym (integrators will see a new device)",
        )
    return data
