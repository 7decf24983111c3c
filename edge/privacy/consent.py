"""Consent and pause state, persisted in the state directory, and ``erase`` of everything kept locally.

Nothing is processed until consent is recorded: by configuration (``privacy.consent = "granted"``, which applies
only while no decision is stored) or by a control message. A control decision always wins over configuration.
A consent file that cannot be read fails closed: it counts as revoked (source ``"corrupt"``) and is rewritten so,
and the configuration never grants over it; only a consent control message does.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from edge.errors import ConfigError
from edge.privacy.dp import BUDGET_NAME
from edge.privacy.pseudonym import SECRET_NAME
from edge.privacy.statefile import read_json, write_json_atomic
from edge.statelock import LOCK_NAME

log = logging.getLogger(__name__)

CONSENT_NAME = "consent.json"
ConsentSource = Literal["config", "control", "erase", "local"]
CORRUPT_SOURCE = "corrupt"
_CONSENT_FIX = (
    "consent now counts as revoked; to grant it again, on the device: python -m edge consent --config FILE grant "
    '(or {"command": "consent", "granted": true} on the control topic where trust.control.grant allows it; '
    'deleting the file would let privacy.consent = "granted" re-grant it)'
)


@dataclass(frozen=True)
class ConsentState:
    """The stored decision: ``granted`` is None while nobody decided; ``paused`` stops processing temporarily.

    ``source`` says who decided: ``config``, ``control``, ``local`` (``python -m edge consent``), ``erase``,
    ``corrupt`` (the stored file could not be read and was recorded as revoked) or None (nobody yet).
    """

    granted: bool | None
    paused: bool
    source: str | None

    @property
    def processing_allowed(self) -> bool:
        """True only with consent granted and processing not paused."""
        return self.granted is True and not self.paused

    @property
    def label(self) -> Literal["granted", "revoked", "unknown"]:
        """``granted``, ``revoked`` or ``unknown`` (never decided), as published on the status topic."""
        if self.granted is None:
            return "unknown"
        return "granted" if self.granted else "revoked"


class ConsentStore:
    """Thread-safe access to ``consent.json`` in the state directory."""

    def __init__(self, state_dir: Path) -> None:
        self._path = state_dir / CONSENT_NAME
        self._lock = threading.Lock()

    def load(self) -> ConsentState:
        """The stored state (never decided and not paused when the file is absent)."""
        with self._lock:
            return self._load()

    def stamp(self) -> int | None:
        """The record's modification time (ns), None when absent: tells a running daemon that it changed."""
        try:
            return self._path.stat().st_mtime_ns
        except FileNotFoundError:
            return None

    def apply_config(self, setting: Literal["required", "granted"]) -> ConsentState:
        """Record configured consent when no decision is stored yet; return the effective state."""
        with self._lock:
            state = self._load()
            if setting == "granted" and state.granted is None:
                state = ConsentState(granted=True, paused=state.paused, source="config")
                self._save(state)
                log.info("consent recorded from configuration")
            return state

    def record(self, granted: bool, source: ConsentSource) -> ConsentState:
        """Store a consent decision (granted or revoked)."""
        with self._lock:
            state = ConsentState(granted=granted, paused=self._load().paused, source=source)
            self._save(state)
            log.info("consent %s (%s)", state.label, source)
            return state

    def set_paused(self, paused: bool) -> ConsentState:
        """Pause or resume processing; the flag survives restarts."""
        with self._lock:
            old = self._load()
            state = ConsentState(granted=old.granted, paused=paused, source=old.source)
            self._save(state)
            log.info("processing %s", "paused" if paused else "resumed")
            return state

    def _load(self) -> ConsentState:
        try:
            return _read_state(self._path)
        except ConfigError as error:
            log.error("consent record unreadable, recorded as revoked: %s", error)
            state = ConsentState(granted=False, paused=False, source=CORRUPT_SOURCE)
            self._save(state)
            return state

    def _save(self, state: ConsentState) -> None:
        write_json_atomic(self._path, {"granted": state.granted, "paused": state.paused, "source": state.source})


def _read_state(path: Path) -> ConsentState:
    """The state stored at ``path`` (never decided when absent); ConfigError when the file is not a valid record."""
    doc = read_json(path, fix=_CONSENT_FIX)
    if doc is None:
        return ConsentState(granted=None, paused=False, source=None)
    granted, paused, source = doc.get("granted", ""), doc.get("paused"), doc.get("source", 0)  # all three required
    if not isinstance(granted, bool | None) or not isinstance(paused, bool) or not isinstance(source, str | None):
        raise ConfigError(
            f"state file {path} is not a consent record (granted {granted!r}, paused {paused!r}, source {source!r})",
            fix=_CONSENT_FIX,
        )
    return ConsentState(granted=granted, paused=paused, source=source)


def erase(
    state_dir: Path, *, keep_identity: bool = True, removed_before: Sequence[str] = (), summaries: int = 0
) -> list[str]:
    """Delete everything kept in ``state_dir`` (outbox included) and record consent as revoked.

    Kept: the privacy-budget ledger (epsilon spent per day, no personal data; keeping it stops an erase from
    resetting the budget) and, with ``keep_identity``, the device secret behind the pseudonym. Close the outbox
    before calling this. Consent is revoked first, so an erase cut short never leaves processing allowed.
    ``removed_before`` names files the caller already deleted (the outbox) and ``summaries`` the queued summaries
    they held, so that the log line counts everything the erase removed. Returns the names removed.
    """
    ConsentStore(state_dir).record(False, "erase")
    keep = {BUDGET_NAME, CONSENT_NAME, LOCK_NAME} | ({SECRET_NAME} if keep_identity else set())  # the lock: held
    removed = list(removed_before)
    if state_dir.is_dir():
        for entry in sorted(state_dir.iterdir()):
            if entry.name in keep:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry.name)
    log.warning(
        "erased local state: %d entries removed (%s), %d queued summaries among them; consent revoked",
        len(removed),
        ", ".join(removed) or "none",
        summaries,
    )
    return removed
