"""Small JSON state files in the state directory, written atomically (temp file, fsync, rename)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from edge.errors import ConfigError


def read_json(path: Path, *, fix: str) -> dict[str, Any] | None:
    """The JSON object stored at ``path``, or None when the file does not exist.

    A file that cannot be read or is not a JSON object raises :class:`ConfigError` carrying ``fix``: what to do
    about that file (never a blanket "delete it": deleting some state files resets what they protect). Callers
    treat it as their safe default: consent revoked, the day's privacy budget spent.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as error:
        raise ConfigError(f"state file {path} is not UTF-8 text ({error})", fix=fix) from error
    except OSError as error:  # e.g. owned by root after a manual copy: a traceback and exit 1 before
        raise ConfigError(f"state file {path} cannot be read ({error.strerror})", fix=fix) from error
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"state file {path} is not valid JSON ({error})", fix=fix) from error
    if not isinstance(document, dict):
        raise ConfigError(f"state file {path} does not hold a JSON object", fix=fix)
    return document


def write_json_atomic(path: Path, document: dict[str, Any]) -> None:
    """Replace ``path`` with ``document`` so that a crash leaves either the old or the new file, mode 0600.

    A state directory that refuses the write (read-only, full, or a directory standing where the file belongs)
    raises :class:`ConfigError` naming the file: a traceback and exit 1 before, which systemd restarts forever.
    """
    try:
        _replace_atomically(path, document)
    except OSError as error:
        raise ConfigError(
            f"state file {path} cannot be written ({error.strerror or error})",
            fix=f"make the state directory writable by the daemon's user, with room to spare, and remove whatever "
            f"stands at {path} if it is not a regular file",
        ) from error


def _replace_atomically(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
